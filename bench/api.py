"""API benchmark: a task's status under concurrent load from ``wrk``, beside a bare Litestar +
asyncpg route fetching one row of the same table, both served the same way (uvicorn, one
process, same pool size and codecs), in the same run.

Also measured, to see what a status answer costs: ``/auth/me`` (authentication and the user's
row, both from memory while nothing announced a change), ``/tasks/{id}`` (no feature guard), the
status of a task that is still running (its last answer, after one primary-key query finds its
version unchanged), history pages over the issue's 1,000,000 tasks, that status during a prune
of every finished task, and each query of the status route timed serially on one connection.

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``). Run from the repository root:
``python -m bench.api`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import (
    TEST_PLUGIN,
    load_average,
    login,
    machine,
    mark,
    median,
    process_env,
    say,
    start_knm,
    stop_all,
    table,
    throwaway_database,
    wait_finished,
)
from knm.testing.process import KnmProcess, free_port

RUNNING_LABEL = "knm status of a running task (one version check)"
PRUNE_LABEL = "knm status of a running task, during a prune of every finished task"
#: The issue's targets, as ratios to the bare route with the pool reset off (knm's setting).
RATIO_TARGETS: dict[str, tuple[float, float | None]] = {
    RUNNING_LABEL: (0.8, 25.0),
    "knm GET /auth/me (auth only)": (1.0, None),
}
HISTORY_PREFIX = "knm GET /tasks"
#: The baseline: the pool reset off (as knm's pool runs), else (smoke runs) on.
BARE_LABELS = (
    "bare Litestar+asyncpg, 1 row (pool reset off)",
    "bare Litestar+asyncpg, 1 row (pool reset on)",
)
HISTORY_RATIO = 0.2
HISTORY_P99_MS = 50.0
POOL_MIN, POOL_MAX = 2, 20  # knm's defaults (KnmConfig.db_pool_min/max)


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Skip the ``RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()`` round trip."""


class NoPoolReset:
    """Makes every asyncpg pool of the process skip the reset query on release (the bare app's
    "pool reset off" row; knm's own pool already does, see ``knm.core.db.connect``)."""

    def __init__(self) -> None:
        original = asyncpg.create_pool

        def create_pool(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("reset", _no_reset)
            return original(*args, **kwargs)

        asyncpg.create_pool = create_pool  # type: ignore[assignment]


# --- the bare app ---------------------------------------------------------------------------


def bare_app(database_url: str, reset: bool) -> Any:
    from litestar import Litestar, get

    from knm.core import db

    pools: list[asyncpg.Pool] = []

    async def startup() -> None:
        if not reset:
            NoPoolReset()
        pools.append(await db.connect(database_url, min_size=POOL_MIN, max_size=POOL_MAX))

    async def shutdown() -> None:
        for pool in pools:
            await pool.close()

    @get("/bare/tasks/{task_id:str}")
    async def one_task(task_id: str) -> dict[str, Any]:
        record = await pools[0].fetchrow("SELECT * FROM tasks WHERE task_id = $1", task_id)
        return {"code": 200, "message": "ok", "data": dict(record) if record else None}

    return Litestar([one_task], on_startup=[startup], on_shutdown=[shutdown])


def serve_bare(port: int, database_url: str, reset: bool) -> None:
    import uvicorn

    # The same uvicorn settings as `knm serve` (knm/cli/local.py).
    uvicorn.run(
        bare_app(database_url, reset),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
    )


class BareProcess:
    def __init__(self, database_url: str, reset: bool) -> None:
        self.port = free_port()
        mode = "on" if reset else "off"
        command = [
            sys.executable,
            "-m",
            "bench.api",
            "--serve-bare",
            str(self.port),
            database_url,
            mode,
        ]
        env = process_env([])
        self.proc = subprocess.Popen(
            command,
            env={**_environ(), **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("the bare app exited")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/bare/tasks/x", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the bare app did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _environ() -> dict[str, str]:
    from knm.testing.process import clean_environ

    return clean_environ()


# --- wrk ------------------------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unreadable latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, token: str | None, seconds: float, connections: int, threads: int) -> Load:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*?timeout (\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += int(found.group(1))
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", out)
    if found:
        errors += sum(int(g) for g in found.groups())
    return Load(rps, p50, p99, errors)


# --- per-query timings ----------------------------------------------------------------------


async def time_queries(database_url: str, task_id: str, count: int) -> list[tuple[str, float]]:
    """Mean µs of each query the status route makes, serially on one pooled connection, and the
    cost of a pool acquire/release with and without the reset query."""
    from knm.core import db
    from knm.core.auth import users
    from knm.core.tasks import output, store

    pool = await db.connect(database_url, min_size=1, max_size=1)
    calls = {
        "auth: users row (auth_row)": lambda c: users.auth_row(c, 1),
        "tasks row (get_task)": lambda c: store.get_task(c, task_id),
        "task_nodes rows (nodes_of)": lambda c: store.nodes_of(c, task_id),
        "output aggregation (read_all_output)": lambda c: output.read_all_output(c, task_id),
        "all three in one statement (snapshot)": lambda c: store.snapshot(
            c, task_id, with_output=True
        ),
        "a running task's version check (version_of)": lambda c: store.version_of(c, task_id),
    }
    found: list[tuple[str, float]] = []
    try:
        async with pool.acquire() as conn:
            for name, call in calls.items():
                for _ in range(50):
                    await call(conn)
                start = time.perf_counter()
                for _ in range(count):
                    await call(conn)
                found.append((name, 1e6 * (time.perf_counter() - start) / count))
        for label, reset in (
            ("pool acquire+release, default reset", None),
            ("pool acquire+release, no reset", _no_reset),
        ):
            kwargs = {"reset": reset} if reset else {}
            one = await asyncpg.create_pool(database_url, min_size=1, max_size=1, **kwargs)
            try:
                for _ in range(50):
                    async with one.acquire():
                        pass
                start = time.perf_counter()
                for _ in range(count):
                    async with one.acquire():
                        pass
                found.append((label, 1e6 * (time.perf_counter() - start) / count))
            finally:
                await one.close()
    finally:
        await pool.close()
    return found


# --- the benchmark --------------------------------------------------------------------------


def make_task(proc: KnmProcess, token: str) -> str:
    """A finished test task with two nodes, some output and a few events: a typical status."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "cluster_name": "bench",
        "target_nodes": ["n1", "n2"],
        "echo": "hello from {node}",
        "output_lines": 20,
        "events": 5,
    }
    response = httpx.post(
        f"{proc.api}/automation/test/execute", json=body, headers=headers, timeout=30
    )
    response.raise_for_status()
    task_id = str(response.json()["data"]["task_id"])
    wait_finished(proc, token, task_id, 60)
    return task_id


#: The issue's history: every kind, 20 clusters, 90 days, 90/8/2 % completed/failed/cancelled.
HISTORY_KINDS = ("ssh", "ansible", "script", "workflow", "k8s", "test")


async def add_history(database_url: str, rows: int) -> None:
    """``rows`` finished tasks of every kind over 20 clusters and 90 days, 1–10 nodes each
    (about 3 on average), 90 % completed, 8 % failed, 2 % cancelled — in every cluster and
    every kind: status, kind and cluster come from different digits of the row's number (with
    all three from ``g`` modulo 50, 6 and 20, cluster c7 never had a failure)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, target_nodes,
                                  success_count, failed_count, created_at, start_time, end_time)
               SELECT 'bulk-' || g || '-' || lpad((g % 100)::text, 2, '0'),
                      ($2::text[])[1 + (g / 1000) % cardinality($2::text[])],
                      CASE WHEN (g / 20) % 50 = 0 THEN 'cancelled'
                           WHEN (g / 20) % 50 < 5 THEN 'failed' ELSE 'completed' END,
                      'c' || (g % 20),
                      ARRAY(SELECT 'n' || i FROM generate_series(1, w) i), w, 0,
                      at, at, at + interval '20 seconds'
               FROM generate_series(1, $1::int) g,
                    LATERAL (SELECT now() - make_interval(secs => (g::float8 * 7776000 / $1)) AS at,
                                    -- 1–10 nodes, skewed small: mean about 3
                                    1 + floor(9 * power(((g::bigint * 7919) % 1000) / 1000.0, 2.2))::int
                                        AS w) x""",
            rows,
            list(HISTORY_KINDS),
        )
        await conn.execute(
            """INSERT INTO task_nodes (task_id, node, position, status, start_time, end_time)
               SELECT t.task_id, n.node, n.pos - 1,
                      CASE WHEN t.status = 'completed' THEN 'success' ELSE 'failed' END,
                      t.start_time, t.end_time
               FROM tasks t, unnest(t.target_nodes) WITH ORDINALITY AS n(node, pos)
               WHERE t.task_id LIKE 'bulk-%'"""
        )
        # The steady state autovacuum keeps: visibility map set, statistics current.
        await conn.execute("VACUUM ANALYZE tasks")
        await conn.execute("VACUUM ANALYZE task_nodes")
        # Write the bulk insert out now, not in a checkpoint during the measurements.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def prune_everything(database_url: str) -> float:
    """Retention with a zero-day window: every finished task goes, as a real prune would after
    a long outage. Returns its wall time."""
    from knm.core.tasks.retention import prune

    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        await prune(conn, task_days=0, event_days=0, output_max_bytes=1 << 40)
        return time.perf_counter() - started
    finally:
        await conn.close()


def make_running_task(proc: KnmProcess, token: str) -> str:
    """A task that stays running: one node finished with output, one hanging."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "cluster_name": "bench",
        "target_nodes": ["n1", "n2"],
        "echo": "hello from {node}",
        "output_lines": 20,
        "events": 5,
        "hang_nodes": ["n2"],
        "timeout": 3600,
    }
    response = httpx.post(
        f"{proc.api}/automation/test/execute", json=body, headers=headers, timeout=30
    )
    response.raise_for_status()
    task_id = str(response.json()["data"]["task_id"])
    end = time.monotonic() + 60
    while time.monotonic() < end:
        status = httpx.get(
            f"{proc.api}/automation/test/status/{task_id}", headers=headers, timeout=10
        ).json()["data"]
        if status["status"] == "running" and status["results"]:
            return task_id
        time.sleep(0.1)
    raise RuntimeError(f"{task_id} did not get to running with a finished node")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="a quick, small run (for tests)")
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration per measurement")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads (1 leaves a core to the server)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="measurements per target (medians)")
    parser.add_argument(
        "--history-rows", type=int, default=1_000_000, help="finished tasks in the history"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated words: measure only the routes whose label holds one of them "
        "(and 'prune' for the prune), beside the bare route (pool reset off); for iterating",
    )
    parser.add_argument(
        "--serve-bare", nargs=3, metavar=("PORT", "URL", "RESET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve_bare:
        port, url, reset = args.serve_bare
        serve_bare(int(port), url, reset == "on")
        return 0
    if shutil.which("wrk") is None:
        print(
            "bench.api needs wrk: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)",
            file=sys.stderr,
        )
        return 2
    if args.smoke:
        args.seconds, args.repeat = 1.0, 1
    warmup = 0.0 if args.smoke else 3.0

    say(f"bench.api: {machine()}")
    env = process_env([TEST_PLUGIN], KNM_SETTINGS_REFRESH="2")
    rows: list[list[Any]] = []
    measured: dict[str, Load] = {}
    with tempfile.TemporaryDirectory(prefix="knm-bench-") as tmp:
        workdir = Path(tmp)
        with throwaway_database(workdir) as database_url:
            knm = start_knm(workdir / "knm", database_url, ["serve"], env)
            procs: list[Any] = [knm]
            try:
                token = login(knm)
                task_id = make_task(knm, token)
                running_id = make_running_task(knm, token)
                asyncio.run(add_history(database_url, 1_000 if args.smoke else args.history_rows))
                rows_label = f"{1_000 if args.smoke else args.history_rows:,}"
                week_end = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
                week_start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 36 * 86400))
                filtered = (
                    f"cluster_name=c7&status=failed&start_date={week_start}&end_date={week_end}"
                )
                targets: list[tuple[str, str, str | None]] = [
                    ("bare Litestar+asyncpg, 1 row (pool reset on)", "bare-reset", None),
                    ("bare Litestar+asyncpg, 1 row (pool reset off)", "bare-noreset", None),
                    ("knm GET /auth/me (auth only)", f"{knm.api}/auth/me", token),
                    ("knm GET /tasks/{id}", f"{knm.api}/tasks/{task_id}", token),
                    (
                        "knm GET /automation/test/status/{id}",
                        f"{knm.api}/automation/test/status/{task_id}",
                        token,
                    ),
                    (
                        RUNNING_LABEL,
                        f"{knm.api}/automation/test/status/{running_id}",
                        token,
                    ),
                    (
                        f"{HISTORY_PREFIX}, page 1 of {rows_label} tasks",
                        f"{knm.api}/tasks",
                        token,
                    ),
                    (
                        f"{HISTORY_PREFIX}?cluster_name&status=failed&7 days of {rows_label}",
                        f"{knm.api}/tasks?{filtered}",
                        token,
                    ),
                ]
                if args.smoke:
                    targets = [targets[0], targets[5], targets[6]]
                only = [word for word in args.only.split(",") if word]
                if only:
                    targets = [
                        t
                        for t in targets
                        if t[1] == "bare-noreset" or any(word in t[0] for word in only)
                    ]
                bare: dict[str, BareProcess] = {}
                if any(t[1] == "bare-reset" for t in targets):
                    bare["bare-reset"] = BareProcess(database_url, True)
                    procs.append(bare["bare-reset"])
                if not args.smoke:
                    bare["bare-noreset"] = BareProcess(database_url, False)
                    procs.append(bare["bare-noreset"])
                for label, where, auth in targets:
                    if where in bare:
                        url = f"http://127.0.0.1:{bare[where].port}/bare/tasks/{task_id}"
                    else:
                        url = where
                    check = httpx.get(
                        url, headers={"Authorization": f"Bearer {auth}"} if auth else {}, timeout=10
                    )
                    if check.status_code != 200:
                        raise RuntimeError(
                            f"{url} answered {check.status_code}: {check.text[:200]}"
                        )
                    if warmup:
                        wrk(url, auth, warmup, args.connections, args.threads)
                    loads = [
                        wrk(url, auth, args.seconds, args.connections, args.threads)
                        for _ in range(args.repeat)
                    ]
                    load = Load(
                        median([x.rps for x in loads]),
                        median([x.p50_ms for x in loads]),
                        median([x.p99_ms for x in loads]),
                        sum(x.errors for x in loads),
                    )
                    measured[label] = load
                    say(
                        f"  {label}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms"
                    )
                query_times = asyncio.run(
                    time_queries(database_url, task_id, 100 if args.smoke else 2000)
                )
                # The running task's status while retention deletes every finished task.
                if not only or "prune" in only:
                    with concurrent.futures.ThreadPoolExecutor(1) as pool:
                        pruning = pool.submit(asyncio.run, prune_everything(database_url))
                        during = wrk(
                            f"{knm.api}/automation/test/status/{running_id}",
                            token,
                            args.seconds,
                            args.connections,
                            args.threads,
                        )
                        prune_seconds = pruning.result()
                    measured[PRUNE_LABEL] = during
                    say(
                        f"  {PRUNE_LABEL}: {during.rps:,.0f} req/s, p50 {during.p50_ms:.1f} ms, "
                        f"p99 {during.p99_ms:.1f} ms; the prune took {prune_seconds:.1f} s"
                    )
            finally:
                stop_all([p for p in procs if isinstance(p, KnmProcess)])
                for proc in procs:
                    if isinstance(proc, BareProcess):
                        proc.stop()

    say(f"bench.api: done; {load_average()}")
    bare_label = next(label for label in BARE_LABELS if label in measured)
    baseline = measured[bare_label].rps
    idle_p99 = measured[RUNNING_LABEL].p99_ms if RUNNING_LABEL in measured else float("nan")
    for label, load in measured.items():
        ratio = load.rps / baseline
        target, verdict = "", ""
        if label in RATIO_TARGETS:
            want, p99 = RATIO_TARGETS[label]
            target = f"≥{want:g}×" + (f", p99≤{p99:g}ms" if p99 else "")
            verdict = mark(ratio >= want and (not p99 or load.p99_ms <= p99) and not load.errors)
        elif label.startswith(HISTORY_PREFIX) and rows_label in label:
            target = f"≥{HISTORY_RATIO:g}×, p99≤{HISTORY_P99_MS:g}ms"
            verdict = mark(
                ratio >= HISTORY_RATIO and load.p99_ms <= HISTORY_P99_MS and not load.errors
            )
        elif label == PRUNE_LABEL:
            target = f"p99≤2× idle ({2 * idle_p99:.1f}ms)"
            verdict = mark(load.p99_ms <= 2 * idle_p99 and not load.errors)
        rows.append(
            [
                label,
                load.rps,
                load.p50_ms,
                load.p99_ms,
                f"{ratio:.2f}",
                load.errors,
                target,
                verdict,
            ]
        )
    print(
        f"API under wrk: {args.connections} connections, {args.threads} wrk thread(s), {args.seconds:g} s "
        f"per measurement, medians of {args.repeat}; ratio = req/s ÷ {bare_label}; {load_average()}"
    )
    print(table(["route", "req/s", "p50 ms", "p99 ms", "ratio", "errors", "target", ""], rows))
    print()
    print("serial cost on one connection (what a status request is made of)")
    print(table(["step", "µs"], [[name, value] for name, value in query_times]))
    failed = any(load.errors for load in measured.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
