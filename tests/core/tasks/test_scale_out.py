"""Several processes on one database: API replicas, workers, lost workers, exactly-once runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import SHORT_LEASE, KnmProcess
from knm.testing.tasks import event_of, is_complete, wait_for_event_sync, wait_for_task_sync

PLUGIN = "knm.testing.executor:TestExecutorPlugin"
RECOVERABLE = "knm.testing.executor:RecoverableTestExecutorPlugin"
RUNNING = event_of("progress", status="running")


def login(proc: KnmProcess) -> dict[str, str]:
    response = httpx.post(
        f"{proc.api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['data']['token']}"}


def start(proc: KnmProcess, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"cluster_name": "lab", "target_nodes": ["n1", "n2"], **body}
    response = httpx.post(
        f"{proc.api}/automation/test/execute", json=payload, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait(
    proc: KnmProcess, headers: dict[str, str], task_id: str, deadline: float = 60
) -> dict[str, Any]:
    return wait_for_task_sync(proc.api, task_id, headers, deadline)


def processes(
    tmp_path: Path, url: str, plugin: str = PLUGIN, workers: int = 1, **env: str
) -> tuple[list[KnmProcess], list[KnmProcess]]:
    """Two API processes (no runner) and ``workers`` workers; ``env`` adds settings (a
    ``SHORT_LEASE`` for processes a test kills to see their lease run out)."""
    env = {"KNM_PLUGINS": plugin, **env}
    apis = [KnmProcess(tmp_path / f"api{i}", url, ["serve", "--no-runner"], env) for i in range(2)]
    crew = [KnmProcess(tmp_path / f"worker{i}", url, ["worker"], env) for i in range(workers)]
    for proc in [*apis, *crew]:
        proc.start()
    return apis, crew


def stop_all(*groups: list[KnmProcess]) -> None:
    for group in groups:
        for proc in group:
            proc.stop()


@pytest.mark.timeout(240)
def test_a_task_started_on_one_api_runs_on_a_worker_and_streams_to_another_api(
    tmp_path: Path, knm_database_url: str
) -> None:
    apis, crew = processes(tmp_path, knm_database_url)
    try:
        first, second = apis
        headers = login(first)

        async def watch() -> list[dict[str, Any]]:
            token = headers["Authorization"][7:]
            async with websockets.connect(
                f"ws://127.0.0.1:{second.port}/api/v1/progress/ws?token={token}"
            ) as socket:
                task = await asyncio.to_thread(start, first, headers, sleep=1.0, events=5, echo="x")
                await socket.send(
                    json.dumps({"action": "subscribe", "task_id": task["task_id"], "since": 0})
                )
                seen = []
                async with asyncio.timeout(60):
                    while True:
                        message = json.loads(await socket.recv())
                        seen.append(message)
                        if message["type"] == "complete":
                            return seen

        messages = asyncio.run(watch())
        assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
        assert messages[-1]["data"]["status"] == "completed"

        hanging = start(first, headers, hang_nodes=["n1", "n2"])
        wait_for_event_sync(second.api, hanging["task_id"], RUNNING, headers)
        cancel = httpx.post(
            f"{second.api}/automation/test/cancel/{hanging['task_id']}", headers=headers
        )
        assert cancel.status_code == 200
        assert wait(first, headers, hanging["task_id"])["status"] == "cancelled"
    finally:
        stop_all(apis, crew)


@pytest.mark.timeout(240)
def test_a_killed_worker_loses_its_task_which_fails_as_worker_lost(
    tmp_path: Path, knm_database_url: str
) -> None:
    apis, crew = processes(tmp_path, knm_database_url, **SHORT_LEASE)
    try:
        headers = login(apis[0])
        task = start(apis[0], headers, hang_nodes=["n2"])
        wait_for_event_sync(apis[0].api, task["task_id"], RUNNING, headers)
        crew[0].kill()
        status = wait(apis[1], headers, task["task_id"])
        assert status["status"] == "failed" and status["error"] == "worker lost"
        assert {r["reason"] for r in status["results"] if r["node"] == "n2"} == {"worker_lost"}
        assert status["success_count"] + status["failed_count"] == 2
    finally:
        stop_all(apis, crew)


@pytest.mark.timeout(240)
def test_a_recoverable_task_is_taken_over_by_another_worker(
    tmp_path: Path, knm_database_url: str
) -> None:
    apis, crew = processes(tmp_path, knm_database_url, RECOVERABLE, workers=1, **SHORT_LEASE)
    try:
        headers = login(apis[0])
        task = start(apis[0], headers, hang_nodes=["n1", "n2"])
        wait_for_event_sync(apis[0].api, task["task_id"], RUNNING, headers)
        crew[0].kill()
        rescuer = KnmProcess(
            tmp_path / "rescuer",
            knm_database_url,
            ["worker"],
            {"KNM_PLUGINS": RECOVERABLE, **SHORT_LEASE},
        )
        rescuer.start()
        crew.append(rescuer)
        status = wait(apis[0], headers, task["task_id"])
        assert status["status"] == "failed"
        assert status["error"] is None
        assert {r["message"] for r in status["results"]} == {"recovered: worker lost"}
    finally:
        stop_all(apis, crew)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_five_hundred_tasks_on_three_workers_each_run_exactly_once(
    tmp_path: Path, knm_database_url: str
) -> None:
    apis, crew = processes(tmp_path, knm_database_url, workers=3)
    try:
        headers = login(apis[0])
        ids = []
        # A connection per request: the server closes one idle for 5 s (uvicorn's keep-alive),
        # and under load a request to the other API took that long, so the next POST went out
        # on a connection being closed ("Server disconnected without sending a response").
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=30, limits=fresh) as client:
            for i in range(500):
                response = client.post(
                    f"{apis[i % 2].api}/automation/test/execute",
                    json={"cluster_name": "lab", "target_nodes": ["n1"]},
                    headers=headers,
                )
                assert response.status_code == 200, response.text
                ids.append(response.json()["data"]["task_id"])

        for task_id in ids:
            wait_for_event_sync(apis[1].api, task_id, is_complete, headers, deadline=180)

        async def check() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(knm_database_url)
            try:
                return await conn.fetch(
                    """SELECT t.task_id, t.status, t.worker_id,
                              (SELECT count(*) FROM task_events e
                               WHERE e.task_id = t.task_id AND e.message = 'started') AS starts
                       FROM tasks t WHERE task_id = ANY($1)""",
                    ids,
                )
            finally:
                await conn.close()

        rows = asyncio.run(check())
        assert len(rows) == 500
        assert {r["status"] for r in rows} == {"completed"}
        assert {r["starts"] for r in rows} == {1}
        # Each ran once, on a worker; how they spread over the three depends on the machine's
        # load, so it is not asserted.
        assert all(r["worker_id"] for r in rows)
    finally:
        stop_all(apis, crew)
