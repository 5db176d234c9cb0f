"""Start-up of the client and the CLI: how long a fresh Python takes to run each, beside
``python -c pass``.

- ``import knm.client``: the SDK without its HTTP client (loaded on first use);
- ``from knm.client import Client``: with it (httpx);
- ``knm --help``: every parser, no plugin, no server module;
- ``knm task list``: a remote command against nothing (port 9): the time to fail and exit.

Each is a fresh process (``-X frozen_modules=on`` is the default); the figure is the median wall
time of ``--repeat`` runs, interleaved so a load change hits all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("import knm.client", ["-c", "import knm.client"]),
    ("from knm.client import Client", ["-c", "from knm.client import Client"]),
    ("knm --help", ["-m", "knm.cli.main", "--help"]),
    ("knm task list", ["-m", "knm.cli.main", "task", "list"]),
]
TARGETS = {"import knm.client": 0.100, "knm --help": 0.300, "knm task list": 0.300}


def once(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs of each case")
    parser.add_argument("--smoke", action="store_true", help="3 runs of each case")
    args = parser.parse_args(argv)
    repeat = 3 if args.smoke else args.repeat
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    env["KNM_URL"] = "http://127.0.0.1:9"  # nothing listens there
    env["KNM_TOKEN"] = "none"
    for _, case in CASES:  # warm the bytecode caches
        once(case, env)
    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    for _ in range(repeat):
        for name, case in CASES:
            times[name].append(once(case, env))
    load = os.getloadavg()
    print(f"{repeat} runs each; load average {load[0]:.2f} {load[1]:.2f}", file=sys.stderr)
    base = statistics.median(times["python -c pass"])
    print("| case | median ms | min ms | × python -c pass | target |")
    print("|---|---:|---:|---:|---|")
    for name, _ in CASES:
        median = statistics.median(times[name])
        target = TARGETS.get(name)
        print(
            f"| {name} | {median * 1000:.0f} | {min(times[name]) * 1000:.0f} "
            f"| {median / base:.1f} | {f'≤ {target * 1000:.0f} ms' if target else ''} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
