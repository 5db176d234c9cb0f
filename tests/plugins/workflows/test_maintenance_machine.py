"""The stateful property test of node maintenance (see :mod:`knm.testing.maintenance_lab`):
random interleavings of rolls, cancels, worker SIGKILLs, resumes, reruns, hand cordons, reboots
and budget changes, with the safety invariants checked against the stand-in's whole history
after every rule. ``python -m bench.maintenance_soak`` runs the same machine for longer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knm.testing.maintenance_lab import MaintenanceMachine, machine_settings, maintenance_lab

EXAMPLES = int(os.environ.get("KNM_MACHINE_EXAMPLES", "50"))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_maintenance_stays_safe_through_any_interleaving(
    tmp_path: Path, knm_database_url: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the SSH fleet needs root (it starts sshd and creates a user)")
    tmp_path.chmod(0o755)
    with maintenance_lab(tmp_path, knm_database_url) as lab:
        MaintenanceMachine.lab = lab
        machine = MaintenanceMachine.TestCase
        machine.settings = machine_settings(
            EXAMPLES, 6, derandomize=os.environ.get("KNM_MACHINE_RANDOM") != "1"
        )
        machine().runTest()
        print(f"maintenance machine: {lab.counters.summary()}")
        assert lab.counters.examples >= EXAMPLES
        assert lab.counters.runs > 0 and lab.counters.checks > lab.counters.examples
