"""A workflow's credential limits apply to the workflow and to every step it starts, with the
starter's own role."""

from __future__ import annotations

from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import wait_for_task


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


@pytest.fixture(scope="module", autouse=True)
async def lab(knm_client: ApiClient, admin_headers: dict[str, str]) -> None:
    nodes = [{"name": "n1", "address": "127.0.0.2"}]
    response = await knm_client.post(
        "/clusters", json={"name": "lab", "kind": "static", "nodes": nodes}, headers=admin_headers
    )
    assert_envelope(response, 201)


async def test_an_admin_only_credential_runs_an_admins_workflow_and_refuses_an_operators(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "admins only", "username": "ops", "auth_type": "password",
            "password": "pw-123456", "allowed_roles": ["admin"]}  # fmt: skip
    response = await knm_client.post("/credentials", json=body, headers=admin_headers)
    credential_id = assert_envelope(response, 201)["data"]["id"]
    definition = {"steps": [{"id": "a", "type": "test", "echo": "a"},
                            {"id": "b", "type": "test", "depends_on": ["a"]}]}  # fmt: skip
    response = await knm_client.post(
        "/automation/workflows",
        json={"name": "two steps", "description": "", "definition": definition},
        headers=admin_headers,
    )
    workflow_id = assert_envelope(response, 201)["data"]["id"]
    request = {"workflow_id": workflow_id, "cluster_name": "lab", "target_nodes": ["n1"],
               "credential_id": credential_id}  # fmt: skip
    response = await knm_client.post("/automation/workflows/execute", json=request,
                                     headers=admin_headers)  # fmt: skip
    started = assert_envelope(response, 200)["data"]
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    # Each step is a child task with the workflow's credential, checked with the admin's role.
    assert status["status"] == "completed", status
    assert [s["status"] for s in status["steps"]] == ["completed", "completed"], status["steps"]
    operator = await knm_client.create_user(admin_headers, "opal", "operator")
    response = await knm_client.post("/automation/workflows/execute", json=request,
                                     headers=operator)  # fmt: skip
    assert "admins only" in assert_envelope(response, 403)["error"]
