"""Ctrl-C while a command follows its task, on a real terminal (a pty): ``knm`` asks whether to
cancel the task, detach from it or keep watching, and the answer decides the task's fate and the
exit code. ``knm task watch`` detaches without asking (watching never cancels by default).
Without a terminal nothing is asked: see ``test_remote_run``."""

from __future__ import annotations

import io
import os
import sys

import pexpect
import pytest

from knm.client import Client
from knm.testing.process import KnmProcess, as_from_a_terminal
from knm.testing.tasks import event_of, wait_for_event_sync

PROMPT = r"\[c\]ancel the task, \[d\]etach, or keep \[w\]atching\? "
LONG_TASK = ["task", "start", "test", "-c", "lab", "-n", "n1", "-f", "sleep=60"]


@pytest.fixture(scope="module")
def lab(admin: Client) -> str:
    admin.create_cluster("lab", "static", nodes=[{"name": "n1", "address": "127.0.0.2"}])
    return "lab"


def env_for(server: KnmProcess, admin: Client) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    return env | {"KNM_URL": server.base_url, "KNM_TOKEN": admin.token or ""}


def spawn(server: KnmProcess, admin: Client, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "knm.cli.main", *args],
        env=env_for(server, admin),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 160),
        preexec_fn=as_from_a_terminal,
    )


def wait_running(admin: Client, task_id: str) -> None:
    wait_for_event_sync(admin, task_id, event_of("progress", status="running"))


def started(child: pexpect.spawn, admin: Client) -> str:
    child.expect(r"started (test-exec-[0-9]+-[a-z0-9]{6})")
    task_id = child.match.group(1)
    wait_running(admin, task_id)
    in_live_view(child, task_id)
    return task_id


def in_live_view(child: pexpect.spawn, task_id: str) -> None:
    """Until the command is in its live view, where it handles Ctrl-C: the view drawn twice
    (its bar names the task). The first drawing comes from inside rich's ``Live.start``, before
    its refresh thread starts; a Ctrl-C that early leaves that thread drawing over the prompt.
    The second comes from the refresh thread, started last."""
    child.expect(task_id)
    child.expect(task_id)


def ended(child: pexpect.spawn) -> tuple[int | None, str]:
    child.expect(pexpect.EOF)
    output = child.before or ""
    child.close()
    return child.exitstatus, output


def test_ctrl_c_asks_and_cancel_cancels_the_task_and_exits_3(
    server: KnmProcess, admin: Client, lab: str
) -> None:
    child = spawn(server, admin, *LONG_TASK)
    task_id = started(child, admin)
    child.sendintr()
    child.expect(PROMPT)
    child.sendline("w")  # keep watching: the task is untouched and Ctrl-C asks again
    in_live_view(child, task_id)
    assert admin.task(task_id).status == "running"
    child.sendintr()
    child.expect(PROMPT)
    child.sendline("c")
    code, output = ended(child)
    assert code == 3, output
    assert f"cancelling {task_id}" in output and "cancelled" in output
    assert admin.task(task_id).status == "cancelled"


def test_ctrl_c_asks_and_detach_leaves_the_task_running_and_exits_5(
    server: KnmProcess, admin: Client, lab: str
) -> None:
    child = spawn(server, admin, *LONG_TASK)
    task_id = started(child, admin)
    child.sendintr()
    child.expect(PROMPT)
    child.sendline("d")
    code, output = ended(child)
    assert code == 5, output
    assert f"knm task watch {task_id}" in output
    assert admin.task(task_id).status == "running"
    admin.cancel(task_id)


def test_ctrl_c_in_task_watch_detaches_without_asking(
    server: KnmProcess, admin: Client, lab: str
) -> None:
    body = {"cluster_name": lab, "target_nodes": ["n1"], "sleep": 60}
    task_id = admin.executor("test").start(body).task_id
    wait_running(admin, task_id)
    child = spawn(server, admin, "task", "watch", task_id)
    in_live_view(child, task_id)
    child.sendintr()
    code, output = ended(child)
    assert code == 5, output
    assert "detached" in output and "[c]ancel" not in output
    assert admin.task(task_id).status == "running"
    admin.cancel(task_id)


def test_ctrl_c_while_a_workflow_streams_its_steps_output_keeps_watching_without_repeats(
    server: KnmProcess, admin: Client, lab: str
) -> None:
    flow = admin.workflows.create(
        "speaks-then-waits",
        {
            "steps": [
                {"id": "hello", "type": "test", "echo": "hello from {node}"},
                {"id": "long", "type": "test", "depends_on": ["hello"], "sleep": 60},
            ]
        },
    )
    child = spawn(server, admin, "workflow", "run", str(flow.id), "-c", lab, "-n", "n1")
    child.logfile_read = seen = io.StringIO()
    child.expect(r"started (workflow-exec-[0-9]+-[a-z0-9]{6})")
    task_id = child.match.group(1)
    child.expect(r"\[hello/n1\] hello from n1")
    child.expect("step long running")
    in_live_view(child, task_id)
    child.sendintr()
    child.expect(PROMPT)
    child.sendline("w")  # keep watching: each task carries on where it was, nothing repeated
    in_live_view(child, task_id)
    child.sendintr()
    child.expect(PROMPT)
    child.sendline("c")
    code, output = ended(child)
    assert code == 3, output
    assert seen.getvalue().count("[hello/n1] hello from n1") == 1
    assert admin.task(task_id).status == "cancelled"
