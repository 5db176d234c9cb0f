"""The per-task event log, written in batches and published to subscribers.

Events are produced by the process that runs a task. They are buffered for a short interval,
coalesced (consecutive output of one node and stream becomes one event), written to
``task_events`` with one COPY, handed to this process's subscribers, and announced to other
processes with one ``NOTIFY`` per task carrying only ``task_id:last_seq`` (payloads are limited
to 8000 bytes, so subscribers elsewhere read the events themselves from the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from knm.wire import BaseEvent, make_event, now

log = logging.getLogger("knm.events")

CHANNEL = "knm_events"
FLUSH_INTERVAL = 0.05
MAX_BATCH = 5000


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
    ) -> None:
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
        if type == "complete" or len(self._pending) >= MAX_BATCH:
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
        """Each event stored unless its seq is taken or its task gone; returns the batch's
        events as the log holds them, in the batch's order."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.executemany(
                    """INSERT INTO task_events
                           (task_id, seq, type, progress, message, data, created_at)
                       SELECT $1, $2, $3, $4, $5, $6, $7
                       WHERE EXISTS (SELECT 1 FROM tasks WHERE task_id = $1)
                       ON CONFLICT (task_id, seq) DO NOTHING""",
                    records,
                )
            stored = await conn.fetch(
                """SELECT e.task_id, e.seq, e.type, e.progress, e.message, e.data,
                          e.created_at AS timestamp
                   FROM task_events e
                   JOIN unnest($1::text[], $2::int[]) AS b (task_id, seq)
                     ON e.task_id = b.task_id AND e.seq = b.seq""",
                [event.task_id for event in batch],
                [event.seq for event in batch],
            )
        held = {(r["task_id"], r["seq"]): r for r in stored}
        kept = []
        for event in batch:
            # Each stored event goes out once, however many of the batch's claimed its seq.
            record = held.pop((event.task_id, event.seq), None)
            if record is not None:
                fields = dict(record)
                kept.append(make_event(fields.pop("type"), **fields))
        if len(kept) < len(batch):
            log.warning(
                "dropped %d events of deleted tasks or of seqs taken", len(batch) - len(kept)
            )
        return kept


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
    events = []
    for record in records:
        fields = dict(record)
        events.append(make_event(fields.pop("type"), **fields))
    return events
