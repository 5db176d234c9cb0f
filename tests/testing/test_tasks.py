"""knm.testing.tasks: waits that follow a task's events, in-process and over a real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from knm.testing.client import ApiClient
from knm.testing.executor import TestExecutorPlugin
from knm.testing.process import KnmProcess
from knm.testing.tasks import (
    event_of,
    start_task,
    wait_for_event,
    wait_for_event_sync,
    wait_for_task,
    wait_for_task_sync,
)

BODY = {"cluster_name": "lab", "target_nodes": ["n1", "n2"]}


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


async def test_a_wait_returns_the_final_status_once_the_task_completes(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, **BODY, events=3, fail_nodes=["n2"])
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["task_id"] == data["task_id"] and status["status"] == "failed"
    assert status["success_count"] == 1 and status["failed_count"] == 1


async def test_a_wait_begun_after_the_task_ended_still_sees_its_events(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, **BODY, events=2)
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    first = await wait_for_event(
        knm_client, admin_headers, data["task_id"], event_of("progress", status="running")
    )
    assert first.seq >= 1 and first.type == "progress"


async def test_a_wait_for_an_event_that_never_comes_fails_when_the_task_completes(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, **BODY)
    with pytest.raises(AssertionError, match="completed without a matching event"):
        await wait_for_event(knm_client, admin_headers, data["task_id"], event_of("step"))


async def test_a_wait_on_a_task_that_does_not_end_fails_after_its_deadline(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, **BODY, hang_nodes=["n1"])
    try:
        with pytest.raises(AssertionError, match=r"no matching event within 0\.5 s"):
            await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=0.5)
    finally:
        cancel = f"/automation/test/cancel/{data['task_id']}"
        await knm_client.post(cancel, headers=admin_headers)
        await wait_for_task(knm_client, admin_headers, data["task_id"])


async def test_a_wait_on_an_unknown_task_fails_at_once(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    with pytest.raises(AssertionError, match="not found"):
        await wait_for_task(knm_client, admin_headers, "test-exec-1700000000-zzzzzz")


def test_the_sync_waits_follow_a_real_servers_websocket(
    knm_server: KnmProcess, sdk_admin: Any
) -> None:
    headers = {"Authorization": f"Bearer {sdk_admin.token}"}
    started = httpx.post(
        f"{knm_server.api}/automation/test/execute", json={**BODY, "events": 2}, headers=headers
    ).json()["data"]
    status = wait_for_task_sync(knm_server.api, started["task_id"], headers)
    assert status["status"] == "completed"
    node = wait_for_event_sync(sdk_admin, started["task_id"], event_of("node", node="n2"))
    assert node.data["node"] == "n2"
    with pytest.raises(AssertionError, match="not found"):
        wait_for_task_sync(sdk_admin, "test-exec-1700000000-zzzzzz")


async def test_the_async_wait_follows_a_real_servers_websocket(
    knm_server: KnmProcess, sdk_admin: Any
) -> None:
    headers = {"Authorization": f"Bearer {sdk_admin.token}"}
    async with httpx.AsyncClient(base_url=knm_server.base_url) as http:
        client = ApiClient(http)
        data = await start_task(client, headers, **BODY)
        status = await wait_for_task(client, headers, data["task_id"])
    assert status["status"] == "completed"
