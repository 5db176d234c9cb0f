"""Retention: finished tasks, their events and their output are pruned by age and total size."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

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


async def prune(
    conn: asyncpg.Connection,
    *,
    task_days: int,
    event_days: int,
    output_max_bytes: int,
) -> PruneReport:
    report = PruneReport()
    # A transaction-scoped lock: nothing is left behind on a pooled connection.
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PRUNE_LOCK):
            return report
        report.tasks = _count(
            await conn.execute(
                "DELETE FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') "
                "AND end_time < now() - make_interval(days => $1)",
                task_days,
            )
        )
        report.events = _count(
            await conn.execute(
                """DELETE FROM task_events e USING tasks t
                   WHERE e.task_id = t.task_id AND t.status IN ('completed', 'failed', 'cancelled')
                     AND t.end_time < now() - make_interval(days => $1)""",
                event_days,
            )
        )
        # Beyond the size budget, the output of the oldest finished tasks goes first.
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
