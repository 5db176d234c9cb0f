"""Real ``knm serve`` / ``knm worker`` processes for tests that need more than one process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from knm.testing.database import TEST_ADMIN_PASSWORD, TEST_SECRET, data_dir_for_tests


def clean_environ() -> dict[str, str]:
    """This process's environment without its ``KNM_*`` settings, but with the test
    process's own data dir: a knm started from it never writes to ``/var/lib/knm``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    env["KNM_DATA_DIR"] = data_dir_for_tests()
    return env


#: Settings for a process whose lease expiry a test checks by killing it (``KnmProcess(...,
#: env={**SHORT_LEASE})``): its tasks are reaped two seconds after it dies. Every other process
#: gets knm's own 30 s lease, so a stall of a loaded machine never reaps a live task.
SHORT_LEASE = {"KNM_LEASE_SECONDS": "2"}


def as_from_a_terminal() -> None:
    """A ``preexec_fn`` for a child a test interrupts as a user at a terminal would: Ctrl-C
    (SIGINT) and Ctrl-\\ (SIGQUIT) at their defaults. A suite started in the background of a
    script (``pytest … &``) passes them on ignored, and an ignored SIGINT never reaches the
    command under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def hold_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound (not listening) to a free port, with ``SO_REUSEADDR``: while it is open no
    other process gets that port, yet a server that binds it with ``SO_REUSEADDR`` too (uvicorn
    does) can. Close it once the server listens. ``free_port`` instead lets the port go before
    the server binds it, and a clash then reaches another suite's server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class KnmProcess:
    """One knm process on a free loopback port, on the given database."""

    def __init__(
        self, workdir: Path, database_url: str, args: list[str], env: dict[str, str]
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.args = args or ["serve"]
        self.extra_env = env
        #: ``serve``'s port, held by ``_hold`` until the server is up (see ``hold_port``).
        self._hold: socket.socket | None = hold_port() if self.args[0] == "serve" else None
        self.port: int = self._hold.getsockname()[1] if self._hold is not None else 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "knm.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1"

    def env(self) -> dict[str, str]:
        env = clean_environ()
        env.update(
            KNM_DATABASE_URL=self.database_url,
            KNM_SECRET_KEY=TEST_SECRET,
            KNM_ADMIN_PASSWORD=TEST_ADMIN_PASSWORD,
            KNM_HOST="127.0.0.1",
            KNM_PORT=str(self.port),
            KNM_ARGON2_TIME_COST="1",
            KNM_ARGON2_MEMORY_COST="8",
            KNM_ARGON2_PARALLELISM="1",
            KNM_LEASE_SECONDS="30",
            KNM_SETTINGS_REFRESH="0.2",
            KNM_LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        return env

    def start(self, wait: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "knm.cli.main", *self.args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        if wait and self.args[0] == "serve":
            self.wait_ready()

    def wait_ready(self, deadline: float = 60.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"knm exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.api}/features", timeout=2).status_code == 200:
                    self.release_port()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"knm did not become ready:\n{self.log()}")

    def wait_for_watchers(
        self, count: int, headers: dict[str, str], deadline: float = 60.0
    ) -> None:
        """Until at least ``count`` progress WebSockets are open on this server (its
        ``knm_websocket_connections`` gauge): a client's watch is connected."""
        end = time.monotonic() + deadline
        while True:
            response = httpx.get(f"{self.base_url}/metrics", headers=headers, timeout=30)
            assert response.status_code == 200, response.text
            text = response.text
            for line in text.splitlines():
                name, _, value = line.partition(" ")
                if name == "knm_websocket_connections" and float(value) >= count:
                    return
            if time.monotonic() > end:
                raise AssertionError(f"fewer than {count} watchers within {deadline} s")
            time.sleep(0.05)

    def release_port(self) -> None:
        """Stop holding the port (the server has it now; a restart binds it again)."""
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        self.release_port()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


ProcessFactory = Callable[..., KnmProcess]
