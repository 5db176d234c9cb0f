"""Several real knm processes on one database fire a schedule: each fire time makes exactly one
task, also when one of them is killed (SIGKILL) while fires are in flight."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import asyncpg
import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess, ProcessFactory

PLUGIN = {"KNM_PLUGINS": "knm.testing.executor:TestExecutorPlugin"}


def login(proc: KnmProcess) -> dict[str, str]:
    response = httpx.post(
        f"{proc.api}/auth/login",
        json={"username": "admin", "password": TEST_ADMIN_PASSWORD},
        timeout=30,
    )
    return {"Authorization": f"Bearer {response.json()['data']['token']}"}


async def runs(pool: asyncpg.Pool, schedule_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY fire_time", schedule_id
    )


async def wait_for_runs(pool: asyncpg.Pool, schedule_id: int, count: int) -> None:
    end = time.monotonic() + 120
    while len(await runs(pool, schedule_id)) < count:
        assert time.monotonic() < end, f"fewer than {count} runs within 120 s"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_three_processes_fire_each_time_once_even_when_one_is_killed_mid_run(
    knm_process: ProcessFactory, knm_pool: asyncpg.Pool
) -> None:
    server = await asyncio.to_thread(knm_process, "serve", **PLUGIN)
    workers = [await asyncio.to_thread(knm_process, "worker", **PLUGIN) for _ in range(2)]
    headers = login(server)
    body: dict[str, Any] = {
        "name": "every-second-everywhere",
        "kind": "test",
        "request": {"cluster_name": "lab", "target_nodes": ["n1"], "sleep": 0.3},
        # Seconds first: a fire every second, the busiest a cron expression can be.
        "cron": "* * * * * *",
        "timezone": "Europe/Berlin",
        "max_concurrent_runs": 1000,
    }
    response = httpx.post(f"{server.api}/schedules", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    schedule_id = response.json()["data"]["id"]

    await wait_for_runs(knm_pool, schedule_id, 8)
    # A worker dies with fires (and tasks) in flight: its open transactions roll back.
    await asyncio.to_thread(workers[0].kill)
    before_kill = len(await runs(knm_pool, schedule_id))
    await wait_for_runs(knm_pool, schedule_id, before_kill + 8)
    response = httpx.post(
        f"{server.api}/schedules/{schedule_id}/pause", headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    await asyncio.sleep(1.0)  # fires claimed before the pause commit

    found = await runs(knm_pool, schedule_id)
    times = [r["fire_time"] for r in found]
    # Every second from the first fire to the last: none lost to the killed process.
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(times)), times
    assert {r["status"] for r in found} == {"started"}, [dict(r) for r in found]
    task_ids = [r["task_id"] for r in found]
    assert None not in task_ids and len(set(task_ids)) == len(task_ids)
    # And no task besides them: the schedule's tasks are exactly its runs' tasks.
    audited = await knm_pool.fetch(
        "SELECT target FROM audit_log WHERE action = 'task.start' AND detail->>'schedule_id' = $1",
        str(schedule_id),
    )
    assert sorted(r["target"] for r in audited) == sorted(task_ids)
    stored = await knm_pool.fetchval(
        "SELECT count(*) FROM tasks WHERE task_id = ANY($1::text[])", task_ids
    )
    assert stored == len(task_ids)
    for proc in [server, workers[1]]:
        assert proc.proc is not None and proc.proc.poll() is None, proc.log()


@pytest.mark.timeout(300)
async def test_many_schedules_due_at_once_fire_in_batches_once_each_across_a_kill(
    knm_process: ProcessFactory, knm_pool: asyncpg.Pool
) -> None:
    server = await asyncio.to_thread(knm_process, "serve", **PLUGIN)
    workers = [await asyncio.to_thread(knm_process, "worker", **PLUGIN) for _ in range(2)]
    headers = login(server)
    ids = []
    for i in range(30):
        body: dict[str, Any] = {
            "name": f"batched-{i}",
            "kind": "test",
            "request": {"cluster_name": "lab", "target_nodes": ["n1"]},
            # Due at the same second, all of them: the lanes of three processes claim
            # overlapping batches.
            "cron": "*/2 * * * * *",
            "timezone": "UTC",
            "max_concurrent_runs": 1000,
        }
        response = httpx.post(f"{server.api}/schedules", json=body, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["id"])

    for schedule_id in ids:
        await wait_for_runs(knm_pool, schedule_id, 3)
    await asyncio.to_thread(workers[1].kill)
    # Three more fire times each after the kill (counted from it, not from each wait).
    targets = {schedule_id: len(await runs(knm_pool, schedule_id)) + 3 for schedule_id in ids}
    for schedule_id, count in targets.items():
        await wait_for_runs(knm_pool, schedule_id, count)
    await knm_pool.execute("UPDATE schedules SET enabled = false WHERE id = ANY($1)", ids)
    await asyncio.sleep(1.0)  # batches claimed before the pause commit

    task_ids = []
    for schedule_id in ids:
        found = await runs(knm_pool, schedule_id)
        times = [r["fire_time"] for r in found]
        # Every other second, from the first fire to the last: none lost, none twice.
        assert all((b - a).total_seconds() == 2 for a, b in itertools.pairwise(times)), times
        assert {r["status"] for r in found} == {"started"}, [dict(r) for r in found]
        task_ids += [r["task_id"] for r in found]
    assert None not in task_ids and len(set(task_ids)) == len(task_ids)
    audited = await knm_pool.fetch(
        "SELECT target FROM audit_log WHERE action = 'task.start' "
        "AND (detail->>'schedule_id')::bigint = ANY($1)",
        ids,
    )
    assert sorted(r["target"] for r in audited) == sorted(task_ids)
    for proc in [server, workers[0]]:
        assert proc.proc is not None and proc.proc.poll() is None, proc.log()
