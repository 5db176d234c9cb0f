"""Notifications delivered from several ``knm worker`` processes to a local webhook receiver at
a steady rate, one worker killed (SIGKILL) halfway: nothing may be lost.

Events are emitted from this process (``knm.core.notifications.emit``, one transaction per
10 ms tick) into one webhook subscription; the workers claim and send them. The receiver (a
threaded HTTP server on loopback that checks each signature) notes when each arrives; each
event carries its emission time, so *latency* is emission → first arrival. A killed worker's
claimed deliveries are sent again by the others once its lease (``--lease`` s) runs out, with
the same idempotency key: those show as *resent* and in the latency's tail. Exit 1 on any loss
or bad signature.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    machine,
    percentile,
    process_env,
    say,
    start_knm,
    stop_all,
    table,
    throwaway_database,
)
from knm.core import db
from knm.core.crypto import Keyring
from knm.core.notifications import emit, store
from knm.testing.database import TEST_SECRET
from knm.testing.process import KnmProcess
from knm.testing.receivers import WebhookReceiver

SECRET = "bench-hook-secret"


async def emit_at(url: str, rate: int, seconds: float, kill: KnmProcess | None) -> int:
    """Emit ``rate`` events a second for ``seconds``; kill ``kill`` halfway. How many."""
    pool = await db.connect(url, min_size=1, max_size=2)
    sent = 0
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            if due > sent:
                async with pool.acquire() as conn, conn.transaction():
                    for n in range(sent, due):
                        await emit(conn, "roll.paused", {"n": n, "t": time.time()})
                sent = due
            if kill is not None and elapsed >= seconds / 2:
                kill.kill()
                say(f"killed one worker after {sent} events")
                kill = None
            await asyncio.sleep(0.01)
    finally:
        await pool.close()
    return sent


async def subscribe(url: str, hook_url: str) -> None:
    pool = await db.connect(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await store.insert(
                conn,
                Keyring(TEST_SECRET),
                name="bench",
                owner_id=None,
                owner="admin",
                events=["roll.paused"],
                kinds=[],
                clusters=[],
                statuses=[],
                target_type="webhook",
                target={"url": hook_url},
                secret=SECRET,
                enabled=True,
            )
    finally:
        await pool.close()


async def pending(url: str) -> int:
    pool = await db.connect(url, min_size=1, max_size=1)
    try:
        return await pool.fetchval(
            "SELECT count(*) FROM notification_outbox WHERE state = 'pending'"
        )
    finally:
        await pool.close()


def run(args: argparse.Namespace, workdir: Path) -> int:
    env = process_env(
        [],
        KNM_NOTIFY_LEASE=str(args.lease),
        KNM_NOTIFY_TIMEOUT=str(max(1.0, (args.lease - 1) / 3)),
        KNM_NOTIFY_POLL="0.5",
    )
    with throwaway_database(workdir) as url, WebhookReceiver(secret=SECRET) as hook:
        asyncio.run(subscribe(url, hook.url))
        workers: list[KnmProcess] = []
        try:
            for i in range(args.processes):
                workers.append(start_knm(workdir / f"worker{i}", url, ["worker"], env))
            say(f"{args.processes} workers up; emitting {args.rate}/s for {args.seconds} s")
            victim = workers[0] if args.processes > 1 else None
            emitted = asyncio.run(emit_at(url, args.rate, args.seconds, victim))
            end = time.monotonic() + args.lease * 3 + 60
            while asyncio.run(pending(url)) and time.monotonic() < end:
                time.sleep(0.5)
        finally:
            stop_all(workers)
        seen = hook.snapshot()
    first: dict[int, float] = {}
    bad = 0
    for received in seen:
        body = received.json()["data"]
        bad += not received.signature_ok
        if body["n"] not in first:
            first[body["n"]] = received.at - body["t"]
    lost = emitted - len(first)
    latencies = list(first.values())
    rows = [
        [
            args.processes,
            args.rate,
            args.seconds,
            emitted,
            len(first),
            lost,
            len(seen) - len(first),
            bad,
            f"{percentile(latencies, 50):.3f}" if latencies else "-",
            f"{percentile(latencies, 99):.3f}" if latencies else "-",
            f"{max(latencies):.3f}" if latencies else "-",
            "yes" if args.processes > 1 else "no",
        ]
    ]
    say(machine())
    print(
        table(
            [
                "processes",
                "rate/s",
                "seconds",
                "emitted",
                "delivered",
                "lost",
                "resent",
                "bad signatures",
                "p50 s",
                "p99 s",
                "max s",
                "one killed",
            ],
            rows,
        )
    )
    if lost or bad:
        print("LOSS" if lost else "BAD SIGNATURE", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--rate", type=int, default=500, help="events a second")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--lease", type=float, default=10, help="KNM_NOTIFY_LEASE of the workers")
    parser.add_argument("--smoke", action="store_true", help="2 workers, 50/s for 6 s")
    args = parser.parse_args(argv)
    if args.smoke:
        args.processes, args.rate, args.seconds, args.lease = 2, 50, 6.0, 5.0
    with tempfile.TemporaryDirectory(prefix="knm-bench-notify-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
