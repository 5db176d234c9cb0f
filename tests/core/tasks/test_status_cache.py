"""Status answers of finished tasks come from memory; running tasks and pruned ones never do."""

from __future__ import annotations

from typing import Any

import msgspec

from knm.core.db import connect_one
from knm.core.tasks import status_cache
from knm.core.tasks.retention import prune, prune_with
from knm.testing.client import ApiClient
from knm.testing.tasks import eventually, start_task, wait_for_task


def _knm(client: ApiClient) -> Any:
    return client.http.app.state["knm"]  # type: ignore[attr-defined]


async def _status(client: ApiClient, headers: dict[str, str], task_id: str) -> Any:
    return await client.get(f"/automation/test/status/{task_id}", headers=headers)


async def test_a_finished_tasks_status_is_answered_from_memory_unchanged(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    cache = _knm(knm_client).status_cache
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"], output_lines=3
    )
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    first = (await _status(knm_client, admin_headers, data["task_id"])).json()
    hits = cache.hits
    again = (await _status(knm_client, admin_headers, data["task_id"])).json()
    assert cache.hits == hits + 1
    assert again == first
    assert {r["node"] for r in again["data"]["results"]} == {"n1", "n2"}
    assert "line" in again["data"]["results"][0]["stdout"] or again["data"]["results"][0]["stdout"]


async def test_a_running_tasks_status_is_read_afresh_every_time(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    cache = _knm(knm_client).status_cache
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"], hang_nodes=["n2"]
    )
    task_id = data["task_id"]

    async def one_node_done() -> bool:
        found = (await _status(knm_client, admin_headers, task_id)).json()["data"]
        return found["status"] == "running" and len(found["results"]) == 1

    await eventually(one_node_done)
    hits = cache.hits
    await _status(knm_client, admin_headers, task_id)
    assert cache.hits == hits
    await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers)
    done = await wait_for_task(knm_client, admin_headers, task_id)
    # The terminal answer replaces what was seen while it ran.
    assert done["status"] == "cancelled"
    assert (await _status(knm_client, admin_headers, task_id)).json()["data"]["status"] == (
        "cancelled"
    )


async def test_a_prune_in_this_process_empties_the_cache(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    knm = _knm(knm_client)
    data = await start_task(knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    await _status(knm_client, admin_headers, data["task_id"])
    assert knm.status_cache.get(data["task_id"]) is not None
    await knm_client.on_app(prune_with, knm)
    assert knm.status_cache.get(data["task_id"]) is None


async def test_a_prune_by_another_process_is_seen_here(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"], output_lines=5
    )
    task_id = data["task_id"]
    await wait_for_task(knm_client, admin_headers, task_id)
    assert (await _status(knm_client, admin_headers, task_id)).json()["data"]["results"][0][
        "stdout"
    ]
    # What `knm admin prune` does from its own process: here, every task's output goes over a
    # zero budget.
    conn = await connect_one(knm_database_url)
    try:
        report = await prune(conn, task_days=90, event_days=30, output_max_bytes=0)
        assert report.output_tasks >= 1
        await status_cache.announce_prune(conn)
    finally:
        await conn.close()

    async def output_gone() -> bool:
        found = (await _status(knm_client, admin_headers, task_id)).json()["data"]
        return found["results"][0]["stdout"] == ""

    await eventually(output_gone, deadline=10)


def test_answers_with_much_output_are_not_kept() -> None:
    class Live:
        live = True

        def on(self, *_: Any) -> None: ...

        def on_reset(self, *_: Any) -> None: ...

    cache = status_cache.StatusCache(Live())  # type: ignore[arg-type]
    big = msgspec.Raw(b'{"results": []}')
    small = msgspec.Raw(b'{"results": []}')
    cache.put("big", big, status_cache.MAX_TEXT + 1, cache.generation)
    cache.put("small", small, 1, cache.generation)
    assert cache.get("big") is None
    assert cache.get("small") is small
