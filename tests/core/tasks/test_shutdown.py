"""SIGTERM: stop claiming, let running tasks finish within the grace period, then cancel them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.tasks import event_of, wait_for_event_sync

PLUGIN = "knm.testing.executor:TestExecutorPlugin"
RUNNING = event_of("node", status="running")


@pytest.mark.timeout(180)
def test_a_task_outliving_the_grace_period_ends_cancelled_by_shutdown(
    tmp_path: Path, knm_database_url: str
) -> None:
    proc = KnmProcess(
        tmp_path / "knm",
        knm_database_url,
        ["serve"],
        # A grace a 0.3 s task ends well within however loaded the machine, and a hanging one
        # outlives.
        {"KNM_PLUGINS": PLUGIN, "KNM_SHUTDOWN_GRACE": "5"},
    )
    proc.start()
    login = httpx.post(
        f"{proc.api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['data']['token']}"}
    quick = httpx.post(
        f"{proc.api}/automation/test/execute",
        json={"cluster_name": "lab", "target_nodes": ["n1"], "sleep": 0.3},
        headers=headers,
    ).json()["data"]
    slow = httpx.post(
        f"{proc.api}/automation/test/execute",
        json={"cluster_name": "lab", "target_nodes": ["n1"], "hang_nodes": ["n1"]},
        headers=headers,
    ).json()["data"]
    assert slow["status"] == "running"
    # Both running on their node before SIGTERM (a task still pending is not this test's case).
    for task in (quick, slow):
        wait_for_event_sync(proc.api, task["task_id"], RUNNING, headers)
    assert proc.stop() == 0

    async def statuses() -> dict[str, asyncpg.Record]:
        conn = await asyncpg.connect(knm_database_url)
        try:
            rows = await conn.fetch(
                "SELECT task_id, status, message FROM tasks WHERE task_id = ANY($1)",
                [quick["task_id"], slow["task_id"]],
            )
            return {r["task_id"]: r for r in rows}
        finally:
            await conn.close()

    rows = asyncio.run(statuses())
    assert rows[quick["task_id"]]["status"] == "completed"
    assert rows[slow["task_id"]]["status"] == "cancelled"
    assert rows[slow["task_id"]]["message"] == "shutdown"
