"""Cross-process announcements: Litestar's stock asyncpg channels backend beside knm's NOTIFY.

The issue asked to measure Litestar's ``AsyncPgChannelsBackend`` before using it for the
progress stream across processes: it opens a new PostgreSQL connection for every ``publish``.
knm does not use it; its event writer announces with ``pg_notify`` over a pooled connection, all
the tasks of one 50 ms batch in one statement (``knm.core.tasks.events``), and each process
listens on one connection (``knm.core.progress``). This benchmark puts the three side by side on
one throwaway PostgreSQL:

- ``litestar``: ``AsyncPgChannelsBackend.publish`` (a connection per publish), received through
  the backend's own ``subscribe``/``stream_events``;
- ``knm pooled``: one ``SELECT pg_notify($1, $2)`` per announcement over a pool (the same
  pool knm's processes use, ``knm.core.db.connect``), received by a LISTEN connection;
- ``knm batched``: what knm sends: one statement announcing ``--batch`` tasks at a time
  (``pg_notify`` over ``unnest``).

``--concurrency`` publishers send announcements (``<id>:<send time>``, the size of knm's
``task_id:seq`` pointers) for ``--seconds`` per mode, at most ``--max`` each. Every announcement
must arrive (checked; a loss exits 1). Prints announcements per second, the publish call's
latency and the send→receive latency (p50/p99), and the rate's ratio to the stock backend's.

The embedded PostgreSQL is reached over a Unix socket with trust authentication: the cheapest
connection there is. Over TCP with SCRAM authentication every one of the stock backend's
publishes also pays the password exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from litestar.channels.backends.asyncpg import AsyncPgChannelsBackend

from bench.common import load_average, machine, percentile, say, table, throwaway_database
from knm.core.db import connect

CHANNEL = "knm_bench_channels"
DRAIN_SECONDS = 10.0


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.publish_ms: list[float] = []
        self.deliver_ms: list[float] = []
        self.received = 0
        self.elapsed = 0.0
        self.all_received = asyncio.Event()

    def receive(self, payload: str) -> None:
        sent_at = float(payload.rsplit(":", 1)[1])
        self.deliver_ms.append((time.perf_counter() - sent_at) * 1000)
        self.received += 1


Publish = Callable[[list[str]], Awaitable[None]]


async def _drive(publish: Publish, tally: Tally, args: argparse.Namespace, batch: int) -> None:
    """``concurrency`` publishers, each sending until the time or its count runs out."""
    end = time.perf_counter() + args.seconds

    async def publisher(index: int) -> None:
        for n in range(args.max):
            if time.perf_counter() >= end:
                return
            now = time.perf_counter()
            payloads = [f"task-{index}-{n}-{k}:{now}" for k in range(batch)]
            await publish(payloads)
            tally.publish_ms.append((time.perf_counter() - now) * 1000)
            tally.sent += batch

    began = time.perf_counter()
    await asyncio.gather(*(publisher(i) for i in range(args.concurrency)))
    tally.elapsed = time.perf_counter() - began
    deadline = time.perf_counter() + DRAIN_SECONDS
    while tally.received < tally.sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)


async def _litestar(url: str, args: argparse.Namespace) -> Tally:
    tally = Tally()
    backend = AsyncPgChannelsBackend(dsn=url)
    await backend.on_startup()
    try:
        await backend.subscribe([CHANNEL])

        async def consume() -> None:
            async for _, message in backend.stream_events():
                tally.receive(message.decode())

        consumer = asyncio.ensure_future(consume())

        async def publish(payloads: list[str]) -> None:
            await backend.publish(payloads[0].encode(), [CHANNEL])

        try:
            await _drive(publish, tally, args, batch=1)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    finally:
        await backend.on_shutdown()
    return tally


async def _knm(url: str, args: argparse.Namespace, batch: int) -> Tally:
    tally = Tally()
    pool = await connect(url)
    listener = await asyncpg.connect(url)
    try:
        await listener.add_listener(CHANNEL, lambda *a: tally.receive(a[3]))
        if batch == 1:

            async def publish(payloads: list[str]) -> None:
                await pool.execute("SELECT pg_notify($1, $2)", CHANNEL, payloads[0])
        else:

            async def publish(payloads: list[str]) -> None:
                await pool.execute(
                    "SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x", CHANNEL, payloads
                )

        await _drive(publish, tally, args, batch=batch)
    finally:
        await listener.close()
        await pool.close()
    return tally


async def _measure(url: str, args: argparse.Namespace) -> list[tuple[str, Tally]]:
    results = []
    for name, run in (
        ("litestar (connection per publish)", lambda: _litestar(url, args)),
        ("knm pooled (one per statement)", lambda: _knm(url, args, 1)),
        (f"knm batched ({args.batch} per statement)", lambda: _knm(url, args, args.batch)),
    ):
        say(f"{name}: {args.seconds:g} s, {args.concurrency} publishers")
        tally = await run()
        say(f"  sent {tally.sent:,}, received {tally.received:,} in {tally.elapsed:.2f} s")
        results.append((name, tally))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per mode")
    parser.add_argument("--concurrency", type=int, default=10, help="publishers at once")
    parser.add_argument("--batch", type=int, default=100, help="announcements per statement")
    parser.add_argument("--max", type=int, default=1_000_000, help="publishes per publisher")
    parser.add_argument("--smoke", action="store_true", help="1 s per mode, 2 publishers")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.concurrency, args.batch = 1.0, 2, 10
    say(machine())
    with (
        tempfile.TemporaryDirectory(prefix="knm-bench-channels-") as tmp,
        throwaway_database(Path(tmp)) as url,
    ):
        results = asyncio.run(_measure(url, args))
    stock = results[0][1]
    stock_rate = stock.sent / stock.elapsed if stock.elapsed else 0.0
    rows = []
    lost = False
    for name, tally in results:
        rate = tally.sent / tally.elapsed if tally.elapsed else 0.0
        lost = lost or tally.received != tally.sent
        rows.append([
            name, tally.sent, rate,
            percentile(tally.publish_ms, 50), percentile(tally.publish_ms, 99),
            percentile(tally.deliver_ms, 50), percentile(tally.deliver_ms, 99),
            f"{rate / stock_rate:.1f}" if stock_rate else "-",
            "yes" if tally.received == tally.sent else f"LOSS ({tally.received:,})",
        ])  # fmt: skip
    headers = [
        "publisher", "announcements", "per s", "publish p50 ms", "publish p99 ms",
        "deliver p50 ms", "deliver p99 ms", "× litestar", "all received",
    ]  # fmt: skip
    print(table(headers, rows))
    say(load_average())
    if lost:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
