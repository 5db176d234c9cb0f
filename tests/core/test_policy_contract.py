"""The command policy is applied one way — ``knm.core.policy.check`` with a ``CommandContext`` —
by the ssh executor, the script executor and workflow steps alike, site rules included."""

from __future__ import annotations

from typing import Any

import pytest

from knm.core.hookspecs import hookimpl
from knm.core.policy import CommandContext, Violation
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import wait_for_task

MARK = "blocked-by-plugin"


class Recorder:
    """A plugin's ``knm_check_command``: notes every context, blocks commands holding MARK."""

    def __init__(self) -> None:
        self.seen: list[CommandContext] = []

    @hookimpl
    def knm_check_command(self, command: str, context: Any) -> list[Violation]:
        self.seen.append(context)
        return [Violation("plugin-rule", MARK)] if MARK in command else []


RECORDER = Recorder()


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [RECORDER]


@pytest.fixture(scope="module")
async def credential(knm_client: ApiClient, admin_headers: dict[str, str]) -> int:
    nodes = [{"name": "n1", "address": "127.0.0.2"}]
    response = await knm_client.post(
        "/clusters", json={"name": "lab", "kind": "static", "nodes": nodes}, headers=admin_headers
    )
    assert_envelope(response, 201)
    response = await knm_client.post(
        "/credentials",
        json={"name": "c", "username": "u", "auth_type": "password", "password": "p-123456"},
        headers=admin_headers,
    )
    return int(assert_envelope(response, 201)["data"]["id"])


def _request(credential: int, **body: Any) -> dict[str, Any]:
    return {"cluster_name": "lab", "target_nodes": ["n1"], "credential_id": credential, **body}


async def test_an_ssh_command_is_checked_with_its_context_before_any_task_exists(
    knm_client: ApiClient, admin_headers: dict[str, str], credential: int
) -> None:
    RECORDER.seen.clear()
    response = await knm_client.post(
        "/automation/ssh/execute",
        json=_request(credential, command=f"echo {MARK}", sudo=True),
        headers=admin_headers,
    )
    assert "dangerous command blocked: blocked-by-plugin" in assert_envelope(response, 422)["error"]
    (context,) = RECORDER.seen
    assert (context.kind, context.cluster_name, context.username, context.sudo) == (
        "ssh", "lab", "admin", True,
    )  # fmt: skip


async def test_a_site_deny_rule_applies_to_ssh_and_to_a_script_alike(
    knm_client: ApiClient, admin_headers: dict[str, str], credential: int
) -> None:
    response = await knm_client.post(
        "/automation/scripts",
        json={"name": "shutdown", "content": "shutdown -h now\n", "language": "shell"},
        headers=admin_headers,
    )
    script = assert_envelope(response, 201)["data"]["id"]
    rules = {"deny_rules": [{"name": "no-shutdown", "pattern": "^shutdown"}]}
    assert_envelope(
        await knm_client.put("/features/automation/ssh", json=rules, headers=admin_headers), 200
    )
    try:
        RECORDER.seen.clear()
        ssh = await knm_client.post(
            "/automation/ssh/execute",
            json=_request(credential, command="shutdown -h now"),
            headers=admin_headers,
        )
        script_run = await knm_client.post(
            "/automation/scripts/execute",
            json=_request(credential, script_id=script),
            headers=admin_headers,
        )
    finally:
        reset = {"deny_rules": []}
        await knm_client.put("/features/automation/ssh", json=reset, headers=admin_headers)
    for response in (ssh, script_run):
        assert (
            "dangerous command blocked: shutdown -h now" in assert_envelope(response, 422)["error"]
        )
    assert [c.kind for c in RECORDER.seen] == ["ssh", "script"]


async def test_a_workflow_ssh_step_is_checked_with_the_steps_context(
    knm_client: ApiClient, admin_headers: dict[str, str], credential: int
) -> None:
    steps = [{"id": "s", "type": "ssh", "command": f"echo {MARK}"}]
    response = await knm_client.post(
        "/automation/workflows",
        json={"name": "checked", "definition": {"steps": steps}},
        headers=admin_headers,
    )
    workflow = assert_envelope(response, 201)["data"]["id"]
    RECORDER.seen.clear()
    response = await knm_client.post(
        "/automation/workflows/execute",
        json=_request(credential, workflow_id=workflow),
        headers=admin_headers,
    )
    started = assert_envelope(response, 200)["data"]
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    step = next(s for s in status["steps"] if s["id"] == "s")
    assert step["status"] == "failed" and "blocked-by-plugin" in step["error"]
    assert step["task_id"] is None
    step_contexts = [c for c in RECORDER.seen if c.kind == "ssh"]
    assert step_contexts and step_contexts[0].cluster_name == "lab"
    assert step_contexts[0].username == "admin"
