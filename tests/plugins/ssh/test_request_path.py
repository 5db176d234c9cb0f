"""One straight path from request to run: what ``prepare`` loaded is what the task runs with."""

from __future__ import annotations

from knm.core.counters import counting
from knm.testing.client import ApiClient
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import wait_for_task

from .conftest import Runner


async def test_an_ssh_execute_decrypts_each_secret_once_and_reads_each_row_once(
    start_ssh: Runner, knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    with counting() as counts:
        data = await start_ssh(command="echo one path")
        status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "completed"
    credential = f"credentials:{fleet.credential_id}"
    assert counts.rows == {credential: 1, f"clusters:{fleet.cluster_name}": 1}
    assert counts.decrypts, "the credential's secrets were decrypted"
    assert all(times == 1 for times in counts.decrypts.values()), counts.decrypts


async def test_a_dangerous_command_is_refused_before_any_secret_is_opened(
    start_ssh: Runner, knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    body = {
        "cluster_name": fleet.cluster_name,
        "credential_id": fleet.credential_id,
        "target_nodes": fleet.nodes,
        "command": "rm -rf /",
    }
    with counting() as counts:
        response = await knm_client.post(
            "/automation/ssh/execute", json=body, headers=admin_headers
        )
    assert response.status_code == 422
    assert not counts.decrypts
