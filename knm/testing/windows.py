"""A roll stopped at a maintenance window's end, as the SDK's and the CLI's tests need one:
a failed workflow task and its automatic resume, pending (due in a day, so no process starts
it while a test looks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


async def stop_roll(pool: Any, task_id: str, cluster_name: str, windows: list[str]) -> str:
    await pool.execute(
        """INSERT INTO tasks (task_id, kind, status, cluster_name, end_time)
           VALUES ($1, 'workflow', 'failed', $2, now())""",
        task_id,
        cluster_name,
    )
    await pool.execute(
        "INSERT INTO window_resumes (task_id, windows, due_at) VALUES ($1, $2, $3)",
        task_id,
        windows,
        datetime.now(UTC) + timedelta(days=1),
    )
    return task_id
