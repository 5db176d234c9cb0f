"""The maintenance state machine's invariants catch issue 19's findings 1–3 on the engine as it
behaved before they were fixed (:mod:`knm.testing.maintenance_mutants`, applied in the lab's knm
processes only): each finding's setting, made as moves of the machine, breaks that finding's
invariant on its mutant every time, and nothing on the engine as it is.

The random hunts that find those settings by chance (findings 1 and 3 within 3–14 examples,
finding 2 anywhere from 7 to over 68) are ``python -m bench.maintenance_mutants``: a hunt is not
bounded in time, so CI replays the settings instead (bench/README.md, "maintenance soak")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knm.testing.maintenance_lab import maintenance_lab, replay
from knm.testing.maintenance_mutants import MUTANTS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """The lab's directory; each lab gets a database of its own (``knm_fresh_database_url``):
    each creates the same cluster and workflow."""
    if os.geteuid() != 0:
        pytest.skip("the SSH fleet needs root (it starts sshd and creates a user)")
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("mutant", sorted(MUTANTS, key=lambda name: MUTANTS[name].finding))
def test_the_machine_catches_the_engine_before_the_fix_of_finding(
    lab_dir: Path, knm_fresh_database_url: str, mutant: str
) -> None:
    with maintenance_lab(lab_dir, knm_fresh_database_url, mutant) as lab:
        found = replay(lab, MUTANTS[mutant].shown_by)
        ran = lab.counters.summary()
    assert found is not None, f"{mutant} went unnoticed: {ran}"
    print(f"{mutant}: {found} ({ran})")
    assert any(text in found.message for text in MUTANTS[mutant].breaks), found


def test_the_same_moves_break_nothing_on_the_engine_as_it_is(
    lab_dir: Path, knm_fresh_database_url: str
) -> None:
    with maintenance_lab(lab_dir, knm_fresh_database_url) as lab:
        for mutant in sorted(MUTANTS, key=lambda name: MUTANTS[name].finding):
            found = replay(lab, MUTANTS[mutant].shown_by)
            assert found is None, f"the moves showing {mutant} broke the engine as it is: {found}"
        print(f"control: {lab.counters.summary()}")
        # Three rolls, and the resumes of findings 2 and 3: the settings were made, not skipped.
        assert (lab.counters.runs, lab.counters.resumes) == (5, 2), lab.counters.summary()
