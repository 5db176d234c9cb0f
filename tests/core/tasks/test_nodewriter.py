"""Node writes in groups: many nodes' starts, output and ends per transaction, each end once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from knm.core.clusters.provider import Node
from knm.core.tasks import nodewriter, store
from knm.core.tasks.nodewriter import NodeWriter
from knm.core.tasks.schemas import NodeResult


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``write_nodes`` call the writer makes, by what it carried."""
    seen: list[dict[str, Any]] = []
    write = store.write_nodes

    async def counting(conn: Any, task_id: str, **parts: Any) -> set[str]:
        seen.append({name: len(rows) for name, rows in parts.items() if name != "worker_id"})
        return await write(conn, task_id, **parts)

    monkeypatch.setattr(store, "write_nodes", counting)
    return seen


async def new_task(pool: asyncpg.Pool, nodes: int) -> str:
    task_id = f"test-exec-{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as conn:
        await store.insert_task(
            conn, task_id=task_id, kind="test", cluster_name="lab",
            nodes=[Node(name=f"n{i}") for i in range(nodes)], request={}, summary={},
            credential_id=None, user_id=None, username=None,
        )  # fmt: skip
    return task_id


async def rows(pool: asyncpg.Pool, task_id: str) -> dict[str, asyncpg.Record]:
    records = await pool.fetch("SELECT * FROM task_nodes WHERE task_id = $1", task_id)
    return {r["node"]: r for r in records}


async def test_ends_arriving_together_are_written_in_a_few_batches_and_stored_on_return(
    pool: asyncpg.Pool, batches: list[dict[str, Any]]
) -> None:
    task_id = await new_task(pool, 100)
    writer = NodeWriter(pool, task_id)

    async def node(i: int) -> bool:
        writer.start(f"n{i}")
        writer.chunks([(task_id, f"n{i}", "stdout", 0, f"out {i}\n")])
        await asyncio.sleep(0.001 * (i % 10))
        return await writer.end(f"n{i}", NodeResult.success("ok"), {"stdout": (6, False)})

    recorded = await asyncio.gather(*(node(i) for i in range(100)))
    assert all(recorded)
    assert len(batches) < 10
    stored = await rows(pool, task_id)
    assert {r["status"] for r in stored.values()} == {"success"}
    assert all(r["start_time"] is not None and r["stdout_bytes"] == 6 for r in stored.values())
    output = await pool.fetchval("SELECT count(*) FROM task_output WHERE task_id = $1", task_id)
    assert output == 100


async def test_a_node_ends_once_whether_twice_in_one_batch_or_in_two(pool: asyncpg.Pool) -> None:
    task_id = await new_task(pool, 2)
    writer = NodeWriter(pool, task_id)
    first, second = await asyncio.gather(
        writer.end("n0", NodeResult.success("first"), {}),
        writer.end("n0", NodeResult.failure("error", "second"), {}),
    )
    assert (first, second) == (True, False)
    assert await writer.end("n0", NodeResult.failure("error", "later"), {}) is False
    assert (await rows(pool, task_id))["n0"]["message"] == "first"


async def test_flush_writes_starts_and_output_at_once_without_an_end(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodewriter, "INTERVAL", 60.0)
    task_id = await new_task(pool, 1)
    writer = NodeWriter(pool, task_id)
    await writer.end("n0", NodeResult.success(), {})  # the first write goes at once
    task_id = await new_task(pool, 1)
    writer = NodeWriter(pool, task_id)
    writer.start("n0")
    writer.chunks([(task_id, "n0", "stdout", 0, "partial")])
    await asyncio.wait_for(writer.flush(), 5)
    assert (await rows(pool, task_id))["n0"]["status"] == "running"
    data = await pool.fetchval("SELECT data FROM task_output WHERE task_id = $1", task_id)
    assert data == "partial"


async def test_an_end_after_the_task_finished_is_not_recorded(pool: asyncpg.Pool) -> None:
    task_id = await new_task(pool, 1)
    async with pool.acquire() as conn:
        await store.finish(conn, task_id, open_reason="worker_lost", error="worker lost")
    writer = NodeWriter(pool, task_id)
    assert await writer.end("n0", NodeResult.success(), {}) is False
    assert (await rows(pool, task_id))["n0"]["reason"] == "worker_lost"


async def test_a_failed_write_fails_its_ends_and_the_next_flush(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = await new_task(pool, 2)

    async def broken(conn: Any, task_id: str, **parts: Any) -> set[str]:
        raise asyncpg.PostgresConnectionError("database gone")

    monkeypatch.setattr(store, "write_nodes", broken)
    writer = NodeWriter(pool, task_id)
    with pytest.raises(asyncpg.PostgresConnectionError):
        await writer.end("n0", NodeResult.success(), {})
    writer.start("n1")
    with pytest.raises(asyncpg.PostgresConnectionError):
        await writer.flush()
    await writer.flush()  # the error is reported once


async def test_a_writer_whose_worker_no_longer_holds_the_task_writes_nothing(
    pool: asyncpg.Pool,
) -> None:
    task_id = await new_task(pool, 2)
    await pool.execute(
        "UPDATE tasks SET status = 'running', worker_id = 'worker-b' WHERE task_id = $1", task_id
    )
    lost = NodeWriter(pool, task_id, "worker-a")  # its lease went to worker-b meanwhile
    lost.start("n0")
    lost.chunks([(task_id, "n0", "stdout", 0, "late\n")])
    cancelled = NodeResult.failure("cancelled", "lease lost")
    assert await lost.end("n0", cancelled, {}, urgent=True) is False
    holder = NodeWriter(pool, task_id, "worker-b")
    assert await holder.end("n1", NodeResult.success("ok"), {}, urgent=True) is True
    stored = await rows(pool, task_id)
    assert (stored["n0"]["status"], stored["n1"]["status"]) == ("pending", "success")
    assert await pool.fetchval("SELECT count(*) FROM task_output WHERE task_id = $1", task_id) == 0


async def test_one_batch_stores_starts_output_and_ends_together_a_node_in_both_ending_started(
    pool: asyncpg.Pool,
) -> None:
    task_id = await new_task(pool, 3)
    async with pool.acquire() as conn:
        await store.write_nodes(conn, task_id, started=["n2"])
        before = await store.version_of(conn, task_id)
        recorded = await store.write_nodes(
            conn, task_id, started=["n0", "n1"],
            chunks=[(task_id, "n0", "stdout", 0, "zero\n"), (task_id, "n1", "stderr", 0, "one\n")],
            ended=[store.NodeEnd("n1", NodeResult.failure("exit_code", "exit 1", exit_code=1),
                                 {"stderr": (4, False)}),
                   store.NodeEnd("n2", NodeResult.success("ok"), {})],
        )  # fmt: skip
        after = await store.version_of(conn, task_id)
    assert recorded == {"n1", "n2"}
    stored = await rows(pool, task_id)
    assert stored["n0"]["status"] == "running" and stored["n0"]["end_time"] is None
    assert (stored["n1"]["status"], stored["n1"]["exit_code"]) == ("failed", 1)
    assert stored["n1"]["start_time"] is not None and stored["n1"]["stderr_bytes"] == 4
    assert stored["n2"]["status"] == "success"
    output = await pool.fetch(
        "SELECT node, stream, data FROM task_output WHERE task_id = $1 ORDER BY node", task_id
    )
    assert [tuple(r) for r in output] == [("n0", "stdout", "zero\n"), ("n1", "stderr", "one\n")]
    assert before is not None and after is not None and after[1] > before[1]
