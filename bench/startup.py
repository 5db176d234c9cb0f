"""Start-up of the client and the CLI: how long a fresh Python takes to run each, beside
``python -c pass``.

- ``import knm.client``: the SDK without its HTTP client (loaded on first use);
- ``from knm.client import Client``: with it (the standard library's ``http.client``);
- ``knm --help``: every parser, no plugin, no server module;
- ``knm task list (nothing listens)``: a remote command against port 9: the time to fail and exit;
- ``knm task list``: against a running ``knm serve`` (a throwaway database, logged in as admin):
  a first page of tasks printed as a table;
- beside them, when it is on ``PATH``, the command-line tool operators compare ``knm`` with:
  ``kubectl version --client`` and ``kubectl --help`` (a compiled Go program: no interpreter to
  start), with each knm command's ratio to ``kubectl version --client``.

Each is a fresh process (``-X frozen_modules=on`` is the default); the figure is the median wall
time of ``--repeat`` runs, interleaved so a load change hits all alike. Bytecode is cached (in a
``PYTHONPYCACHEPREFIX`` of the run's own) as an installed knm has it, whatever
``PYTHONDONTWRITEBYTECODE`` says: compiling knm's sources at every start is not start-up.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
#: name, command, whether it talks to the running server.
CASES: list[tuple[str, list[str], bool]] = [
    ("python -c pass", [PY, "-c", "pass"], False),
    # The floor of anything that decodes the wire: msgspec (which imports typing_extensions).
    ("import msgspec", [PY, "-c", "import msgspec"], False),
    ("import knm.client", [PY, "-c", "import knm.client"], False),
    ("from knm.client import Client", [PY, "-c", "from knm.client import Client"], False),
    ("knm --help", [PY, "-m", "knm.cli.main", "--help"], False),
    ("knm task list (nothing listens)", [PY, "-m", "knm.cli.main", "task", "list"], False),
    ("knm task list", [PY, "-m", "knm.cli.main", "task", "list"], True),
]
#: The peer: kubectl, when installed (its client-only commands: no cluster needed).
PEER = "kubectl version --client"
if kubectl := shutil.which("kubectl"):
    CASES += [
        (PEER, [kubectl, "version", "--client"], False),
        ("kubectl --help", [kubectl, "--help"], False),
    ]
TARGETS = {"import knm.client": 0.100, "knm --help": 0.300, "knm task list": 0.300}


def once(args: list[str], env: dict[str, str], *, check: bool = False) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process's own accounting) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if check else subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs of each case")
    parser.add_argument("--smoke", action="store_true", help="3 runs of each case")
    args = parser.parse_args(argv)
    repeat = 3 if args.smoke else args.repeat
    from bench.common import login as login_admin
    from bench.common import process_env, start_knm, stop_all, throwaway_database

    with tempfile.TemporaryDirectory(prefix="knm-startup-") as tmp:
        workdir = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KNM_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        env["KNM_URL"] = "http://127.0.0.1:9"  # nothing listens there
        env["KNM_TOKEN"] = "none"
        with throwaway_database(workdir) as database_url:
            server = start_knm(workdir / "knm", database_url, ["serve"], process_env([]))
            try:
                served = {**env, "KNM_URL": server.base_url, "KNM_TOKEN": login_admin(server)}
                times = measure(repeat, env, served)
            finally:
                stop_all([server])
    load = os.getloadavg()
    print(f"{repeat} runs each; load average {load[0]:.2f} {load[1]:.2f}", file=sys.stderr)
    report(times)
    return 0


def measure(
    repeat: int, env: dict[str, str], served: dict[str, str]
) -> dict[str, list[tuple[float, float]]]:
    for _, case, live in CASES:  # fill the bytecode caches; a served command must succeed
        once(case, served if live else env, check=live)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in CASES}
    for _ in range(repeat):
        for name, case, live in CASES:
            times[name].append(once(case, served if live else env))
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    """Wall time (what the targets are about) and CPU time: on a loaded machine the wall time
    grows with the queue for a CPU, the CPU time far less."""
    base = statistics.median(wall for wall, _ in times["python -c pass"])
    peer = statistics.median(wall for wall, _ in times[PEER]) if PEER in times else None
    print(
        "| case | median ms | min ms | × python -c pass | × kubectl version --client "
        "| CPU median ms | target |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, _, _ in CASES:
        walls = [wall for wall, _ in times[name]]
        median = statistics.median(walls)
        cpu = statistics.median(c for _, c in times[name])
        target = TARGETS.get(name)
        versus = f"{median / peer:.1f}" if peer else "-"
        print(
            f"| {name} | {median * 1000:.0f} | {min(walls) * 1000:.0f} | {median / base:.1f} "
            f"| {versus} | {cpu * 1000:.0f} | {f'≤ {target * 1000:.0f} ms' if target else ''} |"
        )


if __name__ == "__main__":
    sys.exit(main())
