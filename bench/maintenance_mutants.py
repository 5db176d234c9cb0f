"""Does the maintenance state machine find issue 19's findings 1–3? Runs it against the engine
with each finding's old behaviour put back (:mod:`knm.testing.maintenance_mutants`, applied in
the lab's knm processes only) until an invariant breaks, and against the engine as it is (the
control, which must break nothing). Prints, per mutant, the invariant that broke and after how
many examples and seconds.

    python -m bench.maintenance_mutants                         # every mutant, then the control
    python -m bench.maintenance_mutants --mutant resume_skips_finalizers --examples 100
    python -m bench.maintenance_mutants --mutant control --minutes 10   # the control alone

Needs root (the fleet starts sshd and creates a user).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import load_average, machine, table, throwaway_database
from knm.testing.maintenance_lab import Failure, hunt, maintenance_lab
from knm.testing.maintenance_mutants import MUTANTS

CONTROL = "control"


def run_one(
    mutant: str | None, examples: int, steps: int, minutes: float
) -> tuple[Failure | None, int, float, str]:
    workdir = Path(tempfile.mkdtemp(prefix=f"knm-mutant-{mutant or CONTROL}-"))
    workdir.chmod(0o755)
    started = time.monotonic()
    with (
        throwaway_database(workdir) as database_url,
        maintenance_lab(workdir, database_url, mutant) as lab,
    ):
        lab.progress = True
        found = hunt(lab, examples=examples, steps=steps, minutes=minutes)
        print(f"{mutant or CONTROL}: {lab.counters.summary()}", file=sys.stderr)
        ran = lab.counters.examples
    if (found is None) == (mutant is None):  # as expected: nothing to look into
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"the lab's files (knm logs, fleet) are kept in {workdir}", file=sys.stderr)
    return found, ran, time.monotonic() - started, load_average()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mutant",
        action="append",
        choices=[*sorted(MUTANTS), CONTROL],
        help=f"(repeatable; {CONTROL}: the engine as it is) default: every mutant, then {CONTROL}",
    )
    parser.add_argument("--examples", type=int, default=200, help="at most, per run")
    parser.add_argument("--minutes", type=float, default=0.0, help="at most, per run")
    parser.add_argument("--steps", type=int, default=8, help="rules per example at most")
    parser.add_argument("--control-examples", type=int, default=0, help="default: --examples")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the SSH fleet needs root")
    names = args.mutant or [*sorted(MUTANTS, key=lambda n: MUTANTS[n].finding), CONTROL]
    runs: list[str | None] = [None if name == CONTROL else name for name in names]
    rows = []
    missed = False
    for mutant in runs:
        examples = (args.control_examples or args.examples) if mutant is None else args.examples
        found, ran, seconds, load = run_one(mutant, examples, args.steps, args.minutes)
        expected = MUTANTS[mutant].breaks if mutant else ()
        if mutant is None:
            verdict = "ok: nothing broke" if found is None else "BROKE"
            missed |= found is not None
        elif found is None:
            verdict = "not found"
            missed = True
        else:
            matched = any(text in found.message for text in expected)
            verdict = "found" if matched else "found, another invariant"
            missed |= not matched
        rows.append(
            [
                mutant or CONTROL,
                MUTANTS[mutant].finding if mutant else "",
                verdict,
                found.message[:110] if found else "",
                found.examples if found else ran,
                f"{found.seconds:.0f}" if found else f"{seconds:.0f}",
                load,
            ]
        )
        print(f"{rows[-1]}", file=sys.stderr)
    print(f"machine: {machine()}", file=sys.stderr)
    headers = ["run", "finding", "result", "invariant broken", "examples", "seconds", "load"]
    print(table(headers, rows))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
