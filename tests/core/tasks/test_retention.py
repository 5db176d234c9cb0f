"""Retention: finished tasks, events and output are pruned by age and by total size."""

from __future__ import annotations

from typing import Any

import asyncpg

from knm.core.db import connect_one
from knm.core.tasks.retention import prune
from knm.testing.client import ApiClient
from knm.testing.tasks import start_task, wait_for_task


async def test_prune_removes_old_tasks_old_events_and_output_over_budget(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    ids = []
    for _ in range(3):
        data = await start_task(
            knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"], output_lines=50
        )
        await wait_for_task(knm_client, admin_headers, data["task_id"])
        ids.append(data["task_id"])
    conn = await connect_one(knm_database_url)
    try:
        # Make the first task look 100 days old and the second 40 (finished tasks cannot change,
        # so the trigger is bypassed for this set-up only).
        await conn.execute("ALTER TABLE tasks DISABLE TRIGGER tasks_frozen")
        await conn.execute(
            "UPDATE tasks SET end_time = now() - interval '100 days' WHERE task_id = $1", ids[0]
        )
        await conn.execute(
            "UPDATE tasks SET end_time = now() - interval '40 days' WHERE task_id = $1", ids[1]
        )
        await conn.execute("ALTER TABLE tasks ENABLE TRIGGER tasks_frozen")
        report = await prune(conn, task_days=90, event_days=30, output_max_bytes=0)
        assert report.tasks == 1 and report.events > 0 and report.output_tasks >= 1
        left = {
            r["task_id"]
            for r in await conn.fetch("SELECT task_id FROM tasks WHERE task_id = ANY($1)", ids)
        }
        assert left == {ids[1], ids[2]}
        assert (
            await conn.fetchval("SELECT count(*) FROM task_events WHERE task_id = $1", ids[1]) == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM task_events WHERE task_id = $1", ids[2]) > 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM task_output WHERE task_id = ANY($1)", ids)
            == 0
        )
    finally:
        await conn.close()
    assert isinstance(report, object) and asyncpg


async def test_prune_deletes_in_small_rounds_until_nothing_old_is_left(
    knm_client: ApiClient, knm_database_url: str
) -> None:
    conn = await connect_one(knm_database_url)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, created_at, start_time,
                                  end_time)
               SELECT 'old-' || g, 'alpha', 'completed', 'lab', now() - interval '200 days',
                      now() - interval '200 days', now() - interval '200 days'
               FROM generate_series(1, 11) g"""
        )
        statements: list[str] = []

        def log(record: Any) -> None:
            statements.append(record.query)

        conn.add_query_logger(log)
        report = await prune(conn, task_days=90, event_days=30, output_max_bytes=1 << 40, batch=3)
        conn.remove_query_logger(log)
        assert report.tasks == 11
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE task_id LIKE 'old-%'") == 0
        # 11 rows in rounds of 3: four deleting rounds and none larger than the batch.
        assert sum(1 for sql in statements if "DELETE FROM tasks" in sql) == 4
    finally:
        await conn.close()


async def test_prune_stops_when_another_process_is_pruning(
    knm_client: ApiClient, knm_database_url: str
) -> None:
    from knm.core.tasks.retention import PRUNE_LOCK

    conn = await connect_one(knm_database_url)
    other = await connect_one(knm_database_url)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, created_at, start_time,
                                  end_time)
               VALUES ('old-x', 'alpha', 'completed', 'lab', now() - interval '200 days',
                       now() - interval '200 days', now() - interval '200 days')"""
        )
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", PRUNE_LOCK)
            report = await prune(conn, task_days=90, event_days=30, output_max_bytes=1 << 40)
        assert report.tasks == 0
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE task_id = 'old-x'") == 1
        report = await prune(conn, task_days=90, event_days=30, output_max_bytes=1 << 40)
        assert report.tasks == 1
    finally:
        await other.close()
        await conn.close()
