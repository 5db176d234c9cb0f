"""The runner's leases: a task is acted on and ended only by the worker holding its lease."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from knm.core.tasks import store
from knm.core.tasks.events import read_events
from knm.core.tasks.runner import LEASE_LOST
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import event_of, eventually, start_task, wait_for_event


@pytest.fixture(scope="module")
def test_plugin() -> TestExecutorPlugin:
    # Disruptive: its tasks hold their nodes' locks, which a lost lease must not release.
    plugin = TestExecutorPlugin()
    plugin.executor.disruptive = True  # type: ignore[misc]
    return plugin


async def _running_task(pool: asyncpg.Pool, worker_id: str, lease: float) -> str:
    task_id = f"test-runner-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        """INSERT INTO tasks (task_id, kind, status, cluster_name, worker_id, lease_until)
           VALUES ($1, 'test', 'running', 'x', $2, now() + make_interval(secs => $3))""",
        task_id,
        worker_id,
        lease,
    )
    return task_id


async def test_a_task_another_worker_took_is_stopped_here_and_its_end_left_to_that_worker(
    knm_app: Any, knm_client: ApiClient, admin_headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    knm = knm_app.state["knm"]
    nodes = [{"name": name, "address": "127.0.0.1"} for name in ("n1", "n2")]
    cluster = {"name": "lab", "kind": "static", "nodes": nodes}
    assert_envelope(await knm_client.post("/clusters", json=cluster, headers=admin_headers), 201)
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"], hang_nodes=["n2"]
    )
    task_id = data["task_id"]
    await wait_for_event(knm_client, admin_headers, task_id, event_of("node", node="n1"))
    running = knm.runner.running[task_id]
    # As if this worker had stalled past its lease and another had taken the task over.
    await pool.execute("UPDATE tasks SET worker_id = 'another-worker' WHERE task_id = $1", task_id)

    async def stopped() -> bool:
        return task_id not in knm.runner.running

    await eventually(stopped, deadline=10 * knm.config.lease_seconds)
    assert running.ctx.cancel_reason == LEASE_LOST
    row = await pool.fetchrow("SELECT status, worker_id FROM tasks WHERE task_id = $1", task_id)
    assert (row["status"], row["worker_id"]) == ("running", "another-worker")
    assert "complete" not in [e.type for e in await read_events(pool, task_id)]
    # The task's node locks are the new owner's: still held by the task.
    held = await pool.fetch("SELECT node FROM k8s_node_locks WHERE holder = $1", task_id)
    assert sorted(r["node"] for r in held) == ["n1", "n2"]
    async with pool.acquire() as conn:
        assert await store.finish(conn, task_id, worker_id="another-worker") is not None


async def test_only_the_worker_holding_a_task_writes_its_end(pool: asyncpg.Pool) -> None:
    task_id = await _running_task(pool, "worker-b", 3600)
    async with pool.acquire() as conn:
        assert await store.finish(conn, task_id, worker_id="worker-a", error="late") is None
        final = await store.finish(conn, task_id, worker_id="worker-b")
    assert final is not None and final.status == "completed"


async def test_only_the_worker_holding_a_task_writes_its_result(pool: asyncpg.Pool) -> None:
    task_id = await _running_task(pool, "worker-b", 3600)
    assert await store.set_result(pool, task_id, {"steps": ["late"]}, "worker-a") is False
    assert await store.set_result(pool, task_id, {"steps": ["held"]}, "worker-b") is True
    stored = await pool.fetchval("SELECT result FROM tasks WHERE task_id = $1", task_id)
    assert stored == {"steps": ["held"]}


async def test_a_reaper_leaves_a_task_whose_worker_renewed_its_lease_since_it_was_read(
    pool: asyncpg.Pool,
) -> None:
    task_id = await _running_task(pool, "worker-b", -1)
    async with pool.acquire() as conn:
        assert task_id in [t.task_id for t in await store.expired(conn, limit=1000)]
        assert await store.renew(conn, "worker-b", 60, [task_id]) == {task_id: False}
        assert await store.finish(conn, task_id, worker_id="worker-b", expired=True) is None
        row = await conn.fetchrow("SELECT status FROM tasks WHERE task_id = $1", task_id)
        assert row["status"] == "running"
        await conn.execute(
            "UPDATE tasks SET lease_until = now() - interval '1 second' WHERE task_id = $1", task_id
        )
        final = await store.finish(
            conn, task_id, worker_id="worker-b", expired=True, error="worker lost"
        )
    assert final is not None and final.status == "failed"
