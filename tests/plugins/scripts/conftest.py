"""Fixtures of the scripts plugin's tests: the real sshd fleet, scripts, and run helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import FleetRunner

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
def script_runner(knm_fleet_runner: Callable[..., FleetRunner], fleet: FleetCluster) -> FleetRunner:
    return knm_fleet_runner("scripts", fleet)


@pytest.fixture(scope="module")
def start_script(script_runner: FleetRunner) -> Runner:
    """Starts a script task on the fleet's healthy nodes (fields override); returns ``data``."""
    return script_runner.start


@pytest.fixture(scope="module")
def run_script(script_runner: FleetRunner) -> Runner:
    """Runs a script task to its end; returns its final status."""
    return script_runner.run


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}
