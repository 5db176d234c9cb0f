"""History totals come from per-day counts kept by triggers, and always equal a real count."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from knm.core.tasks import counts
from knm.core.tasks.store import HistoryFilter, history
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import start_task, wait_for_task

# Kinds no executor claims: the runner leaves these rows alone.
KINDS = ("alpha", "beta", "gamma")
CLUSTERS = ("a", "b", "c")
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
MIDNIGHT = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
async def conn(knm_fresh_database_url: str) -> Any:
    """A database of the test's own, with no server on it: every task in it is the test's, and
    only the test folds the counts."""
    connection = await asyncpg.connect(knm_fresh_database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _insert(conn: asyncpg.Connection, rng: random.Random, n: int, start: int) -> None:
    rows = []
    for i in range(start, start + n):
        # Around midnights on purpose: a day's last and next day's first microsecond.
        when = MIDNIGHT + timedelta(days=rng.randint(-3, 3), microseconds=rng.choice([-1, 0, 1]))
        parent = f"cnt-{rng.randrange(start)}" if start and rng.random() < 0.2 else None
        rows.append(
            (
                f"cnt-{i}",
                rng.choice(KINDS),
                rng.choice(STATUSES[:2]),
                rng.choice(CLUSTERS),
                when,
                parent,
            )
        )
    await conn.executemany(
        """INSERT INTO tasks (task_id, kind, status, cluster_name, created_at, parent_task_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        rows,
    )


def _filters(rng: random.Random) -> list[HistoryFilter]:
    filters = [HistoryFilter(), HistoryFilter(include_children=True)]
    for _ in range(40):
        start = MIDNIGHT.date() + timedelta(days=rng.randint(-4, 2))
        filters.append(
            HistoryFilter(
                kind=rng.choice((None, *KINDS)),
                cluster_name=rng.choice((None, *CLUSTERS)),
                status=rng.choice((None, *STATUSES)),
                start_date=rng.choice((None, start)),
                end_date=rng.choice((None, start + timedelta(days=rng.randint(0, 3)))),
                include_children=rng.random() < 0.3,
            )
        )
    return filters


async def _real_count(conn: asyncpg.Connection, where: HistoryFilter) -> int:
    conditions = ["task_id LIKE 'cnt-%'"]
    args: list[Any] = []
    if not where.include_children:
        conditions.append("parent_task_id IS NULL")
    for column in ("kind", "cluster_name", "status"):
        if getattr(where, column):
            args.append(getattr(where, column))
            conditions.append(f"{column} = ${len(args)}")
    if where.start_date:
        args.append(datetime.combine(where.start_date, datetime.min.time(), UTC))
        conditions.append(f"created_at >= ${len(args)}")
    if where.end_date:
        args.append(datetime.combine(where.end_date + timedelta(days=1), datetime.min.time(), UTC))
        conditions.append(f"created_at < ${len(args)}")
    return int(
        await conn.fetchval(f"SELECT count(*) FROM tasks WHERE {' AND '.join(conditions)}", *args)
    )


async def _check_every_filter(conn: asyncpg.Connection, rng: random.Random) -> None:
    others = await conn.fetchval("SELECT count(*) FROM tasks WHERE task_id NOT LIKE 'cnt-%'")
    assert others == 0, "this test counts only its own tasks"
    for where in _filters(rng):
        total, _ = await history(conn, where, 1, 0)
        assert total == await _real_count(conn, where), where


async def test_totals_equal_a_real_count_through_inserts_status_changes_deletes_and_folds(
    conn: asyncpg.Connection,
) -> None:
    rng = random.Random(17)
    await _insert(conn, rng, 300, 0)
    await _check_every_filter(conn, rng)  # nothing folded yet: all in the changes
    assert await counts.fold(conn)
    await conn.execute(
        "UPDATE tasks SET status = 'running' WHERE task_id LIKE 'cnt-%' AND status = 'pending' "
        "AND random() < 0.5"
    )
    await _insert(conn, rng, 200, 300)
    await _check_every_filter(conn, rng)  # half folded, half not
    await conn.execute(
        """UPDATE tasks SET status = (ARRAY['completed','failed','cancelled'])[1 + id % 3],
                  end_time = now()
           WHERE task_id LIKE 'cnt-%' AND status = 'running'"""
    )
    assert await counts.fold(conn)
    await conn.execute("DELETE FROM tasks WHERE task_id LIKE 'cnt-%' AND id % 4 = 0")
    await _check_every_filter(conn, rng)
    assert await counts.fold(conn)
    await _check_every_filter(conn, rng)
    assert await conn.fetchval("SELECT count(*) FROM task_counts WHERE n = 0") == 0
    assert await conn.fetchval("SELECT count(*) FROM task_totals WHERE n = 0") == 0


async def test_a_fold_skips_its_turn_while_another_process_folds(
    conn: asyncpg.Connection, knm_fresh_database_url: str
) -> None:
    other = await asyncpg.connect(knm_fresh_database_url)
    try:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", counts.FOLD_LOCK)
            assert not await counts.fold(conn)
        assert await counts.fold(conn)
    finally:
        await other.close()


async def test_the_history_route_reports_the_same_total_as_a_count(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, cluster_name="tally", target_nodes=["n1"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    today = date.today().isoformat()
    body = assert_envelope(
        await knm_client.get(
            "/tasks",
            params={
                "cluster_name": "tally",
                "status": "completed",
                "start_date": today,
                "end_date": today,
            },
            headers=admin_headers,
        ),
        200,
    )["data"]
    assert body["total"] == 1
    assert [row["task_id"] for row in body["executions"]] == [data["task_id"]]
