"""Exact totals for history pages without counting rows (tables ``task_counts`` and
``task_count_changes``, migration ``0009_task_counts.sql``).

Statement triggers on ``tasks`` append each statement's net change per (UTC day, kind,
cluster, status, child or not); :func:`fold` moves the changes into one row per group. A
history filter is made of exactly those dimensions (dates are whole UTC days), so its total is
a sum over a few hundred rows instead of a count over every matching task. Only a filter on
``parent_task_id`` (a handful of children) is counted directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from knm.core.tasks.store import HistoryFilter

log = logging.getLogger(__name__)

#: ``pg_try_advisory_xact_lock`` key: one folder at a time; the others skip their turn.
FOLD_LOCK = 0x6B6E6D_636E74  # "knm" "cnt"
FOLD_INTERVAL = 5.0


async def total(
    conn: asyncpg.Connection | asyncpg.Pool, where: HistoryFilter, sql_where: str, args: list[Any]
) -> int:
    """How many tasks ``where`` matches (``sql_where``/``args``: the same filter on ``tasks``,
    for the one case counted directly)."""
    return int(await conn.fetchval(total_sql(where, sql_where), *args))


def total_sql(where: HistoryFilter, sql_where: str) -> str:
    """:func:`total` as a statement of one row and column, taking the arguments of
    ``sql_where`` (``where`` on ``tasks``: :meth:`HistoryFilter.sql` numbers them the same way
    for both tables) — to be sent alone or inside the statement of a history page."""
    if where.parent_task_id is not None:
        return f"SELECT count(*) FROM tasks {sql_where}"
    condition, _ = where.sql(not_child="NOT is_child", since="day >= ?", until="day <= ?")
    # Without dates, the day-less totals: a few hundred rows whatever the history's length.
    folded = "task_counts" if where.start_date or where.end_date else "task_totals"
    day = "day" if folded == "task_counts" else "NULL::date AS day"
    # One statement, one snapshot: a fold running meanwhile is seen entirely or not at all.
    return f"""SELECT coalesce(sum(n), 0) FROM (
                   SELECT n, {day}, kind, cluster_name, status, is_child FROM {folded}
                   UNION ALL
                   SELECT n, day, kind, cluster_name, status, is_child FROM task_count_changes
               ) c {condition}"""


async def fold(conn: asyncpg.Connection) -> bool:
    """Move the appended changes into ``task_counts``; False when another process is at it."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", FOLD_LOCK):
            return False
        await conn.execute(
            """WITH moved AS (DELETE FROM task_count_changes RETURNING *),
               by_day AS (
                   INSERT INTO task_counts AS c (day, kind, cluster_name, status, is_child, n)
                   SELECT day, kind, cluster_name, status, is_child, sum(n) FROM moved
                   GROUP BY day, kind, cluster_name, status, is_child
                   ON CONFLICT (day, kind, cluster_name, status, is_child)
                   DO UPDATE SET n = c.n + excluded.n
               )
               INSERT INTO task_totals AS t (kind, cluster_name, status, is_child, n)
               SELECT kind, cluster_name, status, is_child, sum(n) FROM moved
               GROUP BY kind, cluster_name, status, is_child
               ON CONFLICT (kind, cluster_name, status, is_child)
               DO UPDATE SET n = t.n + excluded.n"""
        )
        # Groups emptied by pruning or status changes: nothing to keep.
        await conn.execute("DELETE FROM task_counts WHERE n = 0")
        await conn.execute("DELETE FROM task_totals WHERE n = 0")
    return True


async def fold_loop(pool: asyncpg.Pool, interval: float = FOLD_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(asyncio.CancelledError):
            try:
                async with pool.acquire() as conn:
                    await fold(conn)
            except Exception:
                log.warning("folding task counts failed; retrying", exc_info=True)
