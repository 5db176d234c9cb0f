"""Test databases: one PostgreSQL server per test session, a migrated template database, and a
cheap clone of it per test module (``CREATE DATABASE … TEMPLATE``), which also works for tests
that start several knm processes on one database."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import secrets
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from knm.core.config import KnmConfig
from knm.core.embedded_pg import EmbeddedPostgres, in_use, running_postmaster_pid

#: This test session's own token secret and admin password (every knm it starts uses them):
#: a test that reaches another session's server by mistake (a port taken over meanwhile) is
#: refused, instead of passing against the wrong server.
TEST_SECRET = f"knm-test-secret-{secrets.token_hex(16)}"
TEST_ADMIN_PASSWORD = f"admin-{secrets.token_urlsafe(12)}"
TEST_DATABASE_ENV = "KNM_TEST_DATABASE_URL"
#: The temp dir name each session's own PostgreSQL server lives in (``knm_server_url``).
SERVER_PREFIX = "knm-test-pg-"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps a ``?host=/socket/dir`` query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextmanager
def server_for_tests(base_dir: Path) -> Iterator[str]:
    """The URL of a PostgreSQL server for tests: ``KNM_TEST_DATABASE_URL``, else embedded."""
    external = os.environ.get(TEST_DATABASE_ENV)
    if external:
        yield external
        return
    server = EmbeddedPostgres(base_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def sweep_stale_servers(prefix: str = SERVER_PREFIX) -> list[Path]:
    """Stops and removes the test servers of sessions that died without their teardown (a
    pytest stopped by a signal or a timeout): their PostgreSQL ran on, orphaned, and kept its
    directory in the machine's temp dir. Returns what was removed.

    A server is stale when the process that started it is gone and no process holds it in use;
    one without an owner (being started by a concurrent session) is left alone."""
    removed = []
    for base in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            owner = int((base / "pg.owner").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if psutil.pid_exists(owner) or in_use(base):
            continue
        pid = running_postmaster_pid(base)
        if pid is not None:
            _stop_postmaster(pid)
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed


def _stop_postmaster(pid: int) -> None:
    """PostgreSQL's fast shutdown (SIGINT), then SIGKILL if it has not ended in 15 s."""
    with contextlib.suppress(psutil.Error):
        postmaster = psutil.Process(pid)
        postmaster.send_signal(signal.SIGINT)
        _, alive = psutil.wait_procs([postmaster], timeout=15)
        for process in alive:
            process.kill()
        psutil.wait_procs(alive, timeout=5)


@functools.cache
def data_dir_for_tests() -> str:
    """A data dir for this test process, removed at exit: a knm under test keeps what it
    writes (Ansible's mirrored runtime, say) out of the machine's ``/var/lib/knm``."""
    prefix = "knm-test-data-"
    # A run stopped by a signal skips atexit: its dir (named for its pid) goes with the next.
    for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = stale.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
    atexit.register(shutil.rmtree, path, True)
    return path


def config_for_tests(database_url: str, **overrides: object) -> KnmConfig:
    """Settings for a knm under test: cheap hashing, short leases, fast settings refresh."""
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir_for_tests(),
        "secret_key": TEST_SECRET,
        "admin_password": TEST_ADMIN_PASSWORD,
        "argon2_time_cost": 1,
        "argon2_memory_cost": 8,
        "argon2_parallelism": 1,
        "lease_seconds": 2.0,
        "settings_refresh": 0.2,
        "load_entrypoints": False,
        "db_pool_min": 1,
        "db_pool_max": 10,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return KnmConfig(**values)  # type: ignore[arg-type]


async def create_template(server_url: str) -> str:
    """A migrated database (admin user included) to clone per module; returns its name."""
    from knm.core.runtime import Knm

    name = f"knm_template_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    knm = Knm(config_for_tests(with_database(server_url, name)))
    await knm.start(serve=False)
    await knm.stop()
    return name


async def clone_database(server_url: str, template: str) -> str:
    name = f"knm_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        # CREATE DATABASE … TEMPLATE fails while any session is connected to the template.
        for _ in range(50):
            try:
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                break
            except asyncpg.ObjectInUseError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"template database {template} stayed in use")
    finally:
        await admin.close()
    return name


async def drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
