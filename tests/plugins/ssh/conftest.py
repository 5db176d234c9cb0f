"""Fixtures of the SSH plugin's tests: the real sshd fleet, a cluster of it, and task helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import start_task, wait_for_task

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
def start_ssh(knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster) -> Runner:
    """Starts an SSH task on the fleet (body fields override the defaults); returns ``data``."""

    async def start(**body: Any) -> dict[str, Any]:
        request = {
            "cluster_name": fleet.cluster_name,
            "credential_id": fleet.credential_id,
            "target_nodes": fleet.nodes,
            **body,
        }
        return await start_task(knm_client, admin_headers, "ssh", **request)

    return start


@pytest.fixture(scope="module")
def run_ssh(knm_client: ApiClient, admin_headers: dict[str, str], start_ssh: Runner) -> Runner:
    """Runs an SSH task on the fleet to its end; returns its final status."""

    async def run(**body: Any) -> dict[str, Any]:
        data = await start_ssh(**body)
        return await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)

    return run
