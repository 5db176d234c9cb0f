"""SSH fan-out benchmark: one command on N nodes through knm's API, beside its peers.

The nodes are :class:`knm.testing.fleet_server.FleetServer` addresses (asyncssh server
processes on N loopback addresses, key auth; ``--fleet-processes`` workers, 4 by default, each
serving every n-th address), so every runner faces the same cheap server and what differs is
the client side.  One server process for 5,000 addresses made every warm round wait on it: a
real fleet answers from one sshd per node, in parallel, and each command a single process
spawned copied a descriptor table as large as all the connections it held.  Runners, all at
concurrency 200 (Ansible: ``--ansible-forks``):

* ``knm cold``: a real ``knm serve``; ``POST /automation/ssh/execute`` on a static cluster of the
  N addresses, watched on the progress WebSocket until its ``complete`` event (as ``knm``'s
  client watches; ``--wait poll``: ``/tasks/{id}`` every 50 ms), then ``/tasks/{id}`` read once,
  all inside the timed window; every node must succeed.
  ``knm warm``: the same task again, each node reusing its pooled connection. knm is restarted
  before each repeat, so that every cold round really connects.
  ``knm-libssh2 cold`` / ``knm-libssh2 warm`` (``--runners ...,knm-libssh2``): the same two
  rounds with the SSH settings' ``client: libssh2``, set before the cold round.
* ``floor``: a bare asyncssh ``gather`` under a semaphore (connect, run, close), in-process;
  ``floor knm-algs``: the same with knm's algorithm choice (AES-GCM first, no SHA-1 key
  exchange), as a control: how much of a difference is the algorithms alone.
* ``parallel-ssh``: ``pssh.clients.ParallelSSHClient`` (libssh2), in a child process (gevent),
  timed around ``run_command`` + ``join`` + reading the output.
* ``ansible``: ``ansible all -m raw -o`` as a subprocess, timed as a user would see it.

Beside wall time, each knm round reports the ``knm serve`` process's CPU seconds (user +
system, children included) per 1,000 nodes, its peak RSS, and the time from the POST to the
first node's result on the WebSocket; the floor rounds report the CPU seconds of the process
running the bare asyncssh loop (this one), so the two CPU figures sit side by side.

``--profile DIR`` samples the ``knm serve`` process with py-spy during every knm round (and this
process during the floor's rounds) and prints each round's top functions by self and by
cumulative share of the samples; the raw stacks stay in ``DIR``.

A peer that is not installed is skipped with a note. Rerun from the repository root:
``python -m bench.ssh_fanout`` (N = 100, 500, 1000; 3 repeats) or ``--smoke`` (N = 50, once);
the README's table: ``--nodes 1000,5000 --repeat 1 --peers ""``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import psutil

from bench.common import (
    REPO_ROOT,
    load_average,
    login,
    machine,
    mark,
    median,
    process_env,
    say,
    start_knm,
    table,
    throwaway_database,
)
from knm.client.watch import ws_url
from knm.plugins.ssh.connect import ENCRYPTION_ALGS, KEX_ALGS
from knm.testing.fleet_server import FleetServer, raise_nofile_limit
from knm.testing.process import KnmProcess

POLL_SECONDS = 0.05
RSS_SAMPLE_SECONDS = 0.05
#: Upper bound of one round of any runner, so that a stuck peer cannot hang the benchmark.
ROUND_DEADLINE = 900.0
CREDENTIAL = "bench-fanout"

# Targets from the issue.
FLOOR_RATIO = 1.25
PSSH_RATIO = 1.0
ANSIBLE_SPEEDUP = 5.0
RSS_NODES = 1000
RSS_LIMIT_MB = 300.0
# Issue #17's speed targets.
CPU_RATIO = 0.6
COLD_RATIO = 1.10
WARM_RATIO = 0.5
FIRST_RESULT = 0.5
RSS_NODES_17 = 5000
RSS_LIMIT_17_MB = 400.0
#: The floor again with knm's cipher preference (not a target of the issue: a control).
FLOOR_GCM = "floor knm-algs"
#: knm's transport algorithm choice (``knm.plugins.ssh.connect``), for the control.
KNM_ALGS: dict[str, Any] = {
    "encryption_algs": ENCRYPTION_ALGS, "kex_algs": KEX_ALGS, "compression_algs": None,
}  # fmt: skip


NAN = float("nan")
#: The knm rounds with the libssh2 client (``--runners ...,knm-libssh2``).
LIBSSH2_ROUNDS = ("knm-libssh2 cold", "knm-libssh2 warm")


@dataclass
class Round:
    seconds: float
    succeeded: int
    peak_rss_mb: float = NAN
    #: CPU seconds (user + system) of the process doing the client side of the round.
    cpu_seconds: float = NAN
    #: Seconds from the POST to the first node's result on the WebSocket (knm rounds).
    first_result: float = NAN
    #: Seconds from the POST to its answer, to the first node ``running`` and to the first
    #: output on the WebSocket (knm rounds, ``--wait ws``): where the first result's time goes.
    answered: float = NAN
    first_running: float = NAN
    first_output: float = NAN


@dataclass
class Runner:
    name: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return median([r.seconds for r in self.rounds])

    @property
    def succeeded(self) -> int:
        return min((r.succeeded for r in self.rounds), default=0)

    @property
    def peak_rss_mb(self) -> float:
        return max((r.peak_rss_mb for r in self.rounds), default=NAN)

    @property
    def cpu_seconds(self) -> float:
        return median([r.cpu_seconds for r in self.rounds])

    @property
    def first_result(self) -> float:
        return median([r.first_result for r in self.rounds])


def cpu_of(process: psutil.Process) -> float:
    """CPU seconds (user + system) of ``process`` and its children, so far."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


class Profiler:
    """py-spy sampling one process for the length of a ``with`` block (``--profile``)."""

    RATE = 100
    #: Seconds to sample from the start of the round (0: the whole round); ``--profile-seconds``.
    SECONDS = 0.0

    def __init__(self, directory: Path | None, pid: int, name: str) -> None:
        self.path = directory / f"{name}.txt" if directory is not None else None
        self._pid = pid
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.path is not None:
            self._proc = subprocess.Popen(
                ["py-spy", "record", "--pid", str(self._pid), "--format", "raw", "--function",
                 "--nonblocking", "--rate", str(self.RATE), "--output", str(self.path),
                 *(["--duration", str(max(1, round(self.SECONDS)))] if self.SECONDS else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)  # py-spy attaches before the round starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None or self.path is None:
            return
        self._proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
        with suppress(subprocess.TimeoutExpired):
            self._proc.wait(30)
        if self._proc.poll() is None:
            self._proc.kill()
        if self.path.exists():
            say(profile_summary(self.path))


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:12)`` as ``module.func`` (the package part of the path kept)."""
    name, _, where = frame.rpartition(" (")
    module = where.split(":")[0].removesuffix(".py").replace("/", ".")
    for prefix in ("site-packages.", "lib.python3.11."):
        module = module.rpartition(prefix)[2] if prefix in module else module
    return f"{module}.{name}" if name else frame


def profile_summary(path: Path, top: int = 15) -> str:
    """The ``top`` functions of py-spy's raw stacks by self share and by cumulative share."""
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
        for name in set(frames):
            cumulative[name] = cumulative.get(name, 0) + count
    if not total:
        return f"{path.name}: no samples"

    def rows(counts: dict[str, int]) -> list[list[Any]]:
        best = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [[f"{100 * n / total:.1f}", name] for name, n in best]

    return "\n".join([
        f"{path.name}: {total} samples at {Profiler.RATE} Hz", "",
        table(["self %", "function"], rows(own)), "",
        table(["cumulative %", "function"], rows(cumulative)),
    ])  # fmt: skip


@dataclass
class Fleet:
    server: FleetServer
    key_path: Path

    def addresses(self, n: int) -> list[str]:
        return self.server.addresses[:n]


# --- knm through its API ----------------------------------------------------------------------


class RssSampler:
    """Peak resident memory of a process and its children, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def _sample(self) -> None:
        total = 0
        try:
            total = self._process.memory_info().rss
            for child in self._process.children(recursive=True):
                with suppress(psutil.Error):
                    total += child.memory_info().rss
        except psutil.Error:
            return
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def _api(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = client.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return dict(response.json()["data"])


def prepare_knm(client: httpx.Client, fleet: Fleet, sizes: list[int]) -> int:
    """The key credential and one static cluster per size; returns the credential id."""
    credential = _api(
        client,
        "POST",
        "/credentials",
        json={
            "name": CREDENTIAL,
            "username": fleet.server.username,
            "auth_type": "private_key",
            "private_key": fleet.server.private_key_pem,
            "port": fleet.server.port,
        },
    )
    for n in sizes:
        nodes = [
            {"name": f"node{i + 1}", "address": address}
            for i, address in enumerate(fleet.addresses(n))
        ]
        _api(
            client,
            "POST",
            "/clusters",
            json={"name": f"bench-{n}", "kind": "static", "nodes": nodes},
        )
    return int(credential["id"])


def knm_round(
    client: httpx.Client,
    knm: KnmProcess,
    n: int,
    credential_id: int,
    command: str,
    wait: str = "ws",
    profile: Profiler | None = None,
) -> Round:
    body = {
        "cluster_name": f"bench-{n}",
        "target_nodes": [f"node{i + 1}" for i in range(n)],
        "credential_id": credential_id,
        "command": command,
        "timeout": 300,
    }
    assert knm.proc is not None
    process = psutil.Process(knm.proc.pid)
    with (
        profile or nullcontext(),
        RssSampler(knm.proc.pid) as rss,
        _watching(client) if wait == "ws" else nullcontext() as socket,
    ):
        cpu_before = cpu_of(process)
        started = time.perf_counter()
        task_id = _api(client, "POST", "/automation/ssh/execute", json=body)["task_id"]
        answered = time.perf_counter() - started
        firsts: dict[str, float] = {}
        if socket is not None:
            firsts = {k: v - started for k, v in _wait_websocket(socket, task_id).items()}
        else:
            _wait_polling(client, task_id)
        # The results as a user reads them once the task is over, inside the timed window.
        data = _api(client, "GET", f"/tasks/{task_id}")
        seconds = time.perf_counter() - started
        cpu = cpu_of(process) - cpu_before
    if firsts:
        say("  WebSocket: " + ", ".join(f"{k} {v:.2f} s" for k, v in firsts.items()))
    if data["status"] not in ("completed", "failed", "cancelled"):
        raise RuntimeError(f"knm task {task_id} is {data['status']} after its complete event")
    succeeded = sum(1 for r in data.get("results", []) if r.get("status") == "success")
    if succeeded != n:
        failed = [r for r in data.get("results", []) if r.get("status") != "success"][:3]
        say(f"  knm: {n - succeeded} of {n} nodes failed, e.g. {failed}")
    return Round(
        seconds, succeeded, rss.peak_mb, cpu, firsts.get("result", NAN), answered,
        firsts.get("running", NAN), firsts.get("output", NAN),
    )  # fmt: skip


def _wait_polling(client: httpx.Client, task_id: str) -> None:
    end = time.monotonic() + ROUND_DEADLINE
    while _api(client, "GET", f"/tasks/{task_id}")["status"] not in (
        "completed", "failed", "cancelled"
    ):  # fmt: skip
        if time.monotonic() > end:
            raise RuntimeError(f"knm task {task_id} not finished after {ROUND_DEADLINE:g} s")
        time.sleep(POLL_SECONDS)


@contextmanager
def _watching(client: httpx.Client) -> Iterator[Any]:
    """The progress WebSocket, subscribed to every task before the round starts, as a
    dashboard already watching would be: the first result's time is the server's, not the
    time it takes to open a connection after the POST."""
    from websockets.sync.client import connect

    token = client.headers["Authorization"].removeprefix("Bearer ")
    url = ws_url(str(client.base_url).rstrip("/"), "", token)
    with connect(url, open_timeout=30, close_timeout=1, max_size=None) as socket:
        socket.send(json.dumps({"action": "subscribe", "task_id": "*"}))
        # Not acknowledged, but messages are handled in order: the answer to a later (unknown)
        # action means the subscription is in place.
        socket.send(json.dumps({"action": "ping"}))
        while json.loads(socket.recv(timeout=30)).get("type") != "error":
            pass
        yield socket


def _wait_websocket(socket: Any, task_id: str) -> dict[str, float]:
    """Until the task's ``complete`` event, over the progress WebSocket (as ``knm`` watches);
    returns the ``perf_counter`` at which the first message, the first node ``running``, the
    first ``output`` and the first node's ``result`` of the task arrived."""
    end = time.monotonic() + ROUND_DEADLINE
    firsts: dict[str, float] = {}
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"knm task {task_id} not finished after {ROUND_DEADLINE:g} s")
        message = json.loads(socket.recv(timeout=left))
        kind = message.get("type")
        if kind == "error":
            raise RuntimeError(f"progress stream: {message.get('message')}")
        if kind == "lagged":
            # Fell behind: the task's own events again from where this left off (the first
            # times already seen stay; a repeated ``complete`` ends the round as well).
            since = int(message.get("data", {}).get("since", 0))
            socket.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": since}))
            continue
        if message.get("task_id") != task_id:
            continue
        firsts.setdefault("message", time.perf_counter())
        if kind == "complete":
            return firsts
        if kind == "output":
            firsts.setdefault("output", time.perf_counter())
        elif kind == "node":
            status = message.get("data", {}).get("status")
            which = "running" if status == "running" else "result"
            if status in ("running", "success", "failed"):
                firsts.setdefault(which, time.perf_counter())


@contextmanager
def knm_server(workdir: Path, database_url: str) -> Iterator[tuple[KnmProcess, httpx.Client]]:
    env = process_env([], KNM_LOG_LEVEL="WARNING", KNM_LEASE_SECONDS="60")
    knm = start_knm(workdir, database_url, ["serve"], env)
    try:
        token = login(knm)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=knm.api, headers=headers, timeout=60) as client:
            # Start-up's background work is over before a round measures the process: the
            # Ansible plugin's toolchain check (``GET /plugins`` waits for it) runs a child
            # Python that imports Ansible, ~0.7 s of CPU counted with the process's children
            # when it is reaped, which landed in whichever round was running then.
            _api(client, "GET", "/plugins")
            yield knm, client
    finally:
        knm.stop(timeout=30)


def run_knm(
    workdir: Path, database_url: str, n: int, concurrency: int, credential_id: int, command: str,
    wait: str = "ws", profile: Path | None = None, client: str = "asyncssh",
) -> tuple[Round, Round]:  # fmt: skip
    """A fresh ``knm serve`` (empty pool): the cold round, then the warm one, with ``client``
    (the SSH settings' SSH client library)."""
    with knm_server(workdir, database_url) as (knm, http):
        settings = {
            "max_concurrent": concurrency,
            "host_key_policy": "off",
            "connection_pool_size": n,
            "pool_idle_ttl": 600,
            "connect_timeout": 60,
            "client": client,
        }
        _api(http, "PUT", "/features/automation/ssh", json=settings)
        assert knm.proc is not None
        pid = knm.proc.pid
        stamp = time.strftime("%H%M%S")
        label = "knm" if client == "asyncssh" else f"knm-{client}"
        cold = knm_round(
            http, knm, n, credential_id, command, wait,
            Profiler(profile, pid, f"{label}-cold-{n}-{stamp}"),
        )  # fmt: skip
        warm = knm_round(
            http, knm, n, credential_id, command, wait,
            Profiler(profile, pid, f"{label}-warm-{n}-{stamp}"),
        )  # fmt: skip
        return cold, warm


# --- the floor: bare asyncssh -----------------------------------------------------------------


async def _floor(
    fleet: Fleet, n: int, concurrency: int, command: str, algs: dict[str, Any] | None
) -> Round:
    key = asyncssh.import_private_key(fleet.server.private_key_pem)
    limit = asyncio.Semaphore(concurrency)
    extra: dict[str, Any] = algs or {}
    options = asyncssh.SSHClientConnectionOptions(
        username=fleet.server.username, client_keys=[key], known_hosts=None,
        connect_timeout=60, **extra,
    )  # fmt: skip

    async def one(address: str) -> bool:
        async with limit:
            try:
                async with asyncssh.connect(
                    address, port=fleet.server.port, options=options
                ) as conn:
                    result = await conn.run(command, check=False)
                    return result.exit_status == 0 and bool(result.stdout)
            except (OSError, asyncssh.Error):
                return False

    process = psutil.Process()
    cpu_before = cpu_of(process)
    started = time.perf_counter()
    done = await asyncio.wait_for(
        asyncio.gather(*(one(a) for a in fleet.addresses(n))), ROUND_DEADLINE
    )
    seconds = time.perf_counter() - started
    return Round(seconds, sum(done), cpu_seconds=cpu_of(process) - cpu_before)


def run_floor(
    fleet: Fleet, n: int, concurrency: int, command: str, algs: dict[str, Any] | None = None,
    profile: Path | None = None,
) -> Round:  # fmt: skip
    """The bare asyncssh loop; ``algs``: algorithm options instead of asyncssh's defaults."""
    name = f"floor{'-knm-algs' if algs else ''}-{n}-{time.strftime('%H%M%S')}"
    with Profiler(profile, os.getpid(), name):
        return asyncio.run(_floor(fleet, n, concurrency, command, algs))


# --- parallel-ssh (in a child process: it runs on gevent) ------------------------------------


def pssh_child(spec_path: str) -> None:
    """Entry point of the child: runs once, prints ``{"seconds", "succeeded"}`` as JSON."""
    from pssh.clients import ParallelSSHClient

    spec = json.loads(Path(spec_path).read_text())
    client = ParallelSSHClient(
        spec["hosts"], port=spec["port"], user=spec["user"], pkey=spec["key"],
        pool_size=spec["concurrency"], num_retries=1, timeout=60, allow_agent=False,
    )  # fmt: skip
    started = time.perf_counter()
    output = client.run_command(spec["command"], stop_on_errors=False)
    client.join(output)
    succeeded = 0
    for host_output in output:
        if host_output.exception is not None:
            continue
        lines = list(host_output.stdout or [])
        succeeded += host_output.exit_code == 0 and bool(lines)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "succeeded": succeeded}), flush=True)


def run_pssh(fleet: Fleet, n: int, concurrency: int, command: str, workdir: Path) -> Round:
    spec = workdir / f"pssh-{n}.json"
    spec.write_text(
        json.dumps({
            "hosts": fleet.addresses(n), "port": fleet.server.port,
            "user": fleet.server.username, "key": str(fleet.key_path),
            "concurrency": concurrency, "command": command,
        })
    )  # fmt: skip
    code = f"from bench.ssh_fanout import pssh_child; pssh_child({str(spec)!r})"
    done = _bounded([sys.executable, "-c", code], workdir)
    if done.returncode != 0:
        say(f"  parallel-ssh exited {done.returncode}: {done.stderr.strip()[-800:]}")
        return Round(float("nan"), 0)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Round(float(figures["seconds"]), int(figures["succeeded"]))


# --- ansible ----------------------------------------------------------------------------------


def write_inventory(fleet: Fleet, n: int, workdir: Path) -> Path:
    path = workdir / f"inventory-{n}.ini"
    lines = ["[fleet]"]
    lines += [f"node{i + 1} ansible_host={a}" for i, a in enumerate(fleet.addresses(n))]
    lines += [
        "",
        "[fleet:vars]",
        f"ansible_port={fleet.server.port}",
        f"ansible_user={fleet.server.username}",
        f"ansible_ssh_private_key_file={fleet.key_path}",
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_ansible(fleet: Fleet, n: int, forks: int, command: str, workdir: Path) -> Round:
    inventory = write_inventory(fleet, n, workdir)
    home = workdir / "ansible-home"
    # Short control path directory: ssh refuses socket paths over ~100 characters.
    control = Path(tempfile.mkdtemp(prefix="kab-", dir="/tmp"))
    env = {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_TIMEOUT": "60",
    }
    argv = ["ansible", "all", "-i", str(inventory), "-m", "raw", "-a", command]
    argv += ["-f", str(forks), "-o"]
    started = time.perf_counter()
    try:
        done = _bounded(argv, workdir, env)
    finally:
        seconds = time.perf_counter() - started
        shutil.rmtree(control, ignore_errors=True)
    lines = done.stdout.splitlines()
    succeeded = sum(1 for line in lines if "| CHANGED |" in line or "| SUCCESS |" in line)
    if succeeded != n:
        say(f"  ansible: {succeeded} of {n} succeeded; {(done.stdout + done.stderr)[-800:]}")
    return Round(seconds, succeeded)


def _bounded(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=ROUND_DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate(timeout=30)
        err += f"\nkilled after {ROUND_DEADLINE:g} s"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# --- the benchmark ----------------------------------------------------------------------------


def available_peers(wanted: list[str]) -> tuple[list[str], list[str]]:
    notes = []
    peers = []
    for peer in wanted:
        if peer == "parallel-ssh" and importlib.util.find_spec("pssh") is None:
            notes.append("parallel-ssh skipped: not installed (pip install parallel-ssh)")
        elif peer == "ansible" and shutil.which("ansible") is None:
            notes.append("ansible skipped: not installed (pip install ansible-core)")
        else:
            peers.append(peer)
    return peers, notes


def record(runner: Runner, result: Round) -> None:
    runner.rounds.append(result)
    rss = (
        ""
        if result.peak_rss_mb != result.peak_rss_mb
        else f", peak RSS {result.peak_rss_mb:.0f} MB"
    )
    firsts = ""
    if result.first_result == result.first_result:
        firsts = (
            f"; POST answered {result.answered:.2f} s, first running "
            f"{result.first_running:.2f} s, first output {result.first_output:.2f} s, first "
            f"result {result.first_result:.2f} s"
        )
    cpu = f", CPU {result.cpu_seconds:.2f} s" if result.cpu_seconds == result.cpu_seconds else ""
    say(f"  {runner.name}: {result.seconds:.2f} s, {result.succeeded} ok{rss}{cpu}{firsts}")


def one_repeat(
    args: argparse.Namespace, fleet: Fleet, n: int, runners: dict[str, Runner],
    workdir: Path, database_url: str, credential_id: int,
) -> None:  # fmt: skip
    """Every runner once on ``n`` nodes, in a fixed order."""
    profile = args.profile
    chosen = args.runners
    if "floor" in chosen:
        record(runners["floor"], run_floor(fleet, n, args.concurrency, args.command, None, profile))
    if "floor-knm-algs" in chosen:
        # The floor with knm's algorithm choice: how much of a difference is the algorithms.
        record(
            runners[FLOOR_GCM],
            run_floor(fleet, n, args.concurrency, args.command, KNM_ALGS, profile),
        )
    if "parallel-ssh" in runners:
        record(runners["parallel-ssh"], run_pssh(fleet, n, args.concurrency, args.command, workdir))
    for runner, client in (("knm", "asyncssh"), ("knm-libssh2", "libssh2")):
        if runner not in chosen:
            continue
        cold, warm = run_knm(
            workdir / "knm", database_url, n, args.concurrency, credential_id, args.command,
            args.wait, profile, client,
        )  # fmt: skip
        record(runners[f"{runner} cold"], cold)
        record(runners[f"{runner} warm"], warm)
    if "ansible" in runners:
        record(runners["ansible"], run_ansible(fleet, n, args.ansible_forks, args.command, workdir))


def bench(args: argparse.Namespace, sizes: list[int], repeat: int) -> int:
    peers, notes = available_peers(args.peers)
    for note in notes:
        say(note)
    say(machine())
    workdir = Path(tempfile.mkdtemp(prefix="knm-bench-fanout-"))
    results: dict[int, dict[str, Runner]] = {}
    try:
        with (
            FleetServer(
                workdir / "fleet", nodes=max(sizes), processes=args.fleet_processes
            ) as server,
            throwaway_database(workdir) as database_url,
        ):
            key_path = workdir / "client_key"
            key_path.write_text(server.private_key_pem)
            key_path.chmod(0o600)
            fleet = Fleet(server, key_path)
            with knm_server(workdir / "knm", database_url) as (_, client):
                credential_id = prepare_knm(client, fleet, sizes)
            for n in sizes:
                names = ("knm cold", "knm warm", *LIBSSH2_ROUNDS, "floor", FLOOR_GCM, *peers)
                results[n] = {name: Runner(name) for name in names}
                for index in range(repeat):
                    say(f"{n} nodes, repeat {index + 1}/{repeat}")
                    one_repeat(args, fleet, n, results[n], workdir, database_url, credential_id)
                    say(load_average())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, args, repeat, notes))
    incomplete = [
        f"{name} at {n}"
        for n, runners in results.items()
        for name in ("knm cold", "knm warm", *LIBSSH2_ROUNDS, "floor", FLOOR_GCM)
        if runners[name].rounds and runners[name].succeeded != n
    ]
    if incomplete:
        say("FAILED nodes: " + ", ".join(incomplete))
        return 1
    return 0


def report(
    results: dict[int, dict[str, Runner]], args: argparse.Namespace, repeat: int, notes: list[str]
) -> str:
    nan = float("nan")
    rows = []
    targets = []
    for n, runners in results.items():
        floor = runners["floor"].seconds
        pssh = runners["parallel-ssh"].seconds if "parallel-ssh" in runners else nan
        for runner in runners.values():
            if not runner.rounds:
                continue  # not chosen (``--runners``)
            s = runner.seconds
            rows.append([
                n, runner.name, s, n / s if s == s else nan, s / floor,
                s / pssh if pssh == pssh else nan, 1000 * runner.cpu_seconds / n,
                runner.peak_rss_mb, runner.first_result, f"{runner.succeeded}/{n}",
            ])  # fmt: skip
        cold = runners["knm cold"]
        if cold.rounds:
            targets.append([n, f"knm cold ≤ {FLOOR_RATIO:g}× floor",
                            f"{cold.seconds / floor:.2f}×",
                            mark(cold.seconds <= FLOOR_RATIO * floor)])  # fmt: skip
        gcm = runners[FLOOR_GCM].seconds
        if gcm == gcm:
            targets.append([n, f"(knm cold ≤ {FLOOR_RATIO:g}× {FLOOR_GCM})",
                            f"{cold.seconds / gcm:.2f}×", mark(cold.seconds <= FLOOR_RATIO * gcm)])  # fmt: skip
        if pssh == pssh:
            ratio = cold.seconds / pssh
            targets.append([n, f"knm cold ≤ {PSSH_RATIO:g}× parallel-ssh", f"{ratio:.2f}×",
                            mark(ratio <= PSSH_RATIO)])  # fmt: skip
        if "ansible" in runners:
            speedup = runners["ansible"].seconds / cold.seconds
            targets.append([n, f"knm cold ≥ {ANSIBLE_SPEEDUP:g}× faster than ansible",
                            f"{speedup:.1f}×", mark(speedup >= ANSIBLE_SPEEDUP)])  # fmt: skip
        # Issue #17's speed targets, for each client measured.
        floor_cpu = runners["floor"].cpu_seconds
        for knm in ("knm", "knm-libssh2"):
            cold_, warm = runners[f"{knm} cold"], runners[f"{knm} warm"]
            if not cold_.rounds or floor != floor:
                continue
            cpu_ratio = cold_.cpu_seconds / floor_cpu
            targets.append([n, f"{knm} cold CPU ≤ {CPU_RATIO:g}× floor's", f"{cpu_ratio:.2f}×",
                            mark(cpu_ratio <= CPU_RATIO)])  # fmt: skip
            targets.append([n, f"{knm} cold ≤ {COLD_RATIO:g}× floor",
                            f"{cold_.seconds / floor:.2f}×",
                            mark(cold_.seconds <= COLD_RATIO * floor)])  # fmt: skip
            targets.append([n, f"{knm} warm ≤ {WARM_RATIO:g}× floor",
                            f"{warm.seconds / floor:.2f}×",
                            mark(warm.seconds <= WARM_RATIO * floor)])  # fmt: skip
        warm = runners["knm warm"]
        if cold.rounds:
            targets.append([n, f"first result ≤ {FIRST_RESULT:g} s (cold)",
                            f"{cold.first_result:.2f} s", mark(cold.first_result <= FIRST_RESULT)])  # fmt: skip
        for knm in ("knm", "knm-libssh2"):
            cold_, warm = runners[f"{knm} cold"], runners[f"{knm} warm"]
            if n == RSS_NODES_17 and cold_.rounds:
                peak = max(cold_.peak_rss_mb, warm.peak_rss_mb)
                targets.append([n, f"{knm} peak RSS ≤ {RSS_LIMIT_17_MB:g} MB",
                                f"{peak:.0f} MB", mark(peak <= RSS_LIMIT_17_MB)])  # fmt: skip
        if n == RSS_NODES and cold.rounds:
            peak = max(cold.peak_rss_mb, runners["knm warm"].peak_rss_mb)
            targets.append([n, f"knm peak RSS ≤ {RSS_LIMIT_MB:g} MB", f"{peak:.0f} MB",
                            mark(peak <= RSS_LIMIT_MB)])  # fmt: skip
    header = (
        f"`{args.command}` on N fleet-server nodes ({args.fleet_processes} server processes), "
        f"key auth, concurrency {args.concurrency} "
        f"(ansible -f {args.ansible_forks}); knm waits by {args.wait}; median of {repeat}"
    )
    parts = [
        header,
        "",
        table(
            [
                "nodes",
                "runner",
                "seconds",
                "nodes/s",
                "× floor",
                "× parallel-ssh",
                "CPU s / 1k nodes",
                "knm peak RSS MB",
                "POST → first result s",
                "succeeded",
            ],
            rows,
        ),
        "",
        table(["nodes", "target", "measured", ""], targets),
    ]
    if notes:
        parts += ["", *notes]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="100,500,1000", help="comma-separated node counts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--ansible-forks", type=int, default=100)
    parser.add_argument("--command", default="uname -n")
    parser.add_argument(
        "--fleet-processes",
        type=int,
        default=4,
        help="fleet server worker processes, each serving every n-th node (default: 4)",
    )
    parser.add_argument(
        "--peers", default="parallel-ssh,ansible", help="comma-separated: parallel-ssh,ansible"
    )
    parser.add_argument(
        "--wait", choices=["ws", "poll"], default="ws",
        help="how knm rounds see the end: the progress WebSocket, or polling /tasks/{id}",
    )  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="50 nodes, once")
    parser.add_argument(
        "--profile", type=Path, default=None,
        help="sample every knm and floor round with py-spy; raw stacks and summaries in DIR",
    )  # fmt: skip
    parser.add_argument(
        "--profile-seconds", type=float, default=0.0,
        help="with --profile: sample only the first SECONDS of each round (the start-up)",
    )  # fmt: skip
    parser.add_argument(
        "--runners", default="",
        help="comma-separated subset of floor,floor-knm-algs,knm,knm-libssh2 (default: all but "
        "knm-libssh2)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.profile is not None:
        if shutil.which("py-spy") is None:
            parser.error("--profile needs py-spy (pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)
    Profiler.SECONDS = args.profile_seconds
    args.runners = set(args.runners.split(",")) - {""} or {"floor", "floor-knm-algs", "knm"}
    args.peers = [p for p in args.peers.split(",") if p]
    sizes = [50] if args.smoke else [int(n) for n in args.nodes.split(",")]
    repeat = 1 if args.smoke else args.repeat
    # Every node is a connection on both ends (the fleet server raises its own limit).
    raise_nofile_limit()
    return bench(args, sizes, repeat)


if __name__ == "__main__":
    sys.exit(main())
