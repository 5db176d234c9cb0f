"""Retention: finished tasks, their events and their output are pruned by age and total size;
schedules' runs by the tasks' age."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from knm.core.tasks import status_cache

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.retention")

#: Only one process prunes at a time; the others skip that round.
PRUNE_LOCK = 7005002


class PruneReport(msgspec.Struct):
    tasks: int = 0
    events: int = 0
    output_tasks: int = 0
    schedule_runs: int = 0


#: Rows deleted per transaction: small enough that no statement holds locks, WAL or I/O for
#: long while the API serves, large enough that a million tasks go in a few hundred rounds.
PRUNE_BATCH = 5_000


async def prune(
    conn: asyncpg.Connection,
    *,
    task_days: int,
    event_days: int,
    output_max_bytes: int,
    batch: int = PRUNE_BATCH,
) -> PruneReport:
    """Delete what retention no longer keeps, in batches of ``batch`` rows, each its own
    transaction (one statement deleting a million tasks with their nodes, output and events
    stalled the API). Another process pruning at the same time makes this one stop."""
    report = PruneReport()

    async def rounds(sql: str, *args: Any) -> int | None:
        deleted = 0
        while True:
            # A transaction-scoped lock: nothing is left behind on a pooled connection.
            async with conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PRUNE_LOCK):
                    return None
                n = _count(await conn.execute(sql, *args, batch))
            deleted += n
            if n < batch:
                return deleted
            await asyncio.sleep(0)  # let this process's own requests in between rounds

    tasks = await rounds(
        """DELETE FROM tasks WHERE id IN (
               SELECT id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')
                 AND end_time < now() - make_interval(days => $1) LIMIT $2)""",
        task_days,
    )
    if tasks is None:
        return report
    report.tasks = tasks
    events = await rounds(
        """DELETE FROM task_events WHERE ctid IN (
               SELECT e.ctid FROM task_events e JOIN tasks t ON t.task_id = e.task_id
               WHERE t.status IN ('completed', 'failed', 'cancelled')
                 AND t.end_time < now() - make_interval(days => $1) LIMIT $2)""",
        event_days,
    )
    if events is None:
        return report
    report.events = events
    from knm.core.schedules.store import PRUNE_RUNS

    # A schedule's runs go with the tasks they started (and the skipped and failed ones as old).
    runs = await rounds(PRUNE_RUNS, task_days)
    if runs is None:
        return report
    report.schedule_runs = runs
    # Beyond the size budget, the output of the oldest finished tasks goes first.
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PRUNE_LOCK):
            return report
        total = await conn.fetchval("SELECT coalesce(sum(octet_length(data)), 0) FROM task_output")
        while total > output_max_bytes:
            victim = await conn.fetchrow(
                """SELECT o.task_id, sum(octet_length(o.data)) AS size FROM task_output o
                   JOIN tasks t ON t.task_id = o.task_id
                   WHERE t.status IN ('completed', 'failed', 'cancelled')
                   GROUP BY o.task_id, t.end_time ORDER BY t.end_time LIMIT 1"""
            )
            if victim is None:
                break
            await conn.execute("DELETE FROM task_output WHERE task_id = $1", victim["task_id"])
            total -= victim["size"]
            report.output_tasks += 1
    return report


def _count(status: str) -> int:
    return int(status.split()[-1]) if status and status.split()[-1].isdigit() else 0


async def prune_with(knm: Knm) -> PruneReport:
    cfg = knm.config
    async with knm.pool.acquire() as conn:
        report = await prune(
            conn,
            task_days=cfg.task_retention_days,
            event_days=cfg.event_retention_days,
            output_max_bytes=cfg.output_retention_mb * 1024 * 1024,
        )
        if report.tasks or report.output_tasks:
            # Cached status answers of the pruned tasks are stale in every process.
            await status_cache.announce_prune(conn)
    if knm.status_cache is not None:
        knm.status_cache.clear()
    return report


async def prune_loop(knm: Knm) -> None:
    while True:
        await asyncio.sleep(knm.config.prune_interval)
        with contextlib.suppress(asyncio.CancelledError):
            try:
                report = await prune_with(knm)
                if report.tasks or report.events or report.output_tasks:
                    log.info("pruned %s", report)
            except Exception:
                log.exception("pruning failed")
