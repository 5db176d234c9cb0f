"""Fixtures of the SSH plugin's tests: the real sshd fleet, a cluster of it, and task helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import FleetRunner

Runner = Callable[..., Awaitable[dict[str, Any]]]

#: Short enough that a silent node fails fast, long enough for a loaded 2-core machine.
FAST_SETTINGS = {"connect_timeout": 3}


@pytest.fixture(scope="module")
async def fleet(
    ssh_fleet_cluster: FleetCluster,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
) -> FleetCluster:
    """The fleet's cluster, with SSH settings that fail unreachable nodes quickly."""
    response = await knm_client.put(
        "/features/automation/ssh", json=FAST_SETTINGS, headers=admin_headers
    )
    assert_envelope(response, 200)
    return ssh_fleet_cluster


@pytest.fixture(scope="module")
def ssh_runner(knm_fleet_runner: Callable[..., FleetRunner], fleet: FleetCluster) -> FleetRunner:
    return knm_fleet_runner("ssh", fleet)


@pytest.fixture(scope="module")
def start_ssh(ssh_runner: FleetRunner) -> Runner:
    """Starts an SSH task on the fleet (body fields override the defaults); returns ``data``."""
    return ssh_runner.start


@pytest.fixture(scope="module")
def run_ssh(ssh_runner: FleetRunner) -> Runner:
    """Runs an SSH task on the fleet to its end; returns its final status."""
    return ssh_runner.run
