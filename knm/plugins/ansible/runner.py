"""Running Ansible as the unprivileged run user: the user, the environment, the processes.

ansible-playbook never runs as knm's own user. When knm runs as root, every run (and every
``--syntax-check``) runs as ``settings.run_user`` (created with ``useradd --system`` on first
use, or ``adduser`` where there is no ``useradd``), with a clean environment — none of knm's
variables, so not ``KNM_SECRET_KEY`` — and a HOME inside the run's directory. Not root, knm
cannot switch users and runs Ansible as itself (still with a clean environment); that is
logged once. Which interpreter and ansible-playbook it runs is ``toolchain.py``'s answer.

The run is ``ansible-runner run`` as a subprocess (ansible-runner cannot switch users when run
in-process): it lays out the private data dir, spawns ansible-playbook with its event
callback, and writes every event to ``artifacts/<ident>/job_events``, which ``events.py`` reads.

The process is started with ``subprocess.Popen`` in a thread, not asyncio's subprocess support:
uvloop's cannot switch users. A thread per process waits for its exit; its output goes to a
file, read only when the run failed, so nothing blocks whichever event loop knm runs on.

Cancelling kills the whole process tree: ansible's workers and ssh's ControlPersist masters
detach into their own sessions, so a process group is not enough. Every process of a run
carries ``KNM_ANSIBLE_RUN=<id>`` in its environment; a kill takes the tree *and* every process
of the run user carrying the mark. (The same mark on the nodes: ``remote.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import psutil

from knm.core.errors import FeatureUnavailable
from knm.core.processes import process_gone, wait_until_gone
from knm.plugins.ansible.schemas import AnsibleSettings

if TYPE_CHECKING:
    from knm.plugins.ansible.toolchain import Toolchain

log = logging.getLogger("knm.ansible")

MARK = "KNM_ANSIBLE_RUN"
_users_lock = threading.Lock()
_warned_not_root = False


class RunUser(msgspec.Struct, frozen=True):
    name: str
    uid: int
    gid: int
    #: False when knm is not root and Ansible runs as knm's own user.
    switched: bool

    def popen_kwargs(self) -> dict[str, object]:
        if not self.switched:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


class RunUserError(RuntimeError):
    """The run user cannot be had; the message says what to do instead."""


def ensure_run_user(name: str) -> RunUser:
    """The run user, created when missing (root only); knm's own user when not root."""
    global _warned_not_root
    if os.geteuid() != 0:
        if not _warned_not_root:
            _warned_not_root = True
            log.warning("knm is not root: ansible-playbook runs as knm's own user, not %s", name)
        me = pwd.getpwuid(os.geteuid())
        return RunUser(name=me.pw_name, uid=me.pw_uid, gid=me.pw_gid, switched=False)
    with _users_lock:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = _create_user(name)
    if entry.pw_uid == 0:
        raise RunUserError(f"run_user {name} is a root account")
    return RunUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, switched=True)


def _creators(name: str) -> list[list[str]]:
    """Ways to add a system user without a home or a login shell: shadow's ``useradd``, then
    Debian's ``adduser``, then BusyBox's (Alpine)."""
    shell = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(p)),
                 "/bin/false")  # fmt: skip
    return [
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", shell, "--comment", "knm ansible runs", name],
        ["adduser", "--system", "--group", "--no-create-home", "--home", "/nonexistent",
         "--shell", shell, "--gecos", "knm ansible runs", "--quiet", name],
        ["adduser", "-S", "-D", "-H", "-h", "/nonexistent", "-s", shell, name],
    ]  # fmt: skip


def _create_user(name: str) -> pwd.struct_passwd:
    tried: list[str] = []
    for argv in _creators(name):
        if shutil.which(argv[0]) is None:
            tried.append(f"{argv[0]}: not installed")
            continue
        completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        with contextlib.suppress(KeyError):  # made now, or meanwhile by another process
            return pwd.getpwnam(name)
        detail = " ".join((completed.stderr or completed.stdout).split())
        tried.append(f"{argv[0]} exited {completed.returncode}: {detail[-200:]}")
    raise RunUserError(
        f"cannot create the run user {name} ({'; '.join(tried)}); create a system user named "
        f"{name} without a login shell, or set run_user to an existing unprivileged user"
    )


def runs_root(root: Path) -> Path:
    """The directory runs get their directories in (``temp_dir``): the run user may pass
    through it, not list it."""
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if root.stat().st_uid == os.geteuid():
            root.chmod(0o711)
    return root


def runs_root_of(settings: AnsibleSettings, tools: Toolchain | None = None) -> Path:
    """Where this run's directory goes: the toolchain's (resolved with the data dir), else
    ``temp_dir``, else a directory of this user's own in the system's temp dir."""
    if tools is not None and tools.runs:
        return runs_root(Path(tools.runs))
    if settings.temp_dir:
        return runs_root(Path(settings.temp_dir))
    return runs_root(Path(tempfile.gettempdir()) / f"knm-ansible-runs-{os.geteuid()}")


def environment(
    settings: AnsibleSettings, run_dir: Path, mark: str, tools: Toolchain | None = None
) -> dict[str, str]:
    """The run's whole environment: nothing inherited from knm's process but LANG. ``tools``
    (default: knm's own interpreter and the configured ansible-playbook) adds its PATH entries
    and variables."""
    home, tmp = run_dir / "home", run_dir / "tmp"
    chain = _tools(settings, tools)
    path = os.pathsep.join([*chain.path, "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        **chain.env,
        "PATH": path,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "USER": "",
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir(run_dir)),
        "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(tmp / "pcp"),
        "ANSIBLE_PIPELINING": "True" if settings.pipelining else "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "PYTHONDONTWRITEBYTECODE": "1",
        MARK: mark,
    }


#: ssh's control sockets are bound at ``<dir>/<10-char hash>.<17-char temp suffix>``, and a
#: Unix socket's path has 107 bytes: a deeper run dir gets a short directory of its own.
_CONTROL_DIR_MAX = 72


def control_dir(run_dir: Path) -> Path:
    """Where ssh keeps the run's control sockets: inside the run dir when the path is short
    enough, else ``/tmp/knm-cp-<hash of the run dir>`` (made, handed over and removed with
    the run dir)."""
    inside = run_dir / "tmp" / "cp"
    if len(str(inside)) <= _CONTROL_DIR_MAX:
        return inside
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:20]
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    return base / f"knm-cp-{digest}"


def make_dirs(run_dir: Path) -> None:
    run_dir.mkdir(mode=0o700)
    for name in ("project", "inventory", "env", "artifacts", "home", "tmp", "keys"):
        (run_dir / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    control = control_dir(run_dir)
    if not control.is_relative_to(run_dir):
        remove_control_dir(run_dir)
    control.mkdir(mode=0o700)


def remove_control_dir(run_dir: Path) -> None:
    """Removes a control directory kept outside the run dir (the run dir's own goes with it)."""
    control = control_dir(run_dir)
    if not control.is_relative_to(run_dir):
        if control.is_symlink():
            control.unlink()
        else:
            shutil.rmtree(control, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    """A file only its owner (the run user, after ``hand_over``) can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def hand_over(run_dir: Path, user: RunUser) -> None:
    """The run directory becomes the run user's, for the run's life."""
    if not user.switched:
        return
    control = control_dir(run_dir)
    outside = [] if control.is_relative_to(run_dir) else [control]
    for path in [run_dir, *run_dir.rglob("*"), *outside]:
        os.lchown(path, user.uid, user.gid)


def take_back(run_dir: Path, user: RunUser) -> None:
    """Kept artifacts return to knm's user; the run user keeps nothing."""
    if user.switched:
        for path in [run_dir, *run_dir.rglob("*")]:
            with contextlib.suppress(OSError):
                os.lchown(path, os.geteuid(), os.getegid())


def _tools(settings: AnsibleSettings, tools: Toolchain | None) -> Toolchain:
    from knm.plugins.ansible.toolchain import direct

    return tools if tools is not None else direct(settings)


def runner_argv(
    settings: AnsibleSettings, run_dir: Path, ident: str, tools: Toolchain | None = None
) -> list[str]:
    # -p satisfies the CLI; with -b (the configured binary) the playbook comes from env/cmdline.
    chain = _tools(settings, tools)
    return [chain.python, "-m", "ansible_runner", "run", str(run_dir), "--ident", ident,
            "-p", "main.yml", "-b", chain.playbook, "-q"]  # fmt: skip


class RunProcess:
    """A process started with ``subprocess.Popen`` (uvloop cannot switch users in its own
    subprocess support), awaited from any event loop: a thread waits for its exit."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()

        def wait() -> None:
            code = popen.wait()
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(_settle, self._exited, code)

        threading.Thread(target=wait, name=f"knm-ansible-wait-{self.pid}", daemon=True).start()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


def _settle(future: asyncio.Future[int], code: int) -> None:
    if not future.done():
        future.set_result(code)


async def start(
    argv: list[str], env: dict[str, str], cwd: Path, user: RunUser, output: Path
) -> RunProcess:
    """Starts ``argv`` as the run user, its stdout and stderr going to ``output`` (knm's file,
    read afterwards: nothing needs reading while it runs)."""

    def spawn() -> subprocess.Popen[bytes]:
        fd = os.open(
            output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            return _popen(argv, env, cwd, user, fd)
        finally:
            os.close(fd)

    return RunProcess(await asyncio.to_thread(spawn))


def _popen(
    argv: list[str], env: dict[str, str], cwd: Path, user: RunUser, fd: int
) -> subprocess.Popen[bytes]:
    """Popen; a failure to start (the run user cannot execute ``argv[0]``) said in words."""
    try:
        return subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **user.popen_kwargs(),  # type: ignore[arg-type]
        )
    except OSError as exc:
        raise FeatureUnavailable(
            f"ansible unavailable: {user.name} cannot start {argv[0]}: "
            f"{exc.strerror or exc} ({exc.filename or argv[0]})"
        ) from None


def read_tail(path: Path, size: int) -> str:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read().decode(errors="replace")
    return ""


def run_processes(pid: int | None, mark: str, user: RunUser) -> list[psutil.Process]:
    """Every live process of a run: the tree under ``pid`` and the run user's marked ones."""
    found: dict[int, psutil.Process] = {}
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            found[root.pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info.get("uids")
        if uids is None or proc.pid in found or uids.real != user.uid:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARK) == mark:
                found[proc.pid] = proc
    return [proc for proc in found.values() if not process_gone(proc)]


def kill_run(pid: int | None, mark: str, user: RunUser, timeout: float = 10.0) -> None:
    """SIGKILL every process of the run, again until none is left (blocking: use a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        victims = run_processes(pid, mark, user)
        if not victims or time.monotonic() > deadline:
            break
        for proc in victims:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_until_gone(victims, 1.0)


async def syntax_check(
    settings: AnsibleSettings, content: str, tools: Toolchain | None = None
) -> str | None:
    """ansible-playbook's complaint about ``content``, "" when it passes, None on timeout."""
    chain = _tools(settings, tools)
    user = chain.user or await asyncio.to_thread(ensure_run_user, settings.run_user)
    root = runs_root_of(settings, chain)
    scratch = Path(tempfile.mkdtemp(prefix="syntax-", dir=root))
    mark = f"syntax-{scratch.name}"
    proc: RunProcess | None = None
    try:
        for name in ("home", "tmp"):
            (scratch / name).mkdir(mode=0o700)
        (scratch / "playbook.yml").write_text(content)
        hand_over(scratch, user)
        argv = [chain.playbook, "--syntax-check", "-i", "localhost,", "playbook.yml"]
        output = scratch / "output"
        env = environment(settings, scratch, mark, chain)
        proc = await start(argv, env, scratch, user, output)
        try:
            code = await asyncio.wait_for(proc.wait(), settings.syntax_check_timeout)
        except TimeoutError:
            return None
        if code == 0:
            return ""
        return _complaint(read_tail(output, 64 * 1024), scratch)
    finally:
        await asyncio.to_thread(kill_run, proc.pid if proc else None, mark, user)
        if proc is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        shutil.rmtree(scratch, ignore_errors=True)


def _complaint(text: str, scratch: Path) -> str:
    text = text.replace(f"{scratch}/", "").replace(str(scratch), ".")
    lines = [line.rstrip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith("[WARNING]")]
    message = "\n".join(kept).strip()
    for prefix in ("[ERROR]: ", "ERROR! "):
        message = message.removeprefix(prefix)
    return message or f"ansible-playbook --syntax-check failed with no message ({text[:200]})"
