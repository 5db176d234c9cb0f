"""Ansible overhead: what knm's way of running a playbook costs over a bare ansible-playbook.

Against a real sshd fleet (``knm.testing.sshfleet``, N loopback nodes; needs root), one small
playbook (ping, a command, a debug) runs in three ways, each ``--repeat`` times, in turn:

- ``bare``: ``ansible-playbook`` as root with a static inventory, key file, pipelining on, and
  its own ssh control directory (its ssh masters are stopped after each run, off the clock);
- ``knm``: what the executor does minus the API and database: the run directory laid out by
  ``knm.plugins.ansible.layout`` (key file, knm's shell plugin, pipelining on: the defaults),
  ``ansible-runner run`` as the run user, job events read while it runs (every 0.25 s, like the
  executor) and fed into per-node results (checked: every node succeeds);
- ``knm-agent``: the same with a passphrase-protected key, which goes through ssh-agent.

Each round starts with a different mode, so none always follows another. Prints a Markdown
table: median wall time, the ratio to ``bare`` (target ≤ 1.10), the median CPU seconds of the
bench process and its reaped descendants (ansible-playbook, its forks and ssh clients,
ansible-runner; steadier than wall time on a shared machine) and their ratio, the job events knm
read and how fast it processed them (events per second of knm's own reading and parsing time),
and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import psutil

from bench.common import load_average, machine, say, table
from knm.core.processes import wait_until_gone
from knm.core.tasks import TargetNode
from knm.core.transport import HostKeys
from knm.plugins.ansible import layout, runner, toolchain
from knm.plugins.ansible.events import EventReader, PlayState
from knm.plugins.ansible.schemas import AnsibleSettings
from knm.plugins.ansible.served import Served
from knm.testing.sshfleet import SshFleet

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
    - ansible.builtin.command: "true"
      changed_when: false
    - ansible.builtin.debug:
        msg: "{{ inventory_hostname }}"
"""
TARGET = 1.10
POLL = 0.25


class Timing:
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.events: list[int] = []
        self.parse_seconds: list[float] = []
        self.cpu: list[float] = []


def _cpu() -> float:
    """CPU seconds of this process and its reaped descendants: ansible-playbook, its forks and
    ssh clients, ansible-runner (not the fleet's sshd, whose sessions are not reaped here)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _bare(fleet: SshFleet, work: Path) -> float:
    work.mkdir()
    hosts = {
        n.name: {"ansible_host": n.address, "ansible_port": n.port, "ansible_user": fleet.username}
        for n in fleet.nodes
    }
    (work / "inventory.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    (work / "main.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(fleet.private_key_path),
        # Its own, like every knm run: by default every bare run would share ~/.ansible/cp and
        # reuse the ssh masters (ControlPersist, 60 s) of the previous round's run.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
    }
    binary = AnsibleSettings().binary_path
    argv = [binary, "-i", "inventory.yml", "main.yml", "--forks", str(len(fleet.nodes))]
    began = time.perf_counter()
    subprocess.run(argv, cwd=work, env=env, check=True, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - began
    _stop_masters(work / "cp")
    return elapsed


def _stop_masters(control_dir: Path) -> None:
    """Ends the run's ssh masters (after the clock stopped: a user does not wait for them)."""
    masters = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if any(str(control_dir) in arg for arg in proc.info.get("cmdline") or [])
    ]
    for proc in masters:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_until_gone(masters, 5.0)


async def _knm(fleet: SshFleet, root: Path, ident: str, agent: bool) -> tuple[float, int, float]:
    """(wall seconds, events read, seconds spent reading and parsing them)."""
    settings = AnsibleSettings(temp_dir=str(root))
    nodes = [TargetNode(name=n.name, address=n.address, port=n.port) for n in fleet.nodes]
    key, passphrase = (
        (fleet.encrypted_private_key_pkcs8_pem, fleet.key_passphrase)
        if agent
        else (fleet.private_key_pem, None)
    )
    credential = SimpleNamespace(
        username=fleet.username, password=None, private_key=key, passphrase=passphrase
    )
    began = time.perf_counter()
    # What knm runs: its Python, or a mirror of it when the run user cannot reach the install
    # (stamped, so only the first run builds it).
    tools = toolchain.resolve(settings, root.parent / "data")
    user = tools.user or runner.ensure_run_user(settings.run_user)
    run_dir = runner.runs_root_of(settings) / ident
    runner.make_dirs(run_dir)
    laid = layout.lay_out(
        run_dir, playbook=PLAYBOOK, nodes=nodes, credential=credential,
        keys=HostKeys(policy="off"), jump=None,
        args=["main.yml", "--forks", str(len(nodes))], extra_vars={}, settings=settings,
        mark=ident, tools=tools,
    )  # fmt: skip
    runner.hand_over(run_dir, user)
    # What the executor does: the key reaches ansible only through the run's own ssh-agent,
    # passwords through a pipe (no secret file in the run dir); stopped when the run ends.
    served = Served()
    await served.start(run_dir, laid, user, ident)
    argv = runner.runner_argv(settings, run_dir, "run", tools)
    proc = await runner.start(argv, laid.env, run_dir, user, run_dir / "runner.out")
    reader = EventReader(run_dir / "artifacts" / "run" / "job_events")
    state = PlayState([n.name for n in nodes], 3)
    events, parse = 0, 0.0

    def read(final: bool = False) -> None:
        nonlocal events, parse
        started = time.perf_counter()
        for event in reader.read(time.monotonic(), final=final):
            state.feed(event)
            events += 1
        parse += time.perf_counter() - started

    exited = asyncio.ensure_future(proc.wait())
    while not exited.done():
        await asyncio.wait({exited}, timeout=POLL)
        await asyncio.to_thread(read)
    await asyncio.to_thread(runner.kill_run, proc.pid, ident, user)
    await served.stop()
    read(final=True)
    results = [state.result(n.name, excluded=False, run_error="", pinned=False) for n in nodes]
    elapsed = time.perf_counter() - began
    if any(r.status != "success" for r in results):
        raise SystemExit(
            f"knm run failed: {results} {runner.read_tail(run_dir / 'runner.out', 2000)}"
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    return elapsed, events, parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="2 nodes, 1 run: checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.repeat = 2, 1
    if os.geteuid() != 0:
        raise SystemExit("needs root: the fleet starts sshd, knm switches to the run user")
    base = Path(tempfile.mkdtemp(prefix="knm-bench-ansible-"))
    base.chmod(0o711)
    say(machine())
    times = {"bare": Timing(), "knm": Timing(), "knm-agent": Timing()}
    try:
        with SshFleet(base / "fleet", nodes=args.nodes) as fleet:
            # One untimed round of each: the page cache, sshd's first logins, .pyc files.
            _bare(fleet, base / "warm-bare")
            asyncio.run(_knm(fleet, base / "runs", "warm", False))
            modes = list(times)
            for i in range(args.repeat):
                # Each round starts with another mode: no mode always runs right after another.
                for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
                    before = _cpu()
                    if mode == "bare":
                        times[mode].seconds.append(_bare(fleet, base / f"bare-{i}"))
                    else:
                        seconds, events, parse = asyncio.run(
                            _knm(fleet, base / "runs", f"{mode}-{i}", mode == "knm-agent")
                        )
                        times[mode].seconds.append(seconds)
                        times[mode].events.append(events)
                        times[mode].parse_seconds.append(parse)
                    times[mode].cpu.append(_cpu() - before)
                say(
                    f"round {i + 1}: "
                    + ", ".join(
                        f"{k} {v.seconds[-1]:.2f} s ({v.cpu[-1]:.2f} s CPU)"
                        for k, v in times.items()
                    )
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    bare = statistics.median(times["bare"].seconds)
    bare_cpu = statistics.median(times["bare"].cpu)
    rows = []
    for mode, timing in times.items():
        median = statistics.median(timing.seconds)
        cpu = statistics.median(timing.cpu)
        events = round(statistics.median(timing.events)) if timing.events else "-"
        rate = (
            f"{sum(timing.events) / sum(timing.parse_seconds):,.0f}"
            if timing.events and sum(timing.parse_seconds) > 0
            else "-"
        )
        ratio = median / bare
        verdict = "" if mode == "bare" else ("pass" if ratio <= TARGET else "MISS")
        rows.append([
            mode, args.nodes, f"{median:.2f}", f"{ratio:.2f}", verdict,
            f"{cpu:.2f}", f"{cpu / bare_cpu:.2f}", events, rate,
        ])  # fmt: skip
    headers = [
        "mode", "nodes", "median s", "× bare", f"≤ {TARGET}",
        "CPU s", "CPU × bare", "events", "events/s",
    ]  # fmt: skip
    print(table(headers, rows))
    say(load_average())


if __name__ == "__main__":
    main()
