"""A credential says who may use it and on which clusters; every task start checks it (403)."""

from __future__ import annotations

from typing import Any

import pytest

from knm.core.auth.principal import Principal
from knm.core.credentials import use
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import wait_for_task


@pytest.fixture(scope="module")
async def operator_headers(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "olga", "operator")


@pytest.fixture(scope="module")
async def other_operator_headers(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "oscar", "operator")


async def credential(client: ApiClient, headers: dict[str, str], name: str, **limits: Any) -> int:
    body = {"name": name, "username": "ops", "auth_type": "password", "password": "pw-123456",
            **limits}  # fmt: skip
    return assert_envelope(await client.post("/credentials", json=body, headers=headers), 201)[
        "data"
    ]["id"]


async def execute(
    client: ApiClient, headers: dict[str, str], credential_id: int, cluster: str = "lab"
) -> Any:
    body = {"cluster_name": cluster, "target_nodes": ["n1"], "credential_id": credential_id}
    return await client.post("/automation/test/execute", json=body, headers=headers)


async def test_a_credential_without_limits_is_usable_by_every_operator_on_every_cluster(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    credential_id = await credential(knm_client, admin_headers, "open")
    shown = assert_envelope(
        await knm_client.get(f"/credentials/{credential_id}", headers=admin_headers), 200
    )["data"]
    assert shown["allowed_roles"] is None and shown["allowed_users"] is None
    assert shown["allowed_clusters"] is None
    for cluster in ("lab", "prod"):
        data = assert_envelope(
            await execute(knm_client, operator_headers, credential_id, cluster), 200
        )["data"]
        await wait_for_task(knm_client, operator_headers, data["task_id"])


async def test_a_credential_limited_to_users_refuses_everyone_else_but_admins(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str],
    other_operator_headers: dict[str, str],
) -> None:  # fmt: skip
    credential_id = await credential(knm_client, admin_headers, "olgas", allowed_users=["OLGA"])
    assert_envelope(await execute(knm_client, operator_headers, credential_id), 200)
    assert_envelope(await execute(knm_client, admin_headers, credential_id), 200)
    refused = assert_envelope(await execute(knm_client, other_operator_headers, credential_id), 403)
    assert "oscar" in refused["error"] and "olgas" in refused["error"]
    assert refused["message"] == "credential not allowed"


async def test_a_credential_limited_to_admins_refuses_operators(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    credential_id = await credential(knm_client, admin_headers, "admins", allowed_roles=["admin"])
    assert_envelope(await execute(knm_client, operator_headers, credential_id), 403)
    assert_envelope(await execute(knm_client, admin_headers, credential_id), 200)
    # Lifting the limit (null) gives today's behaviour back.
    response = await knm_client.put(
        f"/credentials/{credential_id}", json={"allowed_roles": None}, headers=admin_headers
    )
    assert assert_envelope(response, 200)["data"]["allowed_roles"] is None
    assert_envelope(await execute(knm_client, operator_headers, credential_id), 200)


async def test_a_credential_limited_to_clusters_is_refused_elsewhere_even_for_admins(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    credential_id = await credential(
        knm_client, admin_headers, "lab only", allowed_clusters=["lab"]
    )
    assert_envelope(await execute(knm_client, operator_headers, credential_id, "lab"), 200)
    for headers in (operator_headers, admin_headers):
        refused = assert_envelope(await execute(knm_client, headers, credential_id, "prod"), 403)
        assert "'prod'" in refused["error"] and "lab" in refused["error"]


@pytest.mark.parametrize(
    "limits",
    [
        {"allowed_clusters": []},
        {"allowed_roles": ["viewer"]},
        {"allowed_users": [" padded "]},
        {"allowed_clusters": ["a\nb"]},
    ],
)
async def test_bad_limits_are_422(
    knm_client: ApiClient, admin_headers: dict[str, str], limits: dict[str, Any]
) -> None:
    body = {"name": "bad limits", "username": "ops", "auth_type": "password",
            "password": "pw-123456", **limits}  # fmt: skip
    response = await knm_client.post("/credentials", json=body, headers=admin_headers)
    assert response.status_code in (400, 422), response.text


def test_the_rule_is_one_function_of_credential_principal_and_cluster() -> None:
    class Limited:
        name = "c"
        allowed_roles: list[str] | None = []
        allowed_users: list[str] | None = ["ann"]
        allowed_clusters: list[str] | None = None

    ann = Principal(user_id=1, username="Ann", role="operator")
    bob = Principal(user_id=2, username="bob", role="operator")
    root = Principal(user_id=3, username="root", role="admin")
    assert use.refusal(Limited(), ann, "x") is None
    assert use.refusal(Limited(), root, "x") is None
    assert use.refusal(Limited(), None, "x") is None
    assert "bob" in (use.refusal(Limited(), bob, "x") or "")


@pytest.mark.parametrize(
    ("route", "fields"),
    [
        ("ssh/execute", {"command": "uptime"}),
        ("scripts/execute", {"script_id": 1}),
        ("ansible/run", {"playbook_id": 1}),
        ("workflows/execute", {"workflow_id": 1}),
    ],
)
async def test_every_execute_route_refuses_a_credential_the_user_may_not_use(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str],
    route: str, fields: dict[str, Any],
) -> None:  # fmt: skip
    name = f"admins only {route}"
    credential_id = await credential(knm_client, admin_headers, name, allowed_roles=["admin"])
    body = {"cluster_name": "lab", "target_nodes": ["n1"], "credential_id": credential_id,
            **fields}  # fmt: skip
    response = await knm_client.post(f"/automation/{route}", json=body, headers=operator_headers)
    refused = assert_envelope(response, 403)
    assert name in refused["error"]
