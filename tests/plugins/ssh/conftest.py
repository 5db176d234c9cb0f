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
#: The SSH settings' ``client`` values: transport-level tests run with each.
CLIENTS = ["asyncssh", "libssh2"]


@pytest.fixture(scope="module")
def ssh_client() -> str:
    """The SSH client a module's tasks use; a module holding both clients to the same
    assertions overrides it with one parametrized over ``CLIENTS``."""
    return "asyncssh"


@pytest.fixture(scope="module")
async def fleet(
    ssh_fleet_cluster: FleetCluster,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    ssh_client: str,
) -> FleetCluster:
    """The fleet's cluster, with SSH settings that fail unreachable nodes quickly, and the
    module's SSH client."""
    response = await knm_client.put(
        "/features/automation/ssh",
        json={**FAST_SETTINGS, "client": ssh_client},
        headers=admin_headers,
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
