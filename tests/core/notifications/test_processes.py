"""Real ``knm worker`` processes: one killed mid-delivery, another sends it again after the
lease, with the same idempotency key and a valid signature."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from knm.core.crypto import Keyring
from knm.core.notifications import emit, outbox, store
from knm.testing.database import TEST_SECRET
from knm.testing.process import KnmProcess
from knm.testing.receivers import WebhookReceiver

HOOK_SECRET = "process-hook-secret-8c1"
ENV = {
    "KNM_NOTIFY_TIMEOUT": "3",
    "KNM_NOTIFY_LEASE": "10",
    "KNM_NOTIFY_POLL": "0.2",
    "KNM_NOTIFY_BACKOFF_BASE": "0.1",
    "KNM_NOTIFY_BACKOFF_CAP": "0.5",
}


async def until(
    predicate: Callable[[], Awaitable[bool]], what: str, deadline: float = 60.0
) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {deadline} s")


async def running(proc: KnmProcess) -> bool:
    if proc.proc is not None and proc.proc.poll() is not None:
        raise AssertionError(f"the worker exited:\n{proc.log()}")
    return "running tasks" in proc.log()


@pytest.mark.timeout(240)
async def test_a_worker_killed_mid_delivery_leaves_it_to_another_process_with_the_same_key(
    tmp_path: Path, pool: asyncpg.Pool, knm_fresh_database_url: str
) -> None:
    with WebhookReceiver(secret=HOOK_SECRET, plan=["hang"]) as hook:
        doomed = KnmProcess(tmp_path / "doomed", knm_fresh_database_url, ["worker"], ENV)
        heir = KnmProcess(tmp_path / "heir", knm_fresh_database_url, ["worker"], ENV)
        try:
            doomed.start()
            await until(lambda: running(doomed), "the first worker starting")
            async with pool.acquire() as conn:
                sub = await store.insert(
                    conn,
                    Keyring(TEST_SECRET),
                    name="ops",
                    owner_id=None,
                    owner="admin",
                    events=["roll.paused"],
                    kinds=[],
                    clusters=[],
                    statuses=[],
                    target_type="webhook",
                    target={"url": hook.url},
                    secret=HOOK_SECRET,
                    enabled=True,
                )
                async with conn.transaction():
                    await emit(conn, "roll.paused", {"task_id": "wf-1"}, cluster="lab")

            async def sent() -> bool:
                return bool(hook.snapshot())

            await until(sent, "the first worker sending")
            doomed.kill()
            row = await pool.fetchrow("SELECT state, claimed_by FROM notification_outbox")
            assert row["state"] == "pending" and row["claimed_by"]

            heir.start()

            async def settled() -> bool:
                state = await pool.fetchval("SELECT state FROM notification_outbox")
                return state != "pending"

            await until(settled, "the second worker delivering")
        finally:
            doomed.kill()
            heir.stop()
        _, [delivery] = await outbox.list_deliveries(pool, sub.id, state=None, limit=10, offset=0)
    assert delivery.state == "delivered"
    seen = hook.snapshot()
    assert len(seen) >= 2
    assert {s.headers["idempotency-key"] for s in seen} == {delivery.idempotency_key}
    assert all(s.signature_ok for s in seen)
    assert seen[-1].answered == 200
    assert delivery.attempt_log[-1].ok
    workers = {w for (w,) in await pool.fetch("SELECT worker_id FROM notification_attempts")}
    assert row["claimed_by"] not in workers
