"""Ansible overhead: what knm's way of running a playbook costs over a bare ansible-playbook.

Against a real sshd fleet (``knm.testing.sshfleet``, N loopback nodes; needs root), one small
playbook (ping, a command, a debug) runs in four ways, each ``--repeat`` times:

- ``bare``: ``ansible-playbook`` as root with a static inventory, key auth, pipelining on;
- ``bare-nopipe``: the same with pipelining off (knm's default, see the Ansible docs);
- ``knm``: what the executor does minus the API and database: a run directory laid out by
  ``knm.plugins.ansible``, ``ansible-runner run`` as the run user, the key through ssh-agent,
  events read back into per-node results (checked: every node ``ok``);
- ``knm-pipe``: the same with pipelining on.

Prints a Markdown table of median wall time per run and the overhead over ``bare``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from bench.common import load_average, machine, say, table
from knm.core.tasks import TargetNode
from knm.plugins.ansible import inventory, runner
from knm.plugins.ansible.events import EventReader, PlayState
from knm.plugins.ansible.schemas import AnsibleSettings
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


def _bare(fleet: SshFleet, work: Path, pipelining: bool) -> float:
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
        "ANSIBLE_PIPELINING": str(pipelining),
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(fleet.private_key_path),
    }
    binary = AnsibleSettings().binary_path
    argv = [binary, "-i", "inventory.yml", "main.yml", "--forks", str(len(fleet.nodes))]
    began = time.perf_counter()
    subprocess.run(argv, cwd=work, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - began


async def _knm(fleet: SshFleet, root: Path, ident: str, pipelining: bool) -> float:
    settings = AnsibleSettings(temp_dir=str(root), pipelining=pipelining)
    nodes = [TargetNode(name=n.name, address=n.address, port=n.port) for n in fleet.nodes]
    credential = SimpleNamespace(
        username=fleet.username, password=None, private_key=fleet.private_key_pem, passphrase=None
    )
    began = time.perf_counter()
    user = runner.ensure_run_user(settings.run_user)
    run_dir = runner.runs_root(settings) / ident
    runner.make_dirs(run_dir)
    built = inventory.build(nodes, credential)
    (run_dir / "project" / "main.yml").write_text(PLAYBOOK)
    (run_dir / "inventory" / "hosts.yml").write_text(json.dumps(built.hosts))
    runner.write_private(run_dir / "env" / "ssh_key", built.agent_key)
    (run_dir / "env" / "cmdline").write_text(f"main.yml --forks {len(nodes)}")
    runner.hand_over(run_dir, user)
    env = runner.environment(settings, run_dir, ident)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    proc = await runner.start(runner.runner_argv(settings, run_dir, "run"), env, run_dir, user)
    await proc.communicate()
    runner.kill_run(proc.pid, ident, user)
    state = PlayState([n.name for n in nodes], 3)
    for event in EventReader(run_dir / "artifacts" / "run" / "job_events").read(0, final=True):
        state.feed(event)
    elapsed = time.perf_counter() - began
    results = [state.result(n.name, excluded=False, run_error="", pinned=False) for n in nodes]
    if any(r.status != "success" for r in results):
        raise SystemExit(f"knm run failed: {results}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="2 nodes, 1 run: checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.repeat = 2, 1
    if os.geteuid() != 0:
        raise SystemExit("needs root: the fleet starts sshd, knm switches to the run user")
    base = Path(tempfile.mkdtemp(prefix="knm-bench-ansible-"))
    base.chmod(0o711)
    say(machine())
    times: dict[str, list[float]] = {"bare": [], "bare-nopipe": [], "knm": [], "knm-pipe": []}
    try:
        with SshFleet(base / "fleet", nodes=args.nodes) as fleet:
            for i in range(args.repeat):
                times["bare"].append(_bare(fleet, base / f"bare-{i}", True))
                times["bare-nopipe"].append(_bare(fleet, base / f"nopipe-{i}", False))
                times["knm"].append(asyncio.run(_knm(fleet, base / "runs", f"k{i}", False)))
                times["knm-pipe"].append(asyncio.run(_knm(fleet, base / "runs", f"p{i}", True)))
                say(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    bare = statistics.median(times["bare"])
    rows = [
        [mode, args.nodes, statistics.median(values), statistics.median(values) - bare]
        for mode, values in times.items()
    ]
    print(table(["mode", "nodes", "median s", "over bare s"], rows))
    say(load_average())


if __name__ == "__main__":
    main()
