"""The per-task event log, written in batches and published to subscribers.

Events are produced by the process that runs a task. The first event after a quiet interval
is written at once; while events keep coming they are buffered for a short interval,
coalesced (consecutive output of one node and stream becomes one event), written to
``task_events`` with one COPY, handed to this process's subscribers, and announced to other
processes with one ``NOTIFY`` per task carrying only ``task_id:last_seq`` (payloads are limited
to 8000 bytes, so subscribers elsewhere read the events themselves from the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from knm.wire import EVENT_TYPES, BaseEvent, make_event, now

log = logging.getLogger("knm.events")

CHANNEL = "knm_events"
FLUSH_INTERVAL = 0.05
MAX_BATCH = 5000
#: How often an event is moved past seqs other writers take meanwhile before it is dropped.
MAX_RESEQUENCE = 5


#: The stream's messages are ``knm.wire`` events (a tagged union on ``type``); this is their base.
Event = BaseEvent
__all__ = ["CHANNEL", "Event", "EventLog", "now", "read_events"]


class EventLog:
    """Buffers, stores and publishes events of the tasks this process runs."""

    def __init__(self, pool: asyncpg.Pool, deliver: Callable[[str, list[Event]], None]) -> None:
        self.pool = pool
        self.deliver = deliver
        self._seq: dict[str, int] = {}
        self._pending: list[Event] = []
        self._wakeup = asyncio.Event()
        self._flushed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: A batch is being written (taken off ``_pending``, not yet stored and handed out).
        self._writing = False
        #: That batch.
        self._batch: list[Event] = []
        #: When the last batch was taken (``time.monotonic``).
        self._last = -FLUSH_INTERVAL

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="knm-event-log")

    async def stop(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self._flush()

    async def open_task(self, task_id: str) -> None:
        """Continue a task's sequence (a task taken over from a lost worker has events)."""
        last = await self.pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM task_events WHERE task_id = $1", task_id
        )
        # And what this log holds unwritten (a task that ended here while the database was
        # down, then reaped here): the log's max alone would give a seq already taken.
        unwritten = max(
            (e.seq for e in (*self._batch, *self._pending) if e.task_id == task_id), default=0
        )
        self._seq[task_id] = max(self._seq.get(task_id, 0), last, unwritten)

    def close_task(self, task_id: str) -> None:
        self._seq.pop(task_id, None)

    def emit(
        self,
        task_id: str,
        type: str,
        progress: int,
        message: str = "",
        data: dict[str, Any] | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Adds an event. It is written at once when ``urgent`` (someone waits for exactly this
        one: a task's end, its first node result), or when the log has been quiet for an
        interval (a small task's events are not held back by a batch of one); otherwise with
        the next batch."""
        data = data or {}
        if type == "output" and self._pending:
            last = self._pending[-1]
            if (
                last.task_id == task_id
                and last.type == "output"
                and last.data.get("node") == data.get("node")
                and last.data.get("stream") == data.get("stream")
            ):
                last.data["text"] = last.data.get("text", "") + data.get("text", "")
                last.progress = progress
                return
        seq = self._seq.get(task_id, 0) + 1
        self._seq[task_id] = seq
        self._pending.append(
            make_event(
                type,
                task_id=task_id,
                seq=seq,
                progress=max(0, min(100, int(progress))),
                message=message,
                data=data,
                timestamp=now(),
            )
        )
        if (
            urgent
            or type == "complete"
            or len(self._pending) >= MAX_BATCH
            or (not self._writing and time.monotonic() - self._last >= FLUSH_INTERVAL)
        ):
            self._wakeup.set()

    async def flush(self) -> None:
        """Write everything emitted so far (used before a terminal state is reported)."""
        self._wakeup.set()
        async with self._flushed:
            await asyncio.wait_for(
                self._flushed.wait_for(lambda: not self._pending and not self._writing), timeout=30
            )

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), FLUSH_INTERVAL)
            self._wakeup.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("writing task events failed; retrying")
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        if not self._pending:
            async with self._flushed:
                self._flushed.notify_all()
            return
        batch, self._pending = self._pending, []
        self._writing, self._batch = True, batch
        self._last = time.monotonic()
        try:
            await self._write(batch)
        finally:
            self._writing, self._batch = False, []
        async with self._flushed:
            self._flushed.notify_all()

    async def _write(self, batch: list[Event]) -> None:
        # Only this job writes (one batch at a time, seqs in order), and a batch is announced
        # after its COPY committed, so a reader of "everything after seq N" never meets a gap
        # that a later commit fills.
        records = [
            (e.task_id, e.seq, e.type, e.progress, e.message, e.data, e.timestamp) for e in batch
        ]
        try:
            try:
                async with self.pool.acquire() as conn:
                    await conn.copy_records_to_table(
                        "task_events",
                        records=records,
                        columns=[
                            "task_id", "seq", "type", "progress", "message", "data", "created_at"
                        ],
                    )  # fmt: skip
            except asyncpg.IntegrityConstraintViolationError:
                # Part of the batch is stored already (a COPY that committed as the database
                # went down, its answer lost with the connection, then retried), a seq was
                # taken by another writer (a lost task failed elsewhere), or a task was deleted
                # (pruned). Dropping the whole batch lost a task's last events, "complete"
                # among them: row by row instead, and what the log then holds goes out.
                stored = await self._write_rows(batch, records)
            else:
                stored = batch
        except Exception:
            # Put the batch back (its seqs are assigned, so order holds) and let the loop retry.
            self._pending[:0] = batch
            raise
        batch = stored
        if not batch:
            return
        by_task: dict[str, list[Event]] = {}
        for event in batch:
            by_task.setdefault(event.task_id, []).append(event)
        # Stored: hand the batch to this process's subscribers before announcing it, so a
        # failed announcement cannot leave them a gap, and this process's hub does not read
        # back from the log what it already has.
        for task_id, events in by_task.items():
            self.deliver(task_id, events)
        await self.pool.execute(
            "SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x",
            CHANNEL,
            [f"{task_id}:{events[-1].seq}" for task_id, events in by_task.items()],
        )

    async def _write_rows(self, batch: list[Event], records: list[tuple[Any, ...]]) -> list[Event]:
        """Each event stored one by one; returns those the log now holds, in order.

        An event whose row is already there with the same content is this log's own (a COPY
        that committed as its answer was lost). Another writer's event at that seq (a worker
        that lost its lease still writing while this process failed the task, or the other way
        round) does not cost this one its place: it and the task's later events, unwritten
        ones included, move after the log's last seq. A task's log ends at its ``complete``:
        what comes after one is dropped, as are the events of a deleted task."""
        kept: list[Event] = []
        shifts: dict[str, int] = {}
        async with self.pool.acquire() as conn:
            for event, record in zip(batch, records, strict=True):
                original = event.seq
                event.seq += shifts.get(event.task_id, 0)
                if await self._store_row(conn, event, (record[0], event.seq, *record[2:])):
                    kept.append(event)
                if event.seq != original:
                    shifts[event.task_id] = event.seq - original
        for task_id, shift in shifts.items():
            # No await from here on: an event emitted meanwhile took its seq from ``_seq``.
            for event in self._pending:
                if event.task_id == task_id:
                    event.seq += shift
            if task_id in self._seq:
                self._seq[task_id] += shift
        if len(kept) < len(batch):
            log.warning("dropped %d events of deleted or ended tasks", len(batch) - len(kept))
        return kept

    async def _store_row(
        self, conn: asyncpg.Connection, event: Event, record: tuple[Any, ...]
    ) -> bool:
        """Stores one event (moving it past another writer's seq); whether the log holds it."""
        for _ in range(MAX_RESEQUENCE):
            inserted = await conn.fetchval(
                """INSERT INTO task_events
                       (task_id, seq, type, progress, message, data, created_at)
                   SELECT $1, $2, $3, $4, $5, $6, $7
                   WHERE EXISTS (SELECT 1 FROM tasks WHERE task_id = $1)
                     AND NOT EXISTS (SELECT 1 FROM task_events
                                     WHERE task_id = $1 AND type = 'complete')
                   ON CONFLICT (task_id, seq) DO NOTHING
                   RETURNING true""",
                *record,
            )
            if inserted:
                return True
            row = await conn.fetchrow(
                """SELECT (SELECT row(type, progress, message, data, created_at)
                           = row($3::text, $4::int, $5::text, $6::jsonb, $7::timestamptz)
                           FROM task_events WHERE task_id = $1 AND seq = $2) AS same,
                          EXISTS (SELECT 1 FROM tasks WHERE task_id = $1) AS task,
                          EXISTS (SELECT 1 FROM task_events
                                  WHERE task_id = $1 AND type = 'complete') AS ended,
                          (SELECT max(seq) FROM task_events WHERE task_id = $1) AS last""",
                *record,
            )
            if row["same"]:
                return True
            if not row["task"] or row["ended"]:
                return False
            event.seq = (row["last"] or event.seq) + 1
            record = (record[0], event.seq, *record[2:])
        return False


async def read_events(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: str, since: int = 0, limit: int = 10_000
) -> list[Event]:
    records = await conn.fetch(
        """SELECT task_id, seq, type, progress, message, data, created_at AS timestamp
           FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        task_id,
        since,
        limit,
    )
    # Each struct made from its row directly: a replay reads 1,000 rows a round trip while a
    # task may be streaming beside it, and dict(record) plus make_event's keywords took 40 %
    # of the read (~70,000 events/s against ~120,000).
    events: list[Event] = []
    for task, seq, type, progress, message, data, timestamp in records:
        cls = EVENT_TYPES.get(type)
        if cls is None:
            make_event(type)  # the ValueError that names the known types
        events.append(
            cls(  # type: ignore[misc]
                task_id=task,
                seq=seq,
                progress=progress,
                message=message,
                data=data,
                timestamp=timestamp,
            )
        )
    return events
