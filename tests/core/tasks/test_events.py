"""The event log: a batch whose write meets rows already there (a COPY that committed as the
database went down, then retried; a seq another writer took) or a deleted task still stores and
hands out every event it can, as the log holds it. An event after a quiet interval, or one
someone waits for, is not held for the next batch."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from knm.core.tasks import events
from knm.core.tasks.events import Event, EventLog, read_events
from knm.testing.tasks import eventually


async def _task(pool: asyncpg.Pool) -> str:
    task_id = f"test-events-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO tasks (task_id, kind, status, cluster_name) VALUES ($1, 'ssh', 'running', 'x')",
        task_id,
    )
    return task_id


def _delivering_log(pool: asyncpg.Pool) -> tuple[EventLog, list[Event]]:
    """A log and the list of what it hands to this process's subscribers."""
    delivered: list[Event] = []
    return EventLog(pool, lambda _task_id, events: delivered.extend(events)), delivered


async def test_a_batch_retried_after_its_commit_was_lost_still_delivers_its_last_events(
    pool: asyncpg.Pool,
) -> None:
    task_id = await _task(pool)
    log, delivered = _delivering_log(pool)
    await log.open_task(task_id)
    log.emit(task_id, "node", 50, data={"node": "n1"})
    first = list(log._pending)
    await log._write(first)  # stored, as a COPY whose answer was lost would be
    delivered.clear()
    log._pending.clear()
    # The retry carries the stored event again, with the task's end behind it.
    log._pending.extend(first)
    log.emit(task_id, "complete", 100, "failed: worker lost")
    batch, log._pending = log._pending, []
    await log._write(batch)
    assert [(e.seq, e.type) for e in delivered] == [(1, "node"), (2, "complete")]
    stored = await read_events(pool, task_id)
    assert [(e.seq, e.type, e.message) for e in stored] == [
        (1, "node", ""),
        (2, "complete", "failed: worker lost"),
    ]


async def test_events_after_another_writers_complete_are_dropped_for_the_log_ends_there(
    pool: asyncpg.Pool,
) -> None:
    task_id = await _task(pool)
    other = EventLog(pool, lambda *_: None)
    await other.open_task(task_id)
    other.emit(task_id, "complete", 100, "failed elsewhere")
    await other._write(list(other._pending))
    log, delivered = _delivering_log(pool)
    log.emit(task_id, "output", 10, data={"node": "n1", "stream": "stdout", "text": "late"})
    log.emit(task_id, "node", 20, data={"node": "n1"})
    batch, log._pending = log._pending, []
    await log._write(batch)
    assert delivered == []
    stored = await read_events(pool, task_id)
    assert [(e.seq, e.type, e.message) for e in stored] == [(1, "complete", "failed elsewhere")]


async def test_a_complete_whose_seq_a_lost_worker_took_moves_after_that_workers_events(
    pool: asyncpg.Pool,
) -> None:
    # The reaper (this log) fails a task as "worker lost" while the worker, alive but past its
    # lease, still writes: both took seq 2 on. The reaper's complete must not be the one lost.
    task_id = await _task(pool)
    worker = EventLog(pool, lambda *_: None)
    await worker.open_task(task_id)
    worker.emit(task_id, "node", 10, data={"node": "n1"})
    await worker._write(list(worker._pending))
    worker._pending.clear()
    reaper, delivered = _delivering_log(pool)
    await reaper.open_task(task_id)
    reaper.emit(task_id, "node", 100, data={"node": "n2"})
    reaper.emit(task_id, "complete", 100, "failed: worker lost")
    worker.emit(task_id, "output", 20, data={"node": "n1", "stream": "stdout", "text": "still"})
    worker.emit(task_id, "node", 30, data={"node": "n1", "status": "success"})
    await worker._write(list(worker._pending))
    batch, reaper._pending = reaper._pending, []
    reaper.emit(task_id, "output", 100, data={"node": "n2", "stream": "stderr", "text": "x"})
    await reaper._write(batch)
    assert [(e.seq, e.type) for e in delivered] == [(4, "node"), (5, "complete")]
    # What this log emitted meanwhile, and what it emits next, follow its moved events.
    assert [e.seq for e in reaper._pending] == [6]
    stored = await read_events(pool, task_id)
    assert [(e.seq, e.type) for e in stored] == [
        (1, "node"),
        (2, "output"),
        (3, "node"),
        (4, "node"),
        (5, "complete"),
    ]
    assert stored[-1].message == "failed: worker lost"


async def test_events_of_a_deleted_task_are_dropped_and_the_others_of_the_batch_kept(
    pool: asyncpg.Pool,
) -> None:
    kept, deleted = await _task(pool), await _task(pool)
    log, delivered = _delivering_log(pool)
    for task_id in (kept, deleted):
        log.emit(task_id, "node", 50, data={"node": "n1"})
    await pool.execute("DELETE FROM tasks WHERE task_id = $1", deleted)
    batch, log._pending = log._pending, []
    await log._write(batch)
    assert [e.task_id for e in delivered] == [kept]
    assert len(await read_events(pool, kept)) == 1


async def test_a_task_reaped_here_while_its_events_are_unwritten_ends_after_them(
    pool: asyncpg.Pool,
) -> None:
    # The run ended while the database was down (its events unwritten, its sequence closed),
    # then this process reaped the task: the reaper's complete follows those events.
    task_id = await _task(pool)
    log, delivered = _delivering_log(pool)
    await log.open_task(task_id)
    log.emit(task_id, "node", 50, data={"node": "n1"})
    log.emit(task_id, "node", 100, data={"node": "n2"})
    log.close_task(task_id)
    await log.open_task(task_id)
    log.emit(task_id, "complete", 100, "worker lost")
    batch, log._pending = log._pending, []
    await log._write(batch)
    assert [(e.seq, e.type) for e in delivered] == [(1, "node"), (2, "node"), (3, "complete")]
    assert [e.seq for e in await read_events(pool, task_id)] == [1, 2, 3]


async def test_events_claiming_one_seq_are_all_kept_in_the_order_they_were_emitted(
    pool: asyncpg.Pool,
) -> None:
    task_id = await _task(pool)
    log, delivered = _delivering_log(pool)
    log.emit(task_id, "node", 50, data={"node": "n1"})
    log.close_task(task_id)  # a sequence started again without open_task: seq 1 twice
    log.emit(task_id, "node", 60, data={"node": "n2"})
    batch, log._pending = log._pending, []
    await log._write(batch)
    assert [(e.seq, e.data["node"]) for e in delivered] == [(1, "n1"), (2, "n2")]
    assert [e.seq for e in await read_events(pool, task_id)] == [1, 2]


async def test_an_event_after_a_quiet_interval_goes_at_once_the_next_waits_unless_urgent(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "FLUSH_INTERVAL", 60.0)
    task_id = await _task(pool)
    log, delivered = _delivering_log(pool)
    await log.open_task(task_id)
    await log.start()

    async def delivered_count(n: int) -> bool:
        return len(delivered) == n

    try:
        log.emit(task_id, "progress", 0, "first after a quiet minute")
        await eventually(lambda: delivered_count(1), 20)
        log.emit(task_id, "progress", 10, "second, within the interval")
        await asyncio.sleep(0.3)
        assert len(delivered) == 1  # held for the next batch, a minute away
        log.emit(task_id, "node", 20, data={"node": "n1", "status": "success"}, urgent=True)
        await eventually(lambda: delivered_count(3), 20)
        assert [e.seq for e in delivered] == [1, 2, 3]
    finally:
        await log.stop()
