"""/metrics in Prometheus text, behind a token unless made public."""

from __future__ import annotations

from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import start_task, wait_for_task


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


async def test_metrics_need_a_token_and_a_viewer_api_token_is_enough(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    assert_envelope(await knm_client.http.get("/metrics"), 401)
    token = assert_envelope(
        await knm_client.post(
            "/tokens", json={"name": "prom", "role": "viewer"}, headers=admin_headers
        ),
        201,
    )["data"]["token"]
    data = await start_task(knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    response = await knm_client.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'knm_tasks{kind="test",status="completed"} 1' in text
    for family in (
        "knm_queue_depth",
        "knm_task_duration_seconds",
        "knm_events_published_total",
        "knm_events_dropped_total",
        "knm_websocket_connections",
        "knm_lease_reaps_total",
    ):
        assert f"# TYPE {family}" in text
