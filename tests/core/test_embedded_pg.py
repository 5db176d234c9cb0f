"""`knm serve` on its embedded PostgreSQL: first start, stop, crash recovery, the wrong secret."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from knm.core.config import default_data_dir
from knm.core.embedded_pg import running_postmaster_pid
from knm.testing.process import hold_port
from knm.testing.sshfleet import SshFleet

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # As root, beside the default /var/lib/knm: the same parents, so the same permission story.
    base = Path("/var/lib") if os.geteuid() == 0 else Path(os.environ.get("TMPDIR", "/tmp"))
    path = base / f"knm-test-{uuid.uuid4().hex[:8]}"
    yield path
    pid = running_postmaster_pid(path)
    if pid:
        psutil.Process(pid).kill()
    shutil.rmtree(path, ignore_errors=True)
    for log in path.parent.glob(f"{path.name}-*.log"):
        log.unlink(missing_ok=True)


#: Every server a test started, stopped after the test whatever happened in it.
_STARTED: list[Serve] = []


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    while _STARTED:
        server = _STARTED.pop()
        server._hold.close()
        if server.proc.poll() is None:
            server.kill()
        server.log.unlink(missing_ok=True)


class Serve:
    def __init__(self, data_dir: Path, **env: str) -> None:
        _STARTED.append(self)
        # Held until the server listens, so no other suite's server can take it meanwhile.
        self._hold = hold_port()
        self.port = self._hold.getsockname()[1]
        self.log = data_dir.parent / f"{data_dir.name}-{self.port}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
        environment.update(KNM_DATA_DIR=str(data_dir), KNM_PORT=str(self.port), **env)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "knm.cli.main", "serve"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self, deadline: float = 90) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"knm exited:\n{self.output()}")
            try:
                if httpx.get(f"{self.api}/features", timeout=2).status_code == 200:
                    self._hold.close()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"knm never answered:\n{self.output()}")

    def stop(self) -> int:
        self._hold.close()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        self._hold.close()
        self.proc.kill()
        self.proc.wait(10)


def test_the_default_data_dir_of_root_is_var_lib_knm() -> None:
    if os.geteuid() != 0:
        pytest.skip("the default for ordinary users is their data dir")
    assert default_data_dir() == Path("/var/lib/knm")


def test_first_start_creates_admin_prints_the_password_once_and_stop_stops_postgres(
    data_dir: Path,
) -> None:
    first = Serve(data_dir)
    first.ready()
    printed = [
        line for line in first.output().splitlines() if "created user 'admin' with password" in line
    ]
    assert len(printed) == 1
    password = printed[0].split("with password ")[1].split(" ")[0]
    login = httpx.post(f"{first.api}/auth/login", json={"username": "admin", "password": password})
    assert login.status_code == 200
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    assert running_postmaster_pid(data_dir) is not None
    assert first.stop() == 0
    assert running_postmaster_pid(data_dir) is None

    second = Serve(data_dir)
    second.ready()
    assert "created user 'admin'" not in second.output()
    assert (
        httpx.post(
            f"{second.api}/auth/login", json={"username": "admin", "password": password}
        ).status_code
        == 200
    )
    second.stop()


def test_a_start_after_a_crash_adopts_the_running_postgres(data_dir: Path) -> None:
    first = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password")
    first.ready()
    postmaster = running_postmaster_pid(data_dir)
    first.kill()
    assert running_postmaster_pid(data_dir) == postmaster  # left running by the crash
    second = Serve(data_dir)
    second.ready()
    assert running_postmaster_pid(data_dir) == postmaster
    postgres_for_dir = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(data_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert len(postgres_for_dir) == 1
    second.stop()
    assert running_postmaster_pid(data_dir) is None


def test_a_different_secret_refuses_to_start_with_a_clear_message(data_dir: Path) -> None:
    first = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password")
    first.ready()
    first.stop()
    wrong = Serve(data_dir, KNM_SECRET_KEY="not-the-secret-this-database-knows")
    assert wrong.proc.wait(90) != 0
    assert "different KNM_SECRET_KEY" in wrong.output()
    assert running_postmaster_pid(data_dir) is None


def _login(api: str, password: str = "admin-password") -> dict[str, str]:
    answer = httpx.post(f"{api}/auth/login", json={"username": "admin", "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['data']['token']}"}


def _admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    environment["KNM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "knm.cli.main", "admin", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_knm_admin_beside_a_running_server_leaves_its_database_running(data_dir: Path) -> None:
    server = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password")
    server.ready()
    postmaster = running_postmaster_pid(data_dir)
    listed = _admin(data_dir, "user", "list")
    assert listed.returncode == 0, listed.stderr
    assert "admin" in listed.stdout
    assert running_postmaster_pid(data_dir) == postmaster
    headers = _login(server.api)
    assert httpx.get(f"{server.api}/auth/me", headers=headers).status_code == 200
    server.stop()
    assert running_postmaster_pid(data_dir) is None


def test_knm_admin_alone_stops_the_database_it_started(data_dir: Path) -> None:
    first = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password")
    first.ready()
    first.stop()
    listed = _admin(data_dir, "user", "list")
    assert listed.returncode == 0, listed.stderr
    assert running_postmaster_pid(data_dir) is None


def test_a_killed_database_is_started_again_and_requests_succeed(data_dir: Path) -> None:
    server = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password")
    server.ready()
    headers = _login(server.api)
    postmaster = running_postmaster_pid(data_dir)
    assert postmaster is not None
    psutil.Process(postmaster).kill()
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline and not answered:
        with contextlib.suppress(httpx.HTTPError):
            answered = httpx.get(f"{server.api}/auth/me", headers=headers, timeout=5).is_success
        time.sleep(0.2)
    assert answered, server.output()
    assert running_postmaster_pid(data_dir) not in (None, postmaster)
    assert server.stop() == 0


def test_the_server_never_changes_the_mode_of_the_data_dirs_parents(data_dir: Path) -> None:
    parents = {parent: parent.stat().st_mode for parent in data_dir.parents}
    server = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password")
    server.ready()
    server.stop()
    assert {parent: parent.stat().st_mode for parent in data_dir.parents} == parents


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the database as another user")
def test_a_data_dir_the_database_user_cannot_reach_is_a_clear_start_up_error() -> None:
    private = Path(tempfile.mkdtemp(prefix="knm-private-"))  # mode 0700, root's
    try:
        server = Serve(private / "data")
        assert server.proc.wait(90) == 1
        output = server.output()
        assert "cannot pass through" in output and str(private) in output, output
        assert "Traceback" not in output
        assert private.stat().st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _in_private_mount(options: str, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash in a mount namespace of its own with a tmpfs at ``$MNT``."""
    mount_point = Path(tempfile.mkdtemp(prefix="knm-mnt-"))
    mount_point.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    environment.update(MNT=str(mount_point), PYTHON=sys.executable)
    try:
        return subprocess.run(
            ["unshare", "-m", "--propagation", "private", "bash", "-c",
             f"mount -t tmpfs -o {options} tmpfs \"$MNT\" && {script}"],
            env=environment, capture_output=True, text=True, timeout=150, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(mount_point, ignore_errors=True)


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare -m")


@needs_unshare
def test_a_read_only_data_dir_is_a_clear_start_up_error() -> None:
    done = _in_private_mount(
        "ro,size=1m,mode=0755",
        'KNM_DATA_DIR="$MNT/knm" KNM_PORT=1 "$PYTHON" -m knm.cli.main serve',
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "knm: cannot start:" in output and "Read-only file system" in output, output
    assert "Traceback" not in output


@needs_unshare
def test_a_full_data_dir_is_a_clear_start_up_error() -> None:
    done = _in_private_mount(
        "size=2m,mode=0755",
        'mkdir "$MNT/knm" && KNM_DATA_DIR="$MNT/knm" KNM_PORT=1 "$PYTHON" -m knm.cli.main serve',
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "knm: cannot start:" in output and "No space left on device" in output, output
    assert "Traceback" not in output


def _wait_for(predicate: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():
                return True
        time.sleep(0.05)
    return False


def _ssh_task(api: str, headers: dict[str, str], command: str) -> str:
    answer = httpx.post(
        f"{api}/automation/ssh/execute",
        headers=headers,
        json={"cluster_name": "lab", "target_nodes": ["node1"], "credential_id": 1,
              "command": command, "timeout": 60},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


def _watch(api: str, headers: dict[str, str], task: str, into: list[dict[str, Any]]) -> None:
    """Every event of ``task`` from the progress WebSocket, until ``complete``, as a client
    does it: connect and subscribe again after a drop or an error, from ``since`` after
    ``lagged``."""
    token = headers["Authorization"].removeprefix("Bearer ")
    url = api.replace("http://", "ws://") + f"/progress/ws?token={token}"
    end = time.monotonic() + 120  # a loaded CI machine restarts PostgreSQL slowly
    while time.monotonic() < end:
        with (
            contextlib.suppress(ConnectionClosed, OSError),
            connect(url, open_timeout=10, proxy=None) as socket,
        ):

            def subscribe() -> None:
                since = max((e["seq"] for e in into if e["type"] != "lagged"), default=0)
                socket.send(json.dumps({"action": "subscribe", "task_id": task, "since": since}))

            subscribe()
            while time.monotonic() < end:
                message = json.loads(socket.recv(timeout=max(0.1, end - time.monotonic())))
                if message.get("type") == "error":
                    time.sleep(0.5)
                    subscribe()
                elif message.get("task_id") == task and message.get("type") == "lagged":
                    subscribe()
                elif message.get("task_id") == task:
                    into.append(message)
                    if message["type"] == "complete":
                        return
        time.sleep(0.5)


def _status(api: str, headers: dict[str, str], task: str) -> dict[str, Any]:
    return httpx.get(f"{api}/tasks/{task}", headers=headers, timeout=5).json()["data"]


def test_a_database_killed_mid_task_turns_readyz_503_then_200_and_no_task_stays_running(
    data_dir: Path, ssh_fleet: SshFleet
) -> None:
    server = Serve(data_dir, KNM_ADMIN_PASSWORD="admin-password", KNM_LEASE_SECONDS="3")
    server.ready()
    api, readyz = server.api, server.api.removesuffix("/api/v1") + "/readyz"
    headers = _login(api)
    node = ssh_fleet.nodes[0]
    assert httpx.post(f"{api}/credentials", headers=headers, json={
        "name": "fleet", "username": ssh_fleet.username, "auth_type": "password",
        "password": ssh_fleet.password}).status_code == 201  # fmt: skip
    assert httpx.post(f"{api}/clusters", headers=headers, json={
        "name": "lab", "kind": "static",
        "nodes": [{"name": "node1", "address": node.address, "port": node.port}]},
    ).status_code == 201  # fmt: skip
    assert httpx.get(readyz).status_code == 200
    task = _ssh_task(api, headers, "sleep 3; echo slept")
    assert _wait_for(lambda: _status(api, headers, task)["status"] == "running", 30)
    # A dashboard watching the task through the restart still sees it end.
    watched: list[dict[str, Any]] = []
    watcher = threading.Thread(target=_watch, args=(api, headers, task, watched), daemon=True)
    watcher.start()

    postmaster = running_postmaster_pid(data_dir)
    assert postmaster is not None
    os.kill(postmaster, signal.SIGKILL)
    assert _wait_for(lambda: httpx.get(readyz, timeout=2).status_code == 503, 5), server.output()
    assert _wait_for(lambda: httpx.get(readyz, timeout=2).status_code == 200, 60), server.output()

    assert _wait_for(
        lambda: _status(api, headers, task)["status"] not in ("pending", "running"), 60
    ), server.output()
    ended = _status(api, headers, task)
    assert ended["status"] in ("completed", "failed"), ended
    if ended["status"] == "failed":
        assert all(r["message"] or r["reason"] for r in ended["results"]), ended
    watcher.join(120)
    assert watched and watched[-1]["type"] == "complete", server.output()[-4000:]
    seqs = [event["seq"] for event in watched if event["type"] != "lagged"]
    assert seqs == sorted(set(seqs)), seqs
    again = _ssh_task(api, headers, "echo again")
    assert _wait_for(lambda: _status(api, headers, again)["status"] == "completed", 60)
    assert server.stop() == 0
