"""The command policy is applied one way — ``knm.core.policy.check`` with a ``CommandContext`` —
by the ssh executor, the script executor and workflow steps alike, site rules included."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from knm.core import policy
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


async def test_a_workflow_with_a_refused_step_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    RECORDER.seen.clear()
    steps = [{"id": "s", "type": "ssh", "command": f"echo {MARK}"}]
    response = await knm_client.post(
        "/automation/workflows",
        json={"name": "refused", "definition": {"steps": steps}},
        headers=admin_headers,
    )
    error = assert_envelope(response, 422)["error"]
    assert "step s: dangerous command blocked: blocked-by-plugin" in error
    assert [c.kind for c in RECORDER.seen] == ["ssh"]


async def test_a_workflow_step_is_checked_again_as_rendered_at_run(
    knm_client: ApiClient, admin_headers: dict[str, str], credential: int
) -> None:
    definition = {
        "parameters": [{"name": "word", "default": "hello"}],
        "steps": [{"id": "s", "type": "ssh", "command": "echo {{ params.word }}"}],
    }
    response = await knm_client.post(
        "/automation/workflows",
        json={"name": "checked", "definition": definition},
        headers=admin_headers,
    )
    workflow = assert_envelope(response, 201)["data"]["id"]
    RECORDER.seen.clear()
    response = await knm_client.post(
        "/automation/workflows/execute",
        json=_request(credential, workflow_id=workflow, parameters={"word": MARK}),
        headers=admin_headers,
    )
    started = assert_envelope(response, 200)["data"]
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    step = next(s for s in status["steps"] if s["id"] == "s")
    assert step["status"] == "failed" and "blocked-by-plugin" in step["error"]
    assert step["task_id"] is None
    at_run = [c for c in RECORDER.seen if c.kind == "ssh" and c.cluster_name == "lab"]
    assert at_run and at_run[0].username == "admin"


async def test_a_script_parameter_is_deferred_at_save_and_checked_with_its_value_at_run(
    knm_client: ApiClient, admin_headers: dict[str, str], credential: int
) -> None:
    body = {
        "name": "clean dir",
        "content": 'rm -rf -- "$TARGET"\n',
        "language": "shell",
        "parameters": [{"name": "TARGET", "default": "/tmp/knm-guard-nothing"}],
    }
    response = await knm_client.post("/automation/scripts", json=body, headers=admin_headers)
    script = assert_envelope(response, 201)["data"]["id"]
    refused = await knm_client.post(
        "/automation/scripts/execute",
        json=_request(credential, script_id=script, parameters={"TARGET": "/"}),
        headers=admin_headers,
    )
    body = assert_envelope(refused, 422)
    assert body["message"] == "command validation failed"
    assert body["error"] == "dangerous command blocked: rm -rf -- /"
    undeclared = {"name": "clean any", "content": 'rm -rf -- "$WHERE"\n', "language": "shell"}
    response = await knm_client.post("/automation/scripts", json=undeclared, headers=admin_headers)
    assert "dangerous command blocked" in assert_envelope(response, 422)["error"]


async def test_a_command_over_64_kib_is_422_before_it_is_parsed(
    knm_client: ApiClient, admin_headers: dict[str, str], credential: int
) -> None:
    command = "echo " + "a" * 64 * 1024
    response = await knm_client.post(
        "/automation/ssh/execute", json=_request(credential, command=command), headers=admin_headers
    )
    assert assert_envelope(response, 422)["error"].startswith("command too long:")


async def test_other_requests_are_answered_while_a_command_is_checked(
    knm_app: Any,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check of a (pathological) command holds its thread until the test lets it go, while
    the app answers another request: were the check on the app's event loop, that request could
    not be answered and the test would time out."""
    checking = threading.Event()
    release = threading.Event()
    real = policy.check_command

    def held(text: str, **kwargs: Any) -> list[Violation]:
        if "pathological" in text:
            checking.set()
            release.wait(60)
        return real(text, **kwargs)

    monkeypatch.setattr(policy, "check_command", held)
    knm = knm_app.state["knm"]
    # The old regex's worst case (kept under MAX_ERROR_PARSE: parsed whole and allowed).
    command = "echo pathological; [[ 1 ]]; f(){ " + "f" * 900
    context = CommandContext(kind="ssh", cluster_name="lab")

    async def check_on_the_app() -> list[Violation]:
        return await policy.violations(knm, command, context)

    pending = asyncio.ensure_future(knm_client.on_app(check_on_the_app))
    try:
        assert await asyncio.to_thread(checking.wait, 60)
        answered = await knm_client.get("/features", headers=admin_headers)
        assert_envelope(answered, 200)
        assert not pending.done()
    finally:
        release.set()
    assert await pending == []
