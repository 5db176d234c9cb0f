"""Cancel, timeouts, batch size, failure limits, reruns, idempotency and queueing."""

from __future__ import annotations

from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import event_of, start_task, wait_for_event, wait_for_task
from knm.wire import BaseEvent

NODES = ["n1", "n2", "n3", "n4"]
RUNNING = event_of("progress", status="running")


@pytest.fixture(scope="module")
def test_plugin() -> TestExecutorPlugin:
    # One task of kind ``test`` at a time, so queueing can be seen.
    return TestExecutorPlugin(max_tasks=1)


async def start(client: ApiClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return await start_task(
        client, headers, **{"cluster_name": "lab", "target_nodes": NODES, **body}
    )


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["node"]: r for r in status["results"]}


async def test_cancel_stops_a_running_task_and_fails_unfinished_nodes_as_cancelled(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers, hang_nodes=["n3", "n4"])
    task_id = data["task_id"]

    done: set[str] = set()

    def two_done(event: BaseEvent) -> bool:
        if event.type == "node" and (event.data or {}).get("status") == "success":
            done.add(event.data["node"])
        return len(done) == 2

    await wait_for_event(knm_client, admin_headers, task_id, two_done)
    response = await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers)
    assert_envelope(response, 200)
    status = await wait_for_task(knm_client, admin_headers, task_id)
    assert status["status"] == "cancelled"
    nodes = by_node(status)
    assert nodes["n1"]["status"] == "success"
    assert (nodes["n3"]["status"], nodes["n3"]["reason"]) == ("failed", "cancelled")
    assert status["success_count"] + status["failed_count"] == 4


async def test_cancelling_a_finished_task_is_409_and_an_unknown_one_404(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers)
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert_envelope(
        await knm_client.post(f"/automation/test/cancel/{data['task_id']}", headers=admin_headers),
        409,
    )
    missing = "test-exec-1700000000-zzzzzz"
    assert_envelope(
        await knm_client.post(f"/automation/test/cancel/{missing}", headers=admin_headers), 404
    )


async def test_a_task_behind_the_kinds_limit_waits_pending_then_runs(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    # The first holds the kind's one slot until it is cancelled, however slow the machine is.
    first = await start(knm_client, admin_headers, target_nodes=["n1"], hang_nodes=["n1"])
    second = await start(knm_client, admin_headers, target_nodes=["n1"])
    assert first["status"] == "running"
    assert second["status"] == "pending"
    await wait_for_event(knm_client, admin_headers, first["task_id"], RUNNING)
    waiting = assert_envelope(
        await knm_client.get(f"/tasks/{second['task_id']}", headers=admin_headers), 200
    )["data"]
    assert waiting["status"] == "pending"
    await knm_client.post(f"/automation/test/cancel/{first['task_id']}", headers=admin_headers)
    done = await wait_for_task(knm_client, admin_headers, second["task_id"])
    assert done["status"] == "completed"
    ended = await wait_for_task(knm_client, admin_headers, first["task_id"])
    # It ran only once the first had ended.
    assert ended["status"] == "cancelled" and done["start_time"] >= ended["end_time"]


async def test_cancelling_a_pending_task_ends_it_without_running(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    blocker = await start(knm_client, admin_headers, target_nodes=["n1"], hang_nodes=["n1"])
    queued = await start(knm_client, admin_headers, target_nodes=["n1", "n2"])
    assert queued["status"] == "pending"
    # While it waits, its status says the start_time its execute answer said.
    for path in (f"/tasks/{queued['task_id']}", f"/automation/test/status/{queued['task_id']}"):
        waiting = assert_envelope(await knm_client.get(path, headers=admin_headers), 200)["data"]
        assert waiting["status"] == "pending"
        assert waiting["start_time"] == queued["start_time"] is not None
    history = assert_envelope(
        await knm_client.get("/automation/test/history", headers=admin_headers), 200
    )["data"]["executions"]
    (row,) = [r for r in history if r["task_id"] == queued["task_id"]]
    assert row["start_time"] == queued["start_time"]
    assert_envelope(
        await knm_client.post(
            f"/automation/test/cancel/{queued['task_id']}", headers=admin_headers
        ),
        200,
    )
    status = await wait_for_task(knm_client, admin_headers, queued["task_id"])
    assert status["status"] == "cancelled"
    assert {r["reason"] for r in status["results"]} == {"cancelled"}
    await knm_client.post(f"/automation/test/cancel/{blocker['task_id']}", headers=admin_headers)
    await wait_for_task(knm_client, admin_headers, blocker["task_id"])


async def test_a_node_that_outlives_its_timeout_fails_with_reason_timeout(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers, hang_nodes=["n2"], timeout=1)
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    nodes = by_node(status)
    assert (nodes["n2"]["status"], nodes["n2"]["reason"]) == ("failed", "timeout")
    assert nodes["n1"]["status"] == "success"


async def test_nodes_waiting_for_a_slot_do_not_time_out(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    # One slot, held by n1 until its own timeout ends it: n2..n4 wait for the slot at least
    # as long as a node's timeout, and still have the whole of theirs once they get it.
    data = await start(knm_client, admin_headers, hang_nodes=["n1"], batch_size=1, timeout=2)
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    nodes = by_node(status)
    assert (nodes["n1"]["status"], nodes["n1"]["reason"]) == ("failed", "timeout")
    assert [nodes[n]["status"] for n in NODES[1:]] == ["success"] * 3
    entries = await node_events(knm_client, admin_headers, data["task_id"])
    first_end = next(e["seq"] for e in entries if e["node"] == "n1" and e["status"] != "running")
    assert all(
        e["seq"] > first_end for e in entries if e["node"] != "n1" and e["status"] == "running"
    )


async def node_events(
    client: ApiClient, headers: dict[str, str], task_id: str
) -> list[dict[str, Any]]:
    """The task's node events in the order they were logged: seq, node, status."""
    response = await client.get(f"/tasks/{task_id}/events", headers=headers)
    entries = sorted(assert_envelope(response, 200)["data"]["entries"], key=lambda e: e["seq"])
    return [
        {"seq": e["seq"], "node": e["data"]["node"], "status": e["data"]["status"]}
        for e in entries
        if e["type"] == "node"
    ]


async def test_batch_size_keeps_at_most_n_nodes_in_flight(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    # n1 hangs in one of the two slots for the whole task, so the other nodes share the second
    # one: two in flight at every start after n1's, never three, whatever the machine's speed.
    data = await start(knm_client, admin_headers, hang_nodes=["n1"], batch_size=2)
    task_id = data["task_id"]
    done: set[str] = set()

    def others_done(event: BaseEvent) -> bool:
        if event.type == "node" and (event.data or {}).get("status") == "success":
            done.add(event.data["node"])
        return done == set(NODES[1:])

    await wait_for_event(knm_client, admin_headers, task_id, others_done)
    assert_envelope(
        await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers), 200
    )
    await wait_for_task(knm_client, admin_headers, task_id)
    in_flight: set[str] = set()
    sizes = []
    for event in await node_events(knm_client, admin_headers, task_id):
        if event["status"] == "running":
            in_flight.add(event["node"])
            sizes.append(len(in_flight))
        else:
            in_flight.discard(event["node"])
    assert sizes == [1, 2, 2, 2]


async def test_after_max_failures_the_remaining_nodes_are_skipped(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(
        knm_client, admin_headers, fail_nodes=["n1", "n2"], batch_size=1, max_failures=1
    )
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    nodes = by_node(status)
    assert [nodes[n]["reason"] for n in NODES] == ["exit_code", "exit_code", "skipped", "skipped"]


async def test_rerun_only_failed_starts_a_new_task_over_the_failed_nodes(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers, fail_nodes=["n2", "n4"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    response = await knm_client.post(
        f"/automation/test/rerun/{data['task_id']}",
        json={"only_failed": True},
        headers=admin_headers,
    )
    again = assert_envelope(response, 200)["data"]
    assert again["target_nodes"] == ["n2", "n4"] and again["rerun_of"] == data["task_id"]
    status = await wait_for_task(knm_client, admin_headers, again["task_id"])
    assert status["rerun_of"] == data["task_id"]


async def test_an_idempotency_key_returns_the_original_task(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "deploy-42"}
    body = {"cluster_name": "lab", "target_nodes": ["n1"]}
    first = await knm_client.post("/automation/test/execute", json=body, headers=headers)
    second = await knm_client.post("/automation/test/execute", json=body, headers=headers)
    assert (
        assert_envelope(first, 200)["data"]["task_id"]
        == assert_envelope(second, 200)["data"]["task_id"]
    )
    await wait_for_task(knm_client, admin_headers, first.json()["data"]["task_id"])


async def test_max_tasks_is_a_setting_with_its_own_bounds(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.put(
        "/features/automation/test", json={"max_tasks": 0}, headers=admin_headers
    )
    assert_envelope(response, 422)
    settings = assert_envelope(
        await knm_client.get("/features/automation", headers=admin_headers), 200
    )
    assert settings["data"]["test"]["max_tasks"] == 100
