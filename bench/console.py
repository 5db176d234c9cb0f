"""The web console under load: one task over N nodes (default 1,000) streaming output at a
paced rate (default 20,000 events/s) into the live task view of a real Chromium, against a real
``knm serve``.

Run from the repository root: ``python -m bench.console`` (``--smoke`` for a quick check).
Needs the OS's ``chromium`` and ``chromium-driver`` and selenium (the dev extra).

What it prints, beside the machine and its load:

- *events*: what the task's event log holds; *received*: the events the page's WebSocket got
  (counted by a wrapper installed before the page's own scripts, not by the console), in
  *messages* (the page subscribes with ``batch``: one message may carry many events);
  *lagged*: notices of dropped events (the page resubscribes from them; target: none). The
  page must receive every event (received ≥ events: a resubscription may repeat some) and its
  grid's final per-node counts must be the task's, else the run prints ``LOSS`` and exits 1.
- *longest task*: the longest main-thread task the Long Tasks API saw (it reports 50 ms and
  more; 0 is none), and how many there were; when there were any, when each began. Target:
  ≤ 50 ms.
- *heap*: the page's JS heap (MB) before the task and after it. Target: bounded (no growth with
  the events).
- *first paint*: the dashboard's first contentful paint on a fresh load, ms. Target: ≤ 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.common import (
    load_average,
    login,
    machine,
    mark,
    process_env,
    query,
    say,
    start_knm,
    stop_all,
    table,
    throwaway_database,
)
from knm.core.features import ExecutorSettings, FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.core.tasks import ExecRequest, Executor, NodeResult, Prepared, TargetNode, TaskContext
from knm.testing.database import TEST_ADMIN_PASSWORD

PLUGIN = "bench.console:ConsoleBenchPlugin"
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Installed before the page's scripts (CDP): counts what the WebSocket receives and records
#: Long Tasks, so the figures do not depend on the console's own code.
WATCH = """
window.__bench = { received: 0, lagged: 0, messages: 0, longest: 0, longTasks: 0, at: [], lags: [] };
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      const text = String(event.data);
      // One event, or (a page that subscribed with batch) an array of them: counted by their
      // keys, not parsed, so the counting costs the page's main thread little. A quote inside
      // a value is escaped, so '"seq":' is only ever a key.
      const count = (key) => {
        let n = 0;
        for (let at = text.indexOf(key); at !== -1; at = text.indexOf(key, at + key.length)) n += 1;
        return n;
      };
      const lagged = count('"type":"lagged"');
      window.__bench.messages += 1;
      window.__bench.lagged += lagged;
      if (lagged) window.__bench.lags.push(Math.round(performance.now()));
      window.__bench.received += count('"seq":') - lagged - count('"type":"error"');
    });
  }
};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__bench.longTasks += 1;
    window.__bench.at.push([Math.round(entry.startTime), Math.round(entry.duration)]);
    window.__bench.longest = Math.max(window.__bench.longest, entry.duration);
  }
}).observe({ type: "longtask", buffered: true });
"""


class StreamRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    #: Seconds before the output starts, for the page to subscribe.
    delay: float = 2.0
    seconds: float = 10.0
    #: Output events per second over all nodes, round-robin (each node's lines stay apart).
    rate: int = 20_000
    #: Every this many nodes, one fails.
    fail_every: int = 50


class StreamSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    timeout: int = 3600
    max_concurrent: int = 10


class StreamExecutor(Executor):
    """Every node starts at once, one producer writes their output in turn at the paced rate,
    then every node ends (every ``fail_every``-th failed)."""

    kind = "stream"
    route = "stream"
    feature = "stream"
    request_type = StreamRequest
    requires_credential = False
    node_output_in_status = False
    max_tasks = 10

    async def prepare(self, knm: Any, request: StreamRequest, principal: Any) -> Prepared:
        nodes = [TargetNode(name=name, address="127.0.0.1") for name in request.target_nodes]
        return Prepared(nodes=nodes, summary={})

    async def run(self, ctx: TaskContext) -> None:
        request: StreamRequest = ctx.request
        names = [node.name for node in ctx.nodes]
        done = asyncio.Event()

        async def produce() -> None:
            await asyncio.sleep(request.delay)
            start = time.monotonic()
            n = 0
            while not ctx.cancelled.is_set():
                elapsed = time.monotonic() - start
                if elapsed >= request.seconds:
                    break
                due = int(request.rate * elapsed) + 1 - n
                for _ in range(max(0, min(due, request.rate))):
                    ctx.output(names[n % len(names)], "stdout", f"line {n}\n")
                    n += 1
                await asyncio.sleep(0.005)
            done.set()

        async def work(node: TargetNode) -> NodeResult:
            await done.wait()
            if request.fail_every and names.index(node.name) % request.fail_every == 0:
                return NodeResult.failure("exit_code", "exit code 1", exit_code=1)
            return NodeResult.success("ok")

        producer = asyncio.create_task(produce())
        try:
            await ctx.fan_out(work)
        finally:
            producer.cancel()


class ConsoleBenchPlugin:
    def __init__(self) -> None:
        self.executor = StreamExecutor()

    @hookimpl
    def knm_executors(self) -> list[Executor]:
        return [self.executor]

    @hookimpl
    def knm_features(self) -> list[FeatureSpec]:
        return [FeatureSpec("stream", StreamSettings, description="the console benchmark")]


def browser(workdir: Path) -> Any:
    """Chromium with its profile and temp files (org.chromium.Chromium.*) in ``workdir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--enable-precise-memory-info",
    ):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={workdir / 'chromium-profile'}")
    env = {**os.environ, "TMPDIR": str(workdir)}
    driver = webdriver.Chrome(
        service=Service(executable_path=str(CHROMEDRIVER), env=env), options=options
    )
    driver.set_page_load_timeout(60)
    return driver


def wait(condition: Any, deadline: float, what: str) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not within {deadline:g} s")


def page(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def one_run(
    args: argparse.Namespace, base: str, api: str, database_url: str, workdir: Path
) -> dict[str, Any]:
    driver = browser(workdir)
    # One client for the run: an httpx call made without one builds an SSL context each time,
    # ~20 ms of CPU, five times a second while the task streams, on the machine being measured.
    http = httpx.Client(timeout=60)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
        driver.get(f"{base}/#/login")
        wait(lambda: page(driver, "return !!document.getElementById('username')"), 60, "login")
        driver.find_element("id", "username").send_keys("admin")
        driver.find_element("id", "password").send_keys(TEST_ADMIN_PASSWORD)
        driver.find_element("id", "login").click()
        wait(lambda: page(driver, "return !!document.getElementById('logout')"), 60, "logged in")
        # A fresh load of the dashboard, the session already in the tab: its first paint.
        driver.get(f"{base}/?fresh#/")
        wait(
            lambda: page(driver, "return !!document.querySelector('#clusters h2')"), 60, "dashboard"
        )
        first_paint = page(
            driver,
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return p ? p.startTime : null",
        )
        token = login_as_admin(http, api)
        nodes = [f"node{i:04d}" for i in range(args.nodes)]
        body = {
            "cluster_name": "bench",
            "target_nodes": nodes,
            "delay": args.delay,
            "seconds": args.seconds,
            "rate": args.rate,
        }
        started = http.post(
            f"{api}/automation/stream/execute",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        started.raise_for_status()
        task_id = started.json()["data"]["task_id"]
        driver.get(f"{base}/?fresh#/tasks/{task_id}")
        wait(
            lambda: page(driver, "return document.querySelectorAll('#grid .cell').length"),
            60,
            "grid",
        )
        heap_before = page(driver, "return performance.memory.usedJSHeapSize") / 2**20
        status = wait_finished_http(http, api, token, task_id, args.delay + args.seconds + 120)
        counts_script = (
            "return [document.querySelectorAll('#grid .cell.n-success').length,"
            " document.querySelectorAll('#grid .cell.n-failed').length]"
        )
        try:
            wait(
                lambda: (
                    page(driver, counts_script) == [status["success_count"], status["failed_count"]]
                ),
                60,
                "the grid's final counts",
            )
            counts_match = True
        except RuntimeError:
            counts_match = False
        events = asyncio.run(
            query(database_url, "SELECT count(*) FROM task_events WHERE task_id = $1", task_id)
        )[0][0]
        # The page has the complete event when it shows the task finished; the last few
        # messages may still be on their way to the counter.
        with contextlib.suppress(RuntimeError):
            wait(lambda: page(driver, "return window.__bench.received") >= events, 30, "events")
        seen = page(driver, "return window.__bench")
        heap_after = page(driver, "return performance.memory.usedJSHeapSize") / 2**20
        return {
            "nodes": args.nodes,
            "rate": args.rate,
            "events": int(events),
            "received": int(seen["received"]),
            "messages": int(seen["messages"]),
            "lagged": int(seen["lagged"]),
            "counts_match": counts_match,
            "longest": float(seen["longest"]),
            "long_tasks": int(seen["longTasks"]),
            "long_at": [(int(start), int(length)) for start, length in seen["at"]],
            "lagged_at": [int(at) for at in seen["lags"]],
            "heap_before": heap_before,
            "heap_after": heap_after,
            "first_paint": float(first_paint) if first_paint is not None else float("nan"),
        }
    finally:
        http.close()
        driver.quit()


def login_as_admin(http: httpx.Client, api: str) -> str:
    answer = http.post(
        f"{api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    answer.raise_for_status()
    return str(answer.json()["data"]["token"])


def wait_finished_http(
    http: httpx.Client, api: str, token: str, task_id: str, deadline: float
) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        answer = http.get(f"{api}/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"})
        data = msgspec.json.decode(answer.content)["data"]
        if data["status"] in ("completed", "failed", "cancelled"):
            return dict(data)
        time.sleep(0.2)
    raise RuntimeError(f"task {task_id} did not finish within {deadline:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="a quick, small run (for tests)")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=20_000, help="output events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="production time")
    parser.add_argument("--delay", type=float, default=2.0, help="time for the page to subscribe")
    args = parser.parse_args(argv)
    if args.smoke:
        args.nodes, args.rate, args.seconds = 100, 1000, 2.0
    if shutil.which("chromium") is None or not CHROMEDRIVER.exists():
        say("bench.console: needs chromium and chromium-driver (apt-get install them)")
        return 2

    say(f"bench.console: {machine()}")
    with tempfile.TemporaryDirectory(prefix="knm-bench-") as tmp:
        workdir = Path(tmp)
        with throwaway_database(workdir) as database_url:
            proc = start_knm(workdir / "serve", database_url, ["serve"], process_env([PLUGIN]))
            try:
                login(proc)
                run = one_run(args, proc.base_url, proc.api, database_url, workdir)
            finally:
                stop_all([proc])
    say(f"bench.console: done; {load_average()}")
    lossless = run["counts_match"] and run["received"] >= run["events"]
    print(
        table(
            ["nodes", "events/s", "events", "received", "messages", "lagged", "counts",
             "longest task ms",
             "long tasks", "heap MB before", "heap MB after", "first paint ms", "targets"],
            [[
                run["nodes"], run["rate"], run["events"], run["received"], run["messages"],
                run["lagged"],
                "equal" if run["counts_match"] else "LOSS", run["longest"], run["long_tasks"],
                run["heap_before"], run["heap_after"], run["first_paint"],
                f"lossless {mark(lossless)}, no lagged {mark(run['lagged'] == 0)}, "
                f"≤ 50 ms {mark(run['longest'] <= 50)}, "
                f"paint ≤ 500 ms {mark(run['first_paint'] <= 500)}",
            ]],
        )
    )  # fmt: skip
    if run["long_at"]:
        # Where to look: a long task at the page's start is its drawing, one later the stream.
        at = ", ".join(f"{length} ms at {start} ms" for start, length in run["long_at"])
        say(f"bench.console: long tasks (after the task page's navigation): {at}")
    if run["lagged_at"]:
        at = ", ".join(f"{moment} ms" for moment in run["lagged_at"])
        say(f"bench.console: lagged notices at (after the task page's navigation): {at}")
    return 0 if lossless else 1


if __name__ == "__main__":
    raise SystemExit(main())
