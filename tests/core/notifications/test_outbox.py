"""The outbox: rows written in the event's own transaction, filters, claims under a lease."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from knm.core.errors import Invalid
from knm.core.notifications import emit, outbox
from knm.core.tasks import store as tasks


async def make_task(
    conn: asyncpg.Connection | asyncpg.Pool,
    task_id: str,
    *,
    kind: str = "test",
    cluster: str = "lab",
    nodes: tuple[str, ...] = ("n1", "n2"),
    parent: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO tasks (task_id, kind, cluster_name, status, target_nodes, parent_task_id,
               worker_id, lease_until, start_time)
           VALUES ($1, $2, $3, 'running', $4, $5, 'w1', now() + interval '1 minute', now())""",
        task_id,
        kind,
        cluster,
        list(nodes),
        parent,
    )
    for position, node in enumerate(nodes):
        await conn.execute(
            "INSERT INTO task_nodes (task_id, node, position, status) VALUES ($1, $2, $3, 'running')",
            task_id,
            node,
            position,
        )


async def rows(
    conn: asyncpg.Connection | asyncpg.Pool, subscription_id: int | None = None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM notification_outbox WHERE $1::bigint IS NULL OR subscription_id = $1
           ORDER BY id""",
        subscription_id,
    )


async def test_the_outbox_row_is_written_in_the_transaction_that_ends_the_task(
    pool: asyncpg.Pool, subscribe
) -> None:
    sub = await subscribe(events=["task.failed"])
    await make_task(pool, "t-tx")
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        final = await tasks.finish(conn, "t-tx", error="boom")
        assert final is not None and final.status == "failed"
        inside = await rows(conn, sub.id)
        # Another connection does not see it before the commit: it is the same transaction.
        assert await rows(pool, sub.id) == []
        await tx.rollback()
    assert len(inside) == 1
    assert inside[0]["event"] == "task.failed"
    assert await rows(pool, sub.id) == []
    assert (await tasks.get_task(pool, "t-tx")).status == "running"


async def test_a_committed_terminal_status_leaves_one_delivery_carrying_the_task(
    pool: asyncpg.Pool, subscribe
) -> None:
    sub = await subscribe(events=["task.failed"])
    await make_task(pool, "t-commit")
    async with pool.acquire() as conn:
        await tasks.finish(conn, "t-commit", error="boom")
    [row] = await rows(pool, sub.id)
    body = row["payload"]
    assert body["event"] == "task.failed"
    assert body["id"] == row["idempotency_key"]
    assert body["subscription"] == {"id": sub.id, "name": sub.name}
    assert body["data"]["task_id"] == "t-commit"
    assert body["data"]["status"] == "failed"
    assert body["data"]["error"] == "boom"
    assert body["data"]["cluster_name"] == "lab"
    assert row["state"] == "pending" and row["attempts"] == 0


@pytest.mark.parametrize(
    ("how", "event"),
    [
        ({}, "task.completed"),
        ({"error": "boom"}, "task.failed"),
        ({"cancelled": True}, "task.cancelled"),
    ],
)
async def test_each_way_a_task_ends_is_its_own_event(
    pool: asyncpg.Pool, subscribe, how: dict, event: str
) -> None:
    sub = await subscribe(events=["task.completed", "task.failed", "task.cancelled"])
    await make_task(pool, "t-end", nodes=())
    async with pool.acquire() as conn:
        await tasks.finish(conn, "t-end", **how)
    assert [r["event"] for r in await rows(pool, sub.id)] == [event]


async def test_a_subscription_hears_only_the_events_it_names(pool: asyncpg.Pool, subscribe) -> None:
    sub = await subscribe(events=["task.cancelled"])
    await make_task(pool, "t-other", nodes=())
    async with pool.acquire() as conn:
        await tasks.finish(conn, "t-other", error="boom")
    assert await rows(pool, sub.id) == []


async def test_filters_by_kind_cluster_and_status_each_narrow_what_is_queued(
    pool: asyncpg.Pool, subscribe
) -> None:
    events = ["task.completed", "task.failed"]
    any_ = await subscribe(events=events)
    by_kind = await subscribe(events=events, kinds=["ssh"])
    by_cluster = await subscribe(events=events, clusters=["prod"])
    by_status = await subscribe(events=events, statuses=["failed"])
    all_three = await subscribe(
        events=events, kinds=["ssh"], clusters=["prod"], statuses=["failed"]
    )
    for task_id, kind, cluster, how in [
        ("a", "ssh", "prod", {"error": "x"}),
        ("b", "ssh", "lab", {}),
        ("c", "test", "prod", {}),
        ("d", "test", "lab", {"error": "x"}),
    ]:
        await make_task(pool, task_id, kind=kind, cluster=cluster, nodes=())
        async with pool.acquire() as conn:
            await tasks.finish(conn, task_id, **how)

    async def heard(sub) -> set[str]:
        return {r["payload"]["data"]["task_id"] for r in await rows(pool, sub.id)}

    assert await heard(any_) == {"a", "b", "c", "d"}
    assert await heard(by_kind) == {"a", "b"}
    assert await heard(by_cluster) == {"a", "c"}
    assert await heard(by_status) == {"a", "d"}
    assert await heard(all_three) == {"a"}


async def test_a_disabled_subscription_gets_nothing(pool: asyncpg.Pool, subscribe) -> None:
    sub = await subscribe(events=["task.failed"], enabled=False)
    await make_task(pool, "t-off", nodes=())
    async with pool.acquire() as conn:
        await tasks.finish(conn, "t-off", error="boom")
    assert await rows(pool, sub.id) == []


async def test_the_steps_of_a_workflow_do_not_notify_only_the_workflow_does(
    pool: asyncpg.Pool, subscribe
) -> None:
    sub = await subscribe(events=["task.failed", "node.failed"])
    await make_task(pool, "wf", kind="workflow")
    await make_task(pool, "wf-step", parent="wf")
    async with pool.acquire() as conn:
        await tasks.finish(conn, "wf-step", error="boom")
        assert await rows(conn, sub.id) == []
        await tasks.finish(conn, "wf", error="step failed")
    assert [r["payload"]["data"]["task_id"] for r in await rows(pool, sub.id)] == ["wf"]


async def test_a_node_failing_while_its_task_runs_is_a_node_failed_event(
    pool: asyncpg.Pool, subscribe
) -> None:
    sub = await subscribe(events=["node.failed"], statuses=["failed"])
    await make_task(pool, "t-node", nodes=("n1", "n2", "n3"))
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE task_nodes SET status = 'failed', reason = 'exit_code', message = 'exit 3',
                      exit_code = 3 WHERE task_id = 't-node' AND node = 'n2'"""
        )
        # The nodes the task's end fails because they never ran are the task's event.
        await tasks.finish(conn, "t-node", cancelled=True)
    [row] = await rows(pool, sub.id)
    assert row["event"] == "node.failed"
    data = row["payload"]["data"]
    assert (data["task_id"], data["node"], data["exit_code"], data["message"]) == (
        "t-node",
        "n2",
        3,
        "exit 3",
    )


async def test_emit_queues_in_the_callers_transaction_and_rolls_back_with_it(
    pool: asyncpg.Pool, subscribe
) -> None:
    sub = await subscribe(events=["schedule.misfired"])
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert await emit(conn, "schedule.misfired", {"schedule": "nightly"}) == 1
        await tx.rollback()
    assert await rows(pool, sub.id) == []
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, "schedule.misfired", {"schedule": "nightly"}, cluster="lab")
    [row] = await rows(pool, sub.id)
    assert row["payload"]["data"] == {"schedule": "nightly"}


async def test_emit_refuses_an_unknown_event_and_names_the_valid_ones(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(Invalid) as caught:
            await emit(conn, "task.exploded", {})
    assert "task.exploded" in caught.value.error
    assert "task.failed" in caught.value.error and "approval.requested" in caught.value.error


async def test_one_event_gives_each_subscription_its_own_idempotency_key(
    pool: asyncpg.Pool, subscribe
) -> None:
    first = await subscribe(events=["roll.paused"])
    second = await subscribe(events=["roll.paused"])
    async with pool.acquire() as conn, conn.transaction():
        assert await emit(conn, "roll.paused", {"task_id": "wf"}) == 2
    keys = [r["idempotency_key"] for r in await rows(pool)]
    assert len(set(keys)) == 2
    assert {r["subscription_id"] for r in await rows(pool)} == {first.id, second.id}


def test_backoff_doubles_per_attempt_with_jitter_up_to_the_cap() -> None:
    random.seed(7)
    for attempt in range(1, 15):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = outbox.backoff(attempt, 2.0, 60.0)
            assert ceiling / 2 <= delay <= ceiling
    spread = {round(outbox.backoff(3, 2.0, 60.0), 6) for _ in range(20)}
    assert len(spread) > 1


async def test_a_claimed_row_is_hidden_from_other_workers_until_its_lease_runs_out(
    pool: asyncpg.Pool, subscribe
) -> None:
    await subscribe(events=["roll.paused"])
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, "roll.paused", {"task_id": "wf"})
    [first] = await outbox.claim(pool, worker_id="a", lease=0.5, limit=10)
    assert first.attempt == 1
    assert await outbox.claim(pool, worker_id="b", lease=30, limit=10) == []
    again: list[outbox.Claimed] = []
    for _ in range(200):
        again = await outbox.claim(pool, worker_id="b", lease=30, limit=10)
        if again:
            break
        await asyncio.sleep(0.05)
    [second] = again
    assert (second.id, second.idempotency_key, second.attempt) == (
        first.id,
        first.idempotency_key,
        2,
    )


async def test_pruning_drops_old_finished_deliveries_and_keeps_pending_ones(
    pool: asyncpg.Pool, subscribe
) -> None:
    await subscribe(events=["roll.paused"])
    async with pool.acquire() as conn, conn.transaction():
        for n in range(3):
            await emit(conn, "roll.paused", {"n": n})
    await pool.execute(
        """UPDATE notification_outbox SET created_at = now() - interval '40 days',
                  state = CASE WHEN payload->'data'->>'n' = '0' THEN 'pending'
                               WHEN payload->'data'->>'n' = '1' THEN 'delivered'
                               ELSE 'dead' END"""
    )
    assert await outbox.prune(pool, 30) == 2
    [left] = await rows(pool)
    assert left["state"] == "pending"
    assert await outbox.prune(pool, 30) == 0
