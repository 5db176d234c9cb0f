"""The contrib plugin's ``uptime`` step runs shell on nodes through the public contract only
(``knm.core.policy.check`` and ``ctx.run_shell``), as any third party's would."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import start_task, wait_for_task

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "knm-step-http"


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    sys.path.insert(0, str(CONTRIB))
    try:
        import knm_step_http
    finally:
        sys.path.remove(str(CONTRIB))
    return [knm_step_http]


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


async def test_a_third_party_executor_runs_shell_on_every_node_through_run_shell(
    knm_client: ApiClient, admin_headers: dict[str, str], ssh_fleet_cluster: FleetCluster
) -> None:
    fleet = ssh_fleet_cluster
    data = await start_task(
        knm_client, admin_headers, "uptime",
        cluster_name=fleet.cluster_name, credential_id=fleet.credential_id,
        target_nodes=[*fleet.nodes, fleet.refused],
    )  # fmt: skip
    assert data["command"] == "cat /proc/uptime"
    status = await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)
    results = by_node(status)
    for node in fleet.nodes:
        assert results[node]["status"] == "success", results[node]
        assert re.match(r"^\d+\.\d+ \d+\.\d+\n$", results[node]["stdout"])
    assert (results[fleet.refused]["status"], results[fleet.refused]["reason"]) == (
        "failed",
        "unreachable",
    )


async def test_a_third_party_shell_step_runs_in_a_workflow(
    knm_client: ApiClient, admin_headers: dict[str, str], ssh_fleet_cluster: FleetCluster
) -> None:
    fleet = ssh_fleet_cluster
    body = {"name": "up", "definition": {"steps": [{"id": "up", "type": "uptime"}]}}
    response = await knm_client.post("/automation/workflows", json=body, headers=admin_headers)
    workflow = assert_envelope(response, 201)["data"]["id"]
    data = await start_task(
        knm_client, admin_headers, "workflows",
        workflow_id=workflow, cluster_name=fleet.cluster_name,
        credential_id=fleet.credential_id, target_nodes=fleet.nodes,
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)
    assert status["status"] == "completed", status
    step = next(s for s in status["steps"] if s["id"] == "up")
    child = await wait_for_task(knm_client, admin_headers, step["task_id"])
    assert child["kind"] == "uptime" and child["success_count"] == len(fleet.nodes)
