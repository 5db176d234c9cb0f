"""Commands that start tasks, in real subprocesses: the exit code reflects the task, ``--follow``
prints node output, and Ctrl-C (SIGINT) cancels or detaches as ``--on-interrupt`` says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from knm.client import Client
from knm.testing.process import KnmProcess, as_from_a_terminal
from knm.testing.tasks import event_of, wait_for_event_sync


@pytest.fixture(scope="module")
def admin(sdk_admin: Client) -> Client:
    # Nodes on loopback ports where nothing listens: SSH to them fails at once.
    nodes = [{"name": f"n{i}", "address": f"127.0.0.{i + 1}", "port": 1} for i in (1, 2)]
    sdk_admin.create_cluster("lab", "static", nodes=nodes)
    sdk_admin.create_credential("lab-root", "root", "password", password="pw-123456")
    return sdk_admin


def env_for(server: KnmProcess, admin: Client) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    return env | {"KNM_URL": server.base_url, "KNM_TOKEN": admin.token or ""}


def knm(server: KnmProcess, admin: Client, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knm.cli.main", *args],
        env=env_for(server, admin),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=90,
    )


def test_a_task_that_succeeds_exits_0_and_follow_prints_its_output(
    server: KnmProcess, admin: Client
) -> None:
    result = knm(server, admin, "task", "start", "test", "-c", "lab", "-n", "n1,n2",
                 "-f", "echo=hello from {node}", "-f", "events=3", "--follow")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[n1] hello from n1" in result.stdout and "[n2] hello from n2" in result.stdout
    assert "completed" in result.stdout and "2 succeeded, 0 failed" in result.stdout


def test_ssh_run_to_unreachable_nodes_exits_1_with_a_per_node_table(
    server: KnmProcess, admin: Client
) -> None:
    result = knm(server, admin, "ssh", "run", "-c", "lab", "-n", "n1,n2",
                 "--credential", "lab-root", "--timeout", "5", "--", "df", "-h")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "failed" in result.stdout and "unreachable" in result.stdout
    assert "n1" in result.stdout and "n2" in result.stdout


def test_a_refused_command_exits_4_with_the_servers_reason(
    server: KnmProcess, admin: Client
) -> None:
    result = knm(server, admin, "ssh", "run", "-c", "lab", "-n", "n1",
                 "--credential", "lab-root", "--json", "--", "rm", "-rf", "/")  # fmt: skip
    assert result.returncode == 4
    assert json.loads(result.stdout)["code"] == 422
    assert "dangerous command blocked" in result.stderr


def test_a_run_without_a_credential_names_the_option_to_give_when_there_is_no_default(
    server: KnmProcess, admin: Client
) -> None:
    result = knm(server, admin, "ssh", "run", "-c", "lab", "-n", "n1", "--", "uptime")
    assert result.returncode == 4
    assert "--credential: required (cluster lab has no default_credential_id)" in result.stderr
    assert "credential_id:" not in result.stderr


def test_a_server_that_does_not_answer_is_named_with_a_hint(
    server: KnmProcess, admin: Client
) -> None:
    env = env_for(server, admin) | {"KNM_URL": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "knm.cli.main", "task", "list"],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert result.returncode == 4
    assert "no answer from http://127.0.0.1:9" in result.stderr
    assert "KNM_URL" in result.stderr and "Traceback" not in result.stderr


def test_workflow_run_approve_and_watch(server: KnmProcess, admin: Client) -> None:
    flow = admin.workflows.create(
        "gated",
        {
            "steps": [
                {"id": "gate", "type": "approval"},
                {"id": "go", "type": "test", "depends_on": ["gate"]},
            ]
        },
    )
    started = knm(server, admin, "workflow", "run", str(flow.id), "-c", "lab", "-n", "n1",
                  "--detach", "--json")  # fmt: skip
    assert started.returncode == 5, started.stderr
    task_id = json.loads(started.stdout)["task_id"]
    assert task_id.startswith("workflow-exec-")
    # Once the stored step state says running, the approval it waits for is recorded (the
    # engine records it, then stores and announces the step), so it can be approved.
    deadline = time.monotonic() + 30
    while not any(
        s["id"] == "gate" and s["status"] == "running"
        for s in admin.workflows.status(task_id).steps or []
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    approved = knm(server, admin, "workflow", "approve", task_id, "gate", "--comment", "go")
    assert approved.returncode == 0 and "approved" in approved.stdout
    watched = knm(server, admin, "task", "watch", task_id)
    assert watched.returncode == 0, watched.stderr
    assert "completed" in watched.stdout and "gate" in watched.stdout


def test_a_workflow_run_says_what_it_waits_for_and_how_to_answer_it(
    server: KnmProcess, admin: Client
) -> None:
    flow = admin.workflows.create(
        "gated-and-told",
        {
            "steps": [
                {"id": "gate", "type": "approval"},
                {"id": "go", "type": "test", "depends_on": ["gate"], "echo": "hello"},
            ]
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "knm.cli.main", "workflow", "run", str(flow.id), "-c", "lab",
         "-n", "n1"],
        env=env_for(server, admin), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, f"knm ended before asking: {seen}"
            seen.append(line)
            if "waiting for approval" in line:
                break
        task_id = seen[0].split()[1]  # "started <task id> (pending)"
        assert f"waiting for approval — knm workflow approve {task_id} gate" in seen[-1]
        admin.workflows.approve(task_id, "gate", "seen on the terminal")
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "step gate completed" in err and "step go completed" in err


def test_a_workflow_run_prints_each_steps_node_output_under_step_and_node_once_and_in_order(
    server: KnmProcess, admin: Client
) -> None:
    flow = admin.workflows.create(
        "steps-speak",
        {
            "steps": [
                {"id": "prepare", "type": "test", "output_lines": 3},
                # Two steps at once: their lines interleave, each whole, each under its step.
                {"id": "upgrade", "type": "test", "depends_on": ["prepare"],
                 "echo": "upgrade on {node}", "output_lines": 2, "sleep": 0.2},
                {"id": "check", "type": "test", "depends_on": ["prepare"],
                 "echo": "check on {node}", "output_lines": 2},
            ]
        },
    )  # fmt: skip
    result = knm(server, admin, "workflow", "run", str(flow.id), "-c", "lab", "-n", "n1,n2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for node in ("n1", "n2"):
        assert [line for line in lines if line.startswith(f"[prepare/{node}] ")] == [
            f"[prepare/{node}] {node} line {i}" for i in range(3)
        ]
        for step in ("upgrade", "check"):
            assert [line for line in lines if line.startswith(f"[{step}/{node}] ")] == [
                f"[{step}/{node}] {step} on {node}",
                *(f"[{step}/{node}] {node} line {i}" for i in range(2)),
            ]
    assert "completed" in result.stdout

    quiet = knm(server, admin, "workflow", "run", str(flow.id), "-c", "lab", "-n", "n1", "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert "[prepare/" not in quiet.stdout and "[upgrade/" not in quiet.stdout


def interrupted(
    server: KnmProcess, admin: Client, *extra: str
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "knm.cli.main", "task", "start", "test", "-c", "lab", "-n", "n1",
         "-f", "sleep=60", *extra],
        env=env_for(server, admin),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    assert proc.stderr is not None
    # The command prints "started <id>" and then follows the task: once its watch is connected
    # (the server counts it) and the task runs, Ctrl-C reaches the watch.
    line = proc.stderr.readline()
    assert line.startswith("started "), line
    task_id = line.split()[1]
    server.wait_for_watchers(1, {"Authorization": f"Bearer {admin.token}"})
    wait_for_event_sync(admin, task_id, event_of("progress", status="running"))
    proc.send_signal(signal.SIGINT)
    return proc, task_id


def test_ctrl_c_with_on_interrupt_cancel_cancels_the_task_and_exits_3(
    server: KnmProcess, admin: Client
) -> None:
    proc, task_id = interrupted(server, admin, "--on-interrupt=cancel")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert admin.task(task_id).status == "cancelled"
    assert "cancelled" in out


def test_ctrl_c_without_a_terminal_detaches_and_the_task_keeps_running(
    server: KnmProcess, admin: Client
) -> None:
    # Not --json: that waits by polling, and nothing tells the test it got that far.
    proc, task_id = interrupted(server, admin)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err
    assert f"detached; {task_id} keeps running" in err
    assert admin.task(task_id).status == "running"
    admin.cancel(task_id)
