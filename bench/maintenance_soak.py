"""A soak of the maintenance state machine (:mod:`knm.testing.maintenance_lab`): random
interleavings of rolls, cancels, worker SIGKILLs, resumes, reruns, hand cordons, reboots and
budget changes over a Kubernetes stand-in and a 6-node SSH fleet, the safety invariants checked
against the stand-in's whole history after every rule. Prints runs, steps and invariant checks
per minute; exits 1 on the first counterexample (hypothesis prints it).

    python -m bench.maintenance_soak                  # at least 1,000 examples
    python -m bench.maintenance_soak --minutes 30     # or for a time
    python -m bench.maintenance_soak --smoke          # 2 examples: checks the machinery

Needs root (the fleet starts sshd and creates a user).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from hypothesis.errors import Flaky

from bench.common import load_average, machine, table, throwaway_database
from knm.testing.maintenance_lab import MaintenanceMachine, machine_settings, maintenance_lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples to run at least")
    parser.add_argument("--minutes", type=float, default=0.0, help="run for this long instead")
    parser.add_argument("--steps", type=int, default=8, help="rules per example at most")
    parser.add_argument("--smoke", action="store_true", help="2 examples")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the SSH fleet needs root")
    examples = 2 if args.smoke else args.examples
    workdir = Path(tempfile.mkdtemp(prefix="knm-soak-"))
    setup_started = time.monotonic()
    failed = False
    with throwaway_database(workdir) as database_url, maintenance_lab(workdir, database_url) as lab:
        MaintenanceMachine.lab = lab
        # Rates count from here: the lab's setup (fleet, database, processes) is once per soak.
        started = time.monotonic()
        print(f"lab set up in {started - setup_started:.0f} s", file=sys.stderr)
        until = started + args.minutes * 60 if args.minutes else None
        batch = 0
        while True:
            batch += 1
            case = MaintenanceMachine.TestCase
            case.settings = machine_settings(examples if until is None else 25, args.steps)
            try:
                case().runTest()
            except (AssertionError, Flaky) as exc:
                print(f"counterexample: {exc}", file=sys.stderr)
                failed = True
                break
            elapsed = time.monotonic() - started
            print(
                f"batch {batch} after {elapsed:.0f} s: {lab.counters.summary()}; {load_average()}",
                file=sys.stderr,
            )
            if until is None or time.monotonic() >= until:
                break
        minutes = max(1e-9, (time.monotonic() - started) / 60)
        c = lab.counters
        print(f"machine: {machine()}; {load_average()}", file=sys.stderr)
        print(f"{c.summary()}; on the nodes: {lab.agent.done}", file=sys.stderr)
        headers = [
            "examples", "runs", "steps", "rules", "invariant checks", "worker kills",
            "minutes", "s/example", "runs/min", "steps/min", "checks/min", "result",
        ]  # fmt: skip
        row = [
            c.examples, c.runs, c.steps, c.rules, c.checks, c.kills, f"{minutes:.1f}",
            f"{minutes * 60 / max(1, c.examples):.1f}",
            f"{c.runs / minutes:.1f}", f"{c.steps / minutes:.1f}", f"{c.checks / minutes:.1f}",
            "FAILED" if failed else "ok",
        ]  # fmt: skip
        print(table(headers, [row]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
