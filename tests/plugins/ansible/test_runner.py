"""Starting Ansible as the run user works on any event loop: asyncio's and uvloop's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from knm.core.tasks import TargetNode
from knm.core.transport import HostKeys
from knm.plugins.ansible import layout, runner
from knm.plugins.ansible.events import EventReader, PlayState
from knm.plugins.ansible.schemas import AnsibleSettings
from knm.plugins.ansible.served import Served
from knm.plugins.ansible.toolchain import Toolchain
from knm.testing.sshfleet import SshFleet

GOOD = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: id -un
      changed_when: false
"""


def _in_uvloop(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Runs a coroutine to its end on a uvloop event loop of its own, in another thread."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed")
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
                box["value"] = loop_runner.run(make())
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(110)
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__


async def _run(
    fleet: SshFleet, root: Path, ident: str, tools: Toolchain
) -> tuple[str, list[Any], int]:
    """A playbook run on the fleet as the executor lays it out (no API, no database)."""
    settings = AnsibleSettings(temp_dir=str(root))
    nodes = [TargetNode(name=n.name, address=n.address, port=n.port) for n in fleet.nodes]
    credential = SimpleNamespace(
        username=fleet.username, password=None, private_key=fleet.private_key_pem, passphrase=None
    )
    user = runner.ensure_run_user(settings.run_user)
    run_dir = runner.runs_root_of(settings) / ident
    runner.make_dirs(run_dir)
    laid = layout.lay_out(
        run_dir, playbook=GOOD, nodes=nodes, credential=credential,
        keys=HostKeys(policy="off"), jump=None, args=["main.yml"], extra_vars={},
        settings=settings, mark=ident, tools=tools,
    )  # fmt: skip
    runner.hand_over(run_dir, user)
    served = Served()
    await served.start(run_dir, laid, user, ident)
    try:
        argv = runner.runner_argv(settings, run_dir, "run", tools)
        proc = await runner.start(argv, laid.env, run_dir, user, run_dir / "runner.out")
        code = await proc.wait()
        await asyncio.to_thread(runner.kill_run, proc.pid, ident, user)
    finally:
        await served.stop()
    state = PlayState([n.name for n in nodes], 1)
    for event in EventReader(run_dir / "artifacts" / "run" / "job_events").read(0, final=True):
        state.feed(event)
    results = [state.result(n.name, excluded=False, run_error="", pinned=False) for n in nodes]
    return await _loop_name(), results, code


def test_a_syntax_check_runs_as_the_run_user_under_uvloop(
    outside_tmp: Path, tools: Toolchain
) -> None:
    settings = AnsibleSettings(temp_dir=str(outside_tmp / "syntax"))

    async def check() -> tuple[str, str | None, str | None]:
        good = await runner.syntax_check(settings, GOOD, tools)
        bad = await runner.syntax_check(settings, "- hosts: all\n  tasks:\n    - nope: {}\n", tools)
        return await _loop_name(), good, bad

    loop, good, bad = _in_uvloop(check)
    assert loop.startswith("uvloop")
    assert good == ""
    assert bad and "nope" in bad


def test_a_playbook_runs_on_the_fleet_under_uvloop(
    sshd_fleet: SshFleet, outside_tmp: Path, tools: Toolchain
) -> None:
    runs = outside_tmp / "runs"
    loop, results, code = _in_uvloop(lambda: _run(sshd_fleet, runs, "uvloop-run", tools))
    assert loop.startswith("uvloop")
    assert code == 0
    assert [r.status for r in results] == ["success"] * len(sshd_fleet.nodes)
    user = runner.ensure_run_user(AnsibleSettings().run_user)
    assert runner.run_processes(None, "uvloop-run", user) == []


def test_a_deep_run_dir_gets_ssh_control_sockets_a_path_short_enough_for_a_socket() -> None:
    shallow = Path("/var/lib/knm/ansible-runs/ansible-exec-1796287990-tugftd")
    assert runner.control_dir(shallow) == shallow / "tmp" / "cp"
    deep = Path("/var/lib/a-rather-long-data-dir-name/ansible-runs/ansible-exec-1796287990-x")
    control = runner.control_dir(deep)
    # ssh binds "<dir>/<10-char hash>.<17-char suffix>"; sun_path holds 107 bytes.
    assert len(str(control)) + 1 + 10 + 17 <= 107
    assert runner.control_dir(deep) == control
