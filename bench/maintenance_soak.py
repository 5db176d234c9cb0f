"""A soak of the maintenance state machine (:mod:`knm.testing.maintenance_lab`): random
interleavings of rolls, cancels, worker SIGKILLs, resumes, reruns, hand cordons, reboots and
budget changes over a Kubernetes stand-in and a 6-node SSH fleet, the safety invariants checked
against the stand-in's whole history after every rule. Prints runs, steps and invariant checks
per minute; exits 1 on the first counterexample (hypothesis prints it).

    python -m bench.maintenance_soak                  # at least 1,000 examples
    python -m bench.maintenance_soak --minutes 30     # or for a time (or whichever ends first)
    python -m bench.maintenance_soak --smoke          # 2 examples: checks the machinery
    python -m bench.maintenance_soak --labs 4         # 1,000 examples over four labs at once

A lab spends nearly all its time waiting on simulated reboots and leases, so ``--labs N`` runs N
labs side by side (each its own process, database, fleet and stand-in), the examples and the
time shared among them, and prints each lab's row and the total.

Needs root (the fleet starts sshd and creates a user).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hypothesis.errors import Flaky

from bench.common import load_average, machine, table, throwaway_database
from knm.testing.maintenance_lab import MaintenanceMachine, machine_settings, maintenance_lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples to run")
    parser.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="at most this long (with --examples: whichever ends first)",
    )
    parser.add_argument("--steps", type=int, default=8, help="rules per example at most")
    parser.add_argument("--smoke", action="store_true", help="2 examples")
    parser.add_argument("--labs", type=int, default=1, help="labs side by side, one process each")
    parser.add_argument("--counters", type=Path, help=argparse.SUPPRESS)  # a lab of --labs
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the SSH fleet needs root")
    if args.labs > 1:
        sys.exit(side_by_side(args))
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
            left = examples - lab.counters.examples
            case.settings = machine_settings(left if until is None else min(25, left), args.steps)
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
            if until is None or time.monotonic() >= until or lab.counters.examples >= examples:
                break
        minutes = max(1e-9, (time.monotonic() - started) / 60)
        c = lab.counters
        print(f"machine: {machine()}", file=sys.stderr)
        print(f"{c.summary()}; on the nodes: {lab.agent.done}", file=sys.stderr)
        counts = Counts(c.examples, c.runs, c.steps, c.rules, c.checks, c.kills, minutes, failed)
        if args.counters:
            args.counters.write_text(json.dumps(counts.__dict__))
        print(table(HEADERS, [counts.row()]))
    if failed:
        print(f"the lab's files (knm logs, fleet, database) are kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failed else 0)


HEADERS = [
    "lab", "examples", "runs", "steps", "rules", "invariant checks", "worker kills",
    "minutes", "s/example", "runs/min", "steps/min", "checks/min", "result",
]  # fmt: skip


@dataclass
class Counts:
    """What one lab (or, summed, every lab) ran: the figures of the table."""

    examples: int
    runs: int
    steps: int
    rules: int
    checks: int
    kills: int
    minutes: float
    failed: bool

    def row(self, lab: str = "1") -> list[object]:
        minutes = max(1e-9, self.minutes)
        return [
            lab, self.examples, self.runs, self.steps, self.rules, self.checks, self.kills,
            f"{self.minutes:.1f}", f"{minutes * 60 / max(1, self.examples):.1f}",
            f"{self.runs / minutes:.1f}", f"{self.steps / minutes:.1f}",
            f"{self.checks / minutes:.1f}", "FAILED" if self.failed else "ok",
        ]  # fmt: skip


def side_by_side(args: argparse.Namespace) -> int:
    """Run ``args.labs`` labs at once, each a process of this module sharing the examples (or
    running the whole ``--minutes``); print every lab's row and the total. The total's rates
    are per minute of wall time, so they count every lab's work."""
    share = 2 if args.smoke else math.ceil(args.examples / args.labs)
    workdir = Path(tempfile.mkdtemp(prefix="knm-soak-labs-"))
    started = time.monotonic()
    children = []
    for lab in range(1, args.labs + 1):
        counters = workdir / f"lab{lab}.json"
        command = [sys.executable, "-m", "bench.maintenance_soak", "--examples", str(share),
                   "--minutes", str(args.minutes), "--steps", str(args.steps),
                   "--counters", str(counters)]  # fmt: skip
        children.append((counters, subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    codes = [child.wait() for _, child in children]
    wall = (time.monotonic() - started) / 60
    labs = [
        Counts(**json.loads(path.read_text())) if path.exists() else None for path, _ in children
    ]
    shutil.rmtree(workdir, ignore_errors=True)  # the counters only; each lab keeps its own
    rows = []
    for i, (counts, code) in enumerate(zip(labs, codes, strict=True), start=1):
        rows.append(counts.row(str(i)) if counts else [str(i), *["-"] * 11, f"exit {code}"])
    done = [c for c in labs if c]
    total = Counts(
        *(sum(getattr(c, f) for c in done) for f in ("examples", "runs", "steps", "rules",
                                                      "checks", "kills")),
        minutes=wall, failed=any(codes) or len(done) < len(labs),
    )  # fmt: skip
    rows.append(total.row("all"))
    print(f"machine: {machine()}", file=sys.stderr)
    print(table(HEADERS, rows))
    return 1 if total.failed else 0


if __name__ == "__main__":
    main()
