"""A workflow waiting at an approval step notifies ``approval.requested``; its end notifies
as any task's does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.receivers import WebhookReceiver
from knm.testing.tasks import wait_for_task


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    return {"notify_poll": 0.1, "notify_backoff_base": 0.05, "notify_backoff_cap": 0.2}


async def test_an_approval_step_notifies_who_must_decide_and_the_end_follows(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    cluster = {"name": "lab", "kind": "static", "nodes": [{"name": "n1", "address": "127.0.0.2"}]}
    assert_envelope(await knm_client.post("/clusters", json=cluster, headers=admin_headers), 201)
    definition = {
        "steps": [
            {"id": "gate", "type": "approval", "message": "drain the rack?"},
            {"id": "after", "type": "test", "depends_on": ["gate"]},
        ]
    }
    response = await knm_client.post(
        "/automation/workflows",
        json={"name": "gated", "description": "", "definition": definition},
        headers=admin_headers,
    )
    workflow_id = assert_envelope(response, 201)["data"]["id"]
    with WebhookReceiver(secret="approval-hook-secret") as hook:
        subscription = {
            "name": "approvals",
            "events": ["approval.requested", "task.failed"],
            "clusters": ["lab"],
            "target": {"type": "webhook", "url": hook.url, "secret": "approval-hook-secret"},
        }
        response = await knm_client.post(
            "/notifications/subscriptions", json=subscription, headers=admin_headers
        )
        assert_envelope(response, 201)
        response = await knm_client.post(
            "/automation/workflows/execute",
            json={"workflow_id": workflow_id, "cluster_name": "lab", "target_nodes": ["n1"]},
            headers=admin_headers,
        )
        task_id = assert_envelope(response, 200)["data"]["task_id"]
        for _ in range(600):
            if hook.snapshot():
                break
            await asyncio.sleep(0.05)
        [asked] = hook.snapshot()
        body = asked.json()
        assert asked.signature_ok
        assert body["event"] == "approval.requested"
        assert body["data"]["task_id"] == task_id
        assert (body["data"]["step_id"], body["data"]["message"]) == ("gate", "drain the rack?")
        assert body["data"]["cluster_name"] == "lab"
        response = await knm_client.post(
            f"/automation/workflows/reject/{task_id}",
            json={"step_id": "gate", "comment": "not today"},
            headers=admin_headers,
        )
        assert_envelope(response, 200)
        assert (await wait_for_task(knm_client, admin_headers, task_id))["status"] == "failed"
        for _ in range(600):
            if len(hook.snapshot()) == 2:
                break
            await asyncio.sleep(0.05)
        events = [seen.json()["event"] for seen in hook.snapshot()]
        assert events == ["approval.requested", "task.failed"]
