"""A workflow whose worker dies is taken over: lost steps fail, finalizers still run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import SHORT_LEASE, KnmProcess
from knm.testing.tasks import event_of, wait_for_event_sync, wait_for_task_sync

PLUGIN = "knm.testing.executor:TestExecutorPlugin"


@pytest.mark.timeout(240)
def test_a_killed_worker_mid_workflow_hands_over_to_another_that_runs_the_finalizer(
    tmp_path: Path, knm_database_url: str
) -> None:
    # Short leases: the killed worker's run out soon, and the rescuer reaps soon after.
    env = {"KNM_PLUGINS": PLUGIN, **SHORT_LEASE}
    api = KnmProcess(tmp_path / "api", knm_database_url, ["serve", "--no-runner"], env)
    worker = KnmProcess(tmp_path / "w1", knm_database_url, ["worker"], env)
    procs = [api, worker]
    try:
        api.start()
        worker.start()
        token = httpx.post(
            f"{api.api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {token['data']['token']}"}
        httpx.post(
            f"{api.api}/clusters",
            headers=headers,
            json={
                "name": "lab",
                "kind": "static",
                "nodes": [
                    {"name": "n1", "address": "127.0.0.2"},
                    {"name": "n2", "address": "127.0.0.3"},
                ],
            },
        ).raise_for_status()
        created = httpx.post(
            f"{api.api}/automation/workflows",
            headers=headers,
            json={
                "name": "maintenance",
                "definition": {
                    "steps": [
                        {"id": "long", "type": "test", "hang_nodes": ["n1", "n2"]},
                        {
                            "id": "finalizer",
                            "type": "test",
                            "depends_on": ["long"],
                            "when": "always",
                            "echo": "done",
                        },
                    ]
                },
            },
        )
        assert created.status_code == 201, created.text
        started = httpx.post(
            f"{api.api}/automation/workflows/execute",
            headers=headers,
            json={
                "workflow_id": created.json()["data"]["id"],
                "cluster_name": "lab",
                "target_nodes": ["n1", "n2"],
            },
        ).json()["data"]
        task_id = started["task_id"]

        # Killed the moment the step is announced running with its child task: the engine
        # stores a step's state before it announces it, so the rescuer finds it running (and
        # fails it), never pending as if it had not started.
        running = event_of("step", step_id="long", status="running")
        wait_for_event_sync(
            api.api, task_id, lambda e: running(e) and "task_id" in (e.data or {}), headers
        )
        worker.kill()
        rescuer = KnmProcess(tmp_path / "w2", knm_database_url, ["worker"], env)
        procs.append(rescuer)
        rescuer.start()
        final = wait_for_task_sync(api.api, task_id, headers, deadline=120)
        steps = {s["id"]: s for s in final["steps"]}
        assert final["status"] == "failed"
        assert steps["long"]["status"] == "failed" and steps["long"]["error"] == "worker lost"
        assert steps["finalizer"]["status"] == "completed"
        assert {r["reason"] for r in final["results"]} == {"worker_lost"}
    finally:
        for proc in procs:
            proc.stop()
