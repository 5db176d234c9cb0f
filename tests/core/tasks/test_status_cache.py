"""Status answers of finished tasks come from memory; running tasks' answers too, after one
cheap check that nothing they show changed; pruned ones never do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from knm.core.db import connect_one
from knm.core.envelope import ok
from knm.core.tasks import status_cache, store
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


async def test_a_running_tasks_status_is_answered_again_only_while_nothing_it_shows_changed(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
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
    conn = await connect_one(knm_database_url)
    try:
        # The runner renews the task's lease every lease/3 (a new row version): the two reads
        # count only when no write came between them.
        for _ in range(20):
            before = await store.versions_of(conn, [task_id])
            first = (await _status(knm_client, admin_headers, task_id)).json()["data"]
            hits = cache.live_hits
            again = (await _status(knm_client, admin_headers, task_id)).json()["data"]
            if await store.versions_of(conn, [task_id]) == before:
                break
        assert cache.live_hits == hits + 1
        assert again["results"] == first["results"] and again["message"] == first["message"]
        # Changes written elsewhere (another process's writer: its own connection), one per
        # table the answer reads, each seen on the next request.
        await conn.execute(
            "UPDATE task_nodes SET message = 'node note' WHERE task_id = $1 AND node = 'n1'",
            task_id,
        )
        found = (await _status(knm_client, admin_headers, task_id)).json()["data"]
        assert found["results"][0]["message"] == "node note"
        await store.write_nodes(
            conn, task_id, chunks=[(task_id, "n1", "stdout", 1_000_000, "\nappended")]
        )
        found = (await _status(knm_client, admin_headers, task_id)).json()["data"]
        assert found["results"][0]["stdout"].endswith("\nappended")
        await conn.execute("UPDATE tasks SET message = 'task note' WHERE task_id = $1", task_id)
        found = (await _status(knm_client, admin_headers, task_id)).json()["data"]
        assert found["message"] == "task note"
    finally:
        await conn.close()
    await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers)
    done = await wait_for_task(knm_client, admin_headers, task_id)
    # The terminal answer replaces what was seen while it ran.
    assert done["status"] == "cancelled"
    assert (await _status(knm_client, admin_headers, task_id)).json()["data"]["status"] == (
        "cancelled"
    )
    assert cache.get_live(task_id) is None


async def test_every_statement_on_a_tasks_nodes_or_output_bumps_its_revision(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"], hang_nodes=["n2"]
    )
    task_id = data["task_id"]
    conn = await connect_one(knm_database_url)
    try:
        before = await store.version_of(conn, task_id)
        assert before is not None and before[1] is not None  # its nodes were inserted
        await conn.execute("UPDATE task_nodes SET message = 'x' WHERE task_id = $1", task_id)
        after_update = await store.version_of(conn, task_id)
        assert after_update is not None and after_update[1] > before[1]
        # The runner renews the task's lease every lease/3 (a new version of the task row): the
        # write counts as leaving the task row alone only when no renewal came beside it.
        previous = after_update
        for attempt in range(20):
            await store.write_nodes(
                conn,
                task_id,
                chunks=[
                    (task_id, "n2", "stderr", 1_000_000 + 10 * attempt + i, "x") for i in range(3)
                ],
            )
            after_copy = await store.version_of(conn, task_id)
            assert after_copy is not None and after_copy[1] > previous[1]
            if after_copy[0] == previous[0]:  # the task row itself did not change
                break
            previous = after_copy
        assert after_copy[0] == previous[0]
        await conn.execute("UPDATE tasks SET message = 'y' WHERE task_id = $1", task_id)
        after_task = await store.version_of(conn, task_id)
        assert after_task is not None and after_task[0] != after_copy[0]
        assert await store.version_of(conn, "test-no-such-task") is None
    finally:
        await conn.close()
    await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers)
    await wait_for_task(knm_client, admin_headers, task_id)


def test_a_kept_running_answer_shows_the_duration_as_of_now() -> None:
    started = datetime.now(UTC) - timedelta(seconds=90)
    live = status_cache.LiveAnswer(
        ("1", 1), {"task_id": "t", "duration": 0, "results": []}, started, None
    )
    assert msgspec.json.decode(live.encode())["data"]["duration"] >= 90
    pending = status_cache.LiveAnswer(("1", 1), {"task_id": "t", "duration": None}, None, None)
    assert msgspec.json.decode(pending.encode())["data"]["duration"] is None


def test_a_kept_running_answers_bytes_equal_a_fresh_encode() -> None:
    started = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    data = {"task_id": "t", "status": "running", "duration": 0, "results": [{"node": "n1"}]}
    # An end time fixes the duration (7 s), whatever the clock says.
    live = status_cache.LiveAnswer(("1", 1), data, started, started + timedelta(seconds=7))
    first = live.encode()
    fresh = ok(msgspec.Raw(msgspec.json.encode(data | {"duration": 7})))
    assert first == msgspec.json.encode(fresh)
    # While the duration stays the same, the same bytes go out again: no new encode.
    assert live.encode() is first
    assert data["duration"] == 0  # the kept answer itself is never changed


def test_a_kept_running_answer_is_encoded_again_once_its_duration_grew() -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    live = status_cache.LiveAnswer(("1", 1), {"task_id": "t", "duration": 0}, started, None)
    live.encode()
    # As if the last encode had been a minute ago.
    live.duration = -60
    assert msgspec.json.decode(live.encode())["data"]["duration"] >= 5
    assert live.duration is not None and live.duration >= 5


class FakeVersions:
    """``store.versions_of`` held open until the test lets each statement return."""

    def __init__(self, versions: dict[str, store.Version]) -> None:
        self.versions = versions
        self.sent: list[set[str]] = []
        self.release = asyncio.Event()
        self.failure: Exception | None = None

    async def __call__(self, task_ids: list[str]) -> dict[str, store.Version]:
        self.sent.append(set(task_ids))
        # What the statement's snapshot sees: the versions as they are when it is sent.
        seen = {i: self.versions[i] for i in task_ids if i in self.versions}
        await self.release.wait()
        self.release.clear()
        if self.failure is not None:
            raise self.failure
        return seen

    async def sent_count(self, count: int) -> None:
        async def sent() -> bool:
            return len(self.sent) >= count

        await eventually(sent)


async def test_concurrent_version_checks_share_one_statement() -> None:
    fake = FakeVersions({"a": ("1", 1), "b": ("2", None)})
    checks = status_cache.VersionChecks(fake)
    polls = [asyncio.create_task(checks.version(i)) for i in ("a", "b", "a", "gone")]
    await fake.sent_count(1)
    fake.release.set()
    assert await asyncio.gather(*polls) == [("1", 1), ("2", None), ("1", 1), None]
    assert fake.sent == [{"a", "b", "gone"}]
    assert checks.statements == 1


async def test_a_version_check_arriving_during_a_statement_waits_for_the_next() -> None:
    fake = FakeVersions({"a": ("1", 1)})
    checks = status_cache.VersionChecks(fake)
    first = asyncio.create_task(checks.version("a"))
    await fake.sent_count(1)
    # The task changes after the first statement was sent, then a poll comes in.
    fake.versions["a"] = ("1", 2)
    later = [asyncio.create_task(checks.version("a")) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(fake.sent) == 1  # nothing joins the statement in flight
    fake.release.set()
    assert await first == ("1", 1)
    await fake.sent_count(2)
    fake.release.set()
    assert await asyncio.gather(*later) == [("1", 2)] * 3
    assert checks.statements == 2


async def test_a_version_check_whose_poll_went_away_leaves_the_others_theirs() -> None:
    fake = FakeVersions({"a": ("1", 1)})
    checks = status_cache.VersionChecks(fake)
    gone = asyncio.create_task(checks.version("a"))
    stays = asyncio.create_task(checks.version("a"))
    await fake.sent_count(1)
    gone.cancel()
    fake.release.set()
    assert await stays == ("1", 1)
    assert gone.cancelled()


async def test_a_failed_version_statement_fails_its_checks_and_the_next_check_asks_again() -> None:
    fake = FakeVersions({"a": ("1", 1)})
    checks = status_cache.VersionChecks(fake)
    fake.failure = ConnectionError("database went away")
    failing = asyncio.create_task(checks.version("a"))
    await fake.sent_count(1)
    fake.release.set()
    with pytest.raises(ConnectionError):
        await failing
    fake.failure = None
    again = asyncio.create_task(checks.version("a"))
    await fake.sent_count(2)
    fake.release.set()
    assert await again == ("1", 1)


async def test_many_running_tasks_are_checked_in_one_statement_against_the_database(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    started = [
        await start_task(
            knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"], hang_nodes=["n1"]
        )
        for _ in range(2)
    ]
    ids = [data["task_id"] for data in started]
    conn = await connect_one(knm_database_url)
    statements: list[dict[str, store.Version]] = []

    async def versions(task_ids: list[str]) -> dict[str, store.Version]:
        statements.append(await store.versions_of(conn, task_ids))
        return statements[-1]

    try:
        # A running task's row moves whenever its engine writes (its lease, a node starting
        # late on a loaded machine): both reads in one snapshot.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            found = await store.versions_of(conn, [*ids, "test-no-such-task"])
            assert set(found) == set(ids)
            for task_id in ids:
                assert found[task_id] == await store.version_of(conn, task_id)
        await conn.execute("UPDATE tasks SET message = 'changed' WHERE task_id = $1", ids[0])
        checks = status_cache.VersionChecks(versions)
        now = await asyncio.gather(*(checks.version(task_id) for task_id in ids))
        assert len(statements) == 1  # both checks, one statement
        assert now == [statements[0][task_id] for task_id in ids]
        assert now[0] != found[ids[0]]  # the change is seen
    finally:
        await conn.close()
    for task_id in ids:
        await knm_client.post(f"/automation/test/cancel/{task_id}", headers=admin_headers)
        await wait_for_task(knm_client, admin_headers, task_id)


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
    big = b'{"results": []}'
    small = b'{"results": [], "small": true}'
    cache.put("big", big, status_cache.MAX_TEXT + 1, cache.generation)
    cache.put("small", small, 1, cache.generation)
    assert cache.get("big") is None
    assert cache.get("small") is small
