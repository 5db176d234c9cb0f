"""Shared pieces of knm's benchmarks: a throwaway migrated database, real knm processes, a
login, a bench-only executor, and the arithmetic and tables every benchmark prints.

The executor is loaded into knm processes with ``KNM_PLUGINS=bench.common:BenchPlugin``; the
processes get the repository root on ``PYTHONPATH`` so that this module is importable there.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from knm.core.features import ExecutorSettings, FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.core.tasks import ExecRequest, Executor, NodeResult, Prepared, TargetNode, TaskContext
from knm.testing.database import (
    TEST_ADMIN_PASSWORD,
    TEST_DATABASE_ENV,
    create_template,
    drop_database,
    server_for_tests,
    with_database,
)
from knm.testing.process import KnmProcess
from knm.wire import TERMINAL

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_PLUGIN = "bench.common:BenchPlugin"
TEST_PLUGIN = "knm.testing.executor:TestExecutorPlugin"


# --- the bench executor ---------------------------------------------------------------------


class BenchRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    #: Seconds to wait before producing, so subscribers are in place first.
    delay: float = 1.0
    #: Seconds to produce for.
    seconds: float = 5.0
    #: Logical events per second; 0 produces as fast as the process can.
    rate: int = 0
    #: Stop after this many events even if time is left.
    max_events: int = 10_000_000
    #: Events produced between two yields to the event loop when not paced.
    tick: int = 100
    #: Every this many output lines, one progress event instead (0: output only).
    progress_every: int = 0


class BenchSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    timeout: int = 3600
    max_concurrent: int = 10


class BenchExecutor(Executor):
    """Produces logical events: output lines ``"<n> <time.time()>\\n"`` on the first node,
    and optionally progress events carrying ``{"n", "t"}``, numbered by one counter ``n``."""

    kind = "bench"
    route = "bench"
    feature = "bench"
    request_type = BenchRequest
    requires_credential = False
    node_output_in_status = False
    max_tasks = 10

    async def prepare(self, knm: Any, request: BenchRequest, principal: Any) -> Prepared:
        nodes = [TargetNode(name=name, address="127.0.0.1") for name in request.target_nodes]
        return Prepared(nodes=nodes, summary={})

    async def run(self, ctx: TaskContext) -> None:
        request: BenchRequest = ctx.request
        first = ctx.nodes[0].name

        async def work(node: TargetNode) -> NodeResult:
            if node.name != first:
                return NodeResult.success("idle")
            await asyncio.sleep(request.delay)
            counts = await produce(ctx, node.name, request)
            await ctx.save_result(**counts)
            return NodeResult.success("produced")

        await ctx.fan_out(work)


async def produce(ctx: TaskContext, node: str, request: BenchRequest) -> dict[str, Any]:
    lines = progress = 0
    every = request.progress_every
    started_wall = time.time()
    start = time.monotonic()
    end = start + request.seconds
    n = 0
    while n < request.max_events and not ctx.cancelled.is_set():
        now = time.monotonic()
        if now >= end:
            break
        if request.rate:
            due = min(int(request.rate * (now - start)) + 1 - n, request.tick * 10)
        else:
            due = request.tick
        for _ in range(max(0, min(due, request.max_events - n))):
            if every and n % (every + 1) == every:
                await ctx.progress(100 * (now - start) / request.seconds, "", n=n, t=time.time())
                progress += 1
            else:
                ctx.output(node, "stdout", f"{n} {time.time():.6f}\n")
                lines += 1
            n += 1
        await asyncio.sleep(0.001 if request.rate else 0)
    return {
        "events": n,
        "lines": lines,
        "progress_events": progress,
        "produce_start": started_wall,
        "produce_end": time.time(),
    }


class BenchPlugin:
    def __init__(self) -> None:
        self.executor = BenchExecutor()

    @hookimpl
    def knm_executors(self) -> list[Executor]:
        return [self.executor]

    @hookimpl
    def knm_features(self) -> list[FeatureSpec]:
        return [FeatureSpec("bench", BenchSettings, description="the benchmark executor")]


# --- database and processes -----------------------------------------------------------------


@contextmanager
def throwaway_database(workdir: Path) -> Iterator[str]:
    """A migrated database (admin user included) on a PostgreSQL started for this run — or on
    ``KNM_TEST_DATABASE_URL`` when set — gone afterwards."""
    # The run's own directory (mkdtemp makes it 0700): the database's OS user, as root, must
    # pass through it to its data dir.
    workdir.chmod(0o711)
    with server_for_tests(workdir / "postgres") as server_url:
        name = asyncio.run(create_template(server_url))
        try:
            yield with_database(server_url, name)
        finally:
            if os.environ.get(TEST_DATABASE_ENV):
                asyncio.run(drop_database(server_url, name))


def process_env(plugins: Sequence[str], **extra: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {
        "PYTHONPATH": pythonpath,
        "KNM_PLUGINS": ",".join(plugins),
        "KNM_LOG_LEVEL": "WARNING",
        # A loaded event loop must not lose its tasks to the reaper of the 2 s test lease.
        "KNM_LEASE_SECONDS": "30",
        "KNM_LOAD_ENTRYPOINTS": "false",
        **extra,
    }


def start_knm(workdir: Path, database_url: str, args: list[str], env: dict[str, str]) -> KnmProcess:
    proc = KnmProcess(workdir, database_url, args, env)
    proc.start()
    if args[0] == "worker":
        wait_for_log(proc, "running tasks")
    return proc


def wait_for_log(proc: KnmProcess, text: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if text in proc.log():
            return
        if proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"knm exited with {proc.proc.returncode}:\n{proc.log()}")
        time.sleep(0.1)
    raise RuntimeError(f"knm never logged {text!r}:\n{proc.log()}")


def stop_all(processes: Sequence[KnmProcess]) -> None:
    for proc in reversed(processes):
        proc.stop(timeout=30)


def login(proc: KnmProcess) -> str:
    response = httpx.post(
        f"{proc.api}/auth/login",
        json={"username": "admin", "password": TEST_ADMIN_PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["data"]["token"])


def wait_finished(proc: KnmProcess, token: str, task_id: str, deadline: float) -> dict[str, Any]:
    end = time.monotonic() + deadline
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < end:
        data = httpx.get(f"{proc.api}/tasks/{task_id}", headers=headers, timeout=30).json()["data"]
        if data["status"] in TERMINAL:
            return dict(data)
        time.sleep(0.1)
    raise RuntimeError(f"task {task_id} did not finish within {deadline:g} s")


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def task_result(database_url: str, task_id: str) -> dict[str, Any]:
    rows = asyncio.run(
        query(database_url, "SELECT result::text FROM tasks WHERE task_id = $1", task_id)
    )
    return dict(msgspec.json.decode(rows[0][0])) if rows else {}


# --- numbers and tables ---------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0–100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def mark(ok: bool) -> str:
    return "pass" if ok else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs ({cpu}), Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}; {load_average()}"
    )


def load_average() -> str:
    """Other work on the machine skews every figure; the load average says how much there was."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def say(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)
