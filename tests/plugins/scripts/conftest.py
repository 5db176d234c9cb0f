"""Fixtures of the scripts plugin's tests: the real sshd fleet, scripts, and run helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import start_task, wait_for_task

Runner = Callable[..., Awaitable[dict[str, Any]]]
Maker = Callable[..., Awaitable[dict[str, Any]]]
SCRIPTS = "/automation/scripts"


@pytest.fixture(scope="module")
async def fleet(
    ssh_fleet_cluster: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str]
) -> FleetCluster:
    """The fleet's cluster, with SSH settings that fail unreachable nodes quickly."""
    response = await knm_client.put(
        "/features/automation/ssh", json={"connect_timeout": 3}, headers=admin_headers
    )
    assert_envelope(response, 200)
    return ssh_fleet_cluster


@pytest.fixture(scope="module")
def make_script(knm_client: ApiClient, admin_headers: dict[str, str]) -> Maker:
    """Creates a script (body fields as given) and returns it."""
    count = 0

    async def make(content: str, **body: Any) -> dict[str, Any]:
        nonlocal count
        count += 1
        body = {"name": f"script {count}", "content": content, **body}
        response = await knm_client.post(SCRIPTS, json=body, headers=admin_headers)
        return assert_envelope(response, 201)["data"]

    return make


@pytest.fixture(scope="module")
def start_script(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> Runner:
    """Starts a script task on the fleet's healthy nodes (fields override); returns ``data``."""

    async def start(**body: Any) -> dict[str, Any]:
        request = {
            "cluster_name": fleet.cluster_name,
            "credential_id": fleet.credential_id,
            "target_nodes": fleet.nodes,
            **body,
        }
        return await start_task(knm_client, admin_headers, "scripts", **request)

    return start


@pytest.fixture(scope="module")
def run_script(
    knm_client: ApiClient, admin_headers: dict[str, str], start_script: Runner
) -> Runner:
    """Runs a script task to its end; returns its final status."""

    async def run(**body: Any) -> dict[str, Any]:
        data = await start_script(**body)
        return await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)

    return run


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}
