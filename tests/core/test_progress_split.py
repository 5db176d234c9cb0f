"""The progress stream across processes at full rate: a ``knm worker`` writes the events, this
``knm serve --no-runner`` fans them out, and every subscriber sees exactly the event log.

Subscribers join at the task's start and while it produces, with ``since`` 0, so each one's
replay from the log races the live stream (issue #16: a live event queued during the replay
made the replay's older events look like duplicates, and they were silently skipped).
``KNM_PROGRESS_SPLIT_RUNS`` repeats the run more often (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import websockets

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("KNM_PROGRESS_SPLIT_RUNS", "5"))
AT_START, DURING = 4, 8
DELAY, SECONDS = 0.3, 1.2


class Message(msgspec.Struct):
    task_id: str
    type: str
    seq: int


def bench_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {
        "PYTHONPATH": pythonpath,
        "KNM_PLUGINS": "bench.common:BenchPlugin",
        "KNM_LOAD_ENTRYPOINTS": "false",
        "KNM_LOG_LEVEL": "WARNING",
        "KNM_LEASE_SECONDS": "30",
        "KNM_OUTPUT_CAP": str(1 << 30),
    }


def wait_for_log(proc: KnmProcess, text: str, deadline: float = 60) -> None:
    import time

    end = time.monotonic() + deadline
    while text not in proc.log():
        assert proc.proc is not None and proc.proc.poll() is None, proc.log()
        assert time.monotonic() < end, proc.log()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Any:
    base = tmp_path_factory.mktemp("split")
    api = KnmProcess(base / "api", knm_database_url, ["serve", "--no-runner"], bench_env())
    worker = KnmProcess(base / "worker", knm_database_url, ["worker"], bench_env())
    api.start()
    try:
        worker.start()
        wait_for_log(worker, "running tasks")
        token = httpx.post(
            f"{api.api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
        ).json()["data"]["token"]
        yield api, token
    finally:
        worker.stop()
        api.stop()


async def follow(url: str, task_id: str, wait: float) -> list[Message]:
    """Subscribes after ``wait`` seconds with ``since`` 0 and collects up to ``complete``."""
    decoder = msgspec.json.Decoder(Message)
    seen: list[Message] = []
    async with websockets.connect(url, max_size=None, compression=None) as socket:
        await asyncio.sleep(wait)
        await socket.send(msgspec.json.encode({"action": "subscribe", "task_id": task_id}).decode())
        # A lost ``complete`` shows as a subscriber that stops short, not as a hung test.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while not seen or seen[-1].type != "complete":
                    message = decoder.decode(await socket.recv())
                    if message.task_id == task_id:
                        seen.append(message)
    return seen


async def one_run(api: KnmProcess, token: str, database_url: str) -> list[str]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{api.api}/automation/bench/execute",
            json={
                "cluster_name": "bench",
                "target_nodes": ["n1"],
                "delay": DELAY,
                "seconds": SECONDS,
                "rate": 0,
                "progress_every": 1000,
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    task_id = response.json()["data"]["task_id"]
    url = f"ws://127.0.0.1:{api.port}/api/v1/progress/ws?token={token}"
    # Some join at once (while the task starts), the others spread over the production.
    waits = [0.0] * AT_START + [DELAY + SECONDS * i / DURING for i in range(DURING)]
    results = await asyncio.gather(*(follow(url, task_id, wait) for wait in waits))
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT seq FROM task_events WHERE task_id = $1 ORDER BY seq", task_id
        )
    finally:
        await conn.close()
    logged = [r["seq"] for r in rows]
    problems = []
    for index, seen in enumerate(results):
        seqs = [m.seq for m in seen]
        if seqs != logged:
            missing = sorted(set(logged) - set(seqs))
            problems.append(
                f"subscriber {index} (joined at {waits[index]:.2f} s): {len(seqs)} of "
                f"{len(logged)} events, missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
                f"last {seen[-1].type if seen else None}"
            )
    return problems


@pytest.mark.timeout(60 + 20 * RUNS)
async def test_every_subscriber_sees_the_event_log_across_processes_at_full_rate(
    split: Any, knm_database_url: str
) -> None:
    api, token = split
    failed = []
    for run in range(RUNS):
        problems = await one_run(api, token, knm_database_url)
        if problems:
            failed.append(f"run {run + 1}: " + "; ".join(problems[:3]))
    assert not failed, f"{len(failed)} of {RUNS} runs lost events:\n" + "\n".join(failed)
