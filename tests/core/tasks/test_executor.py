"""A task's context: the first node's result reaches watchers without waiting for a batch."""

from __future__ import annotations

import pytest

from knm.core.tasks import events, nodewriter
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import event_of, start_task, wait_for_event, wait_for_task


async def test_the_first_nodes_result_is_stored_and_published_while_the_others_still_run(
    knm_client: ApiClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches a minute apart: only the first result's urgency can bring it within the deadline.
    monkeypatch.setattr(nodewriter, "INTERVAL", 60.0)
    monkeypatch.setattr(events, "FLUSH_INTERVAL", 60.0)
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2", "n3"],
        hang_nodes=["n2", "n3"],
    )  # fmt: skip
    task_id = data["task_id"]
    await wait_for_event(
        knm_client, admin_headers, task_id, event_of("node", node="n1", status="success"), 20
    )
    running = await knm_client.get(f"/tasks/{task_id}", headers=admin_headers)
    task = assert_envelope(running, 200)["data"]
    assert (task["status"], task["success_count"]) == ("running", 1)
    assert {r["node"]: r["status"] for r in task["results"]}["n1"] == "success"
    cancel = await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers)
    assert_envelope(cancel, 200)
    status = await wait_for_task(knm_client, admin_headers, task_id, 20)
    assert status["status"] == "cancelled"
