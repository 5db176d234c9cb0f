"""The test kit's database helpers: what a knm under test writes stays in places the run removes."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from knm.core.embedded_pg import running_postmaster_pid
from knm.testing import database


def test_a_data_dir_left_by_a_run_stopped_by_a_signal_goes_with_the_next() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"knm-test-data-{gone.pid}-"))
    alive = Path(tempfile.mkdtemp(prefix=f"knm-test-data-{os.getpid()}-"))
    made = Path(database.data_dir_for_tests.__wrapped__())  # the uncached function: a new dir
    try:
        assert not stale.exists()
        assert alive.is_dir()  # a run still going keeps its own
        assert made.name.startswith(f"knm-test-data-{os.getpid()}-")
    finally:
        for path in (stale, alive, made):
            shutil.rmtree(path, ignore_errors=True)


#: Not the sessions' own prefix: a concurrent session's sweep must not take these meanwhile.
SWEEP_PREFIX = "knm-test-sweepcase-"


def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_a_server_dir_whose_owner_lives_or_is_in_use_or_is_starting_is_left_alone() -> None:
    live = Path(tempfile.mkdtemp(prefix=SWEEP_PREFIX))
    (live / "pg.owner").write_text(f"{os.getpid()}\n")
    used = Path(tempfile.mkdtemp(prefix=SWEEP_PREFIX))
    (used / "pg.owner").write_text(f"{_dead_pid()}\n")
    starting = Path(tempfile.mkdtemp(prefix=SWEEP_PREFIX))  # no owner written yet
    stale = Path(tempfile.mkdtemp(prefix=SWEEP_PREFIX))
    (stale / "pg.owner").write_text(f"{_dead_pid()}\n")
    try:
        with (used / "pg.users").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)  # as a process using the server holds it
            assert database.sweep_stale_servers(SWEEP_PREFIX) == [stale]
        assert live.is_dir() and used.is_dir() and starting.is_dir() and not stale.exists()
    finally:
        for path in (live, used, starting, stale):
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_the_server_of_a_session_killed_before_its_teardown_is_stopped_and_removed() -> None:
    base = Path(tempfile.mkdtemp(prefix=SWEEP_PREFIX))
    try:
        # A session that starts its server and dies without stopping it.
        code = (
            "import os, sys; from pathlib import Path\n"
            "from knm.core.embedded_pg import EmbeddedPostgres\n"
            "EmbeddedPostgres(Path(sys.argv[1])).start()\n"
            "os._exit(0)\n"
        )
        subprocess.run([sys.executable, "-c", code, str(base)], check=True, timeout=180)
        orphan = running_postmaster_pid(base)
        assert orphan is not None
        assert database.sweep_stale_servers(SWEEP_PREFIX) == [base]
        assert not base.exists() and not psutil.pid_exists(orphan)
    finally:
        if (pid := running_postmaster_pid(base)) is not None:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
