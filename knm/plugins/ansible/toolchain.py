"""What the run user runs: knm's own Ansible when it can reach it, else a mirror of it.

Three things run as the run user: ``python -m ansible_runner`` (knm's interpreter), the
ansible-playbook it starts, and the interpreter in that script's shebang; ansible-runner's
event callback is a file of its own package. All must be reachable by the run user, which
an ordinary install does not promise: pyenv under a 0700 ``/root``, a venv made from it.

knm decides by trying, once per app and settings (at start-up, in the background): it runs
the interpreter as the run user, with a clean environment, to import ``ansible`` and
``ansible_runner``, and asks whether that user can execute ansible-playbook and its
interpreter. When it cannot, knm mirrors its interpreter and Ansible's distributions under
the data dir (``mirror.py``) and tries that. When nothing works the reason is logged, shown by
``GET /plugins``, answered with 503 by the routes that need Ansible, and given as each node's
error by a run. An operator's ``binary_path`` is used as it is: it must be reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from knm.core import reach
from knm.core.errors import FeatureUnavailable
from knm.plugins.ansible import mirror, runner
from knm.plugins.ansible.schemas import AnsibleSettings, default_binary

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.ansible")

_IMPORTS = "import ansible, ansible.cli.playbook, ansible_runner"
#: Seconds before an "unavailable" answer is tried again (someone may have fixed the cause).
RETRY = 30.0


class Toolchain(msgspec.Struct, frozen=True, kw_only=True):
    #: The interpreter ``-m ansible_runner`` runs with.
    python: str
    playbook: str
    #: PATH entries before the system's.
    path: tuple[str, ...] = ()
    #: Variables the interpreter needs (``LD_LIBRARY_PATH`` for a mirrored shared build).
    env: dict[str, str] = msgspec.field(default_factory=dict)
    #: The mirror in use, "" for knm's own install.
    mirror: str = ""
    user: runner.RunUser | None = None
    #: Where runs get their directories: ``temp_dir``, else ``<data_dir>/ansible-runs``.
    runs: str = ""


class Unavailable(Exception):
    """Ansible cannot run here; the message names the cause and what to change."""


def direct(settings: AnsibleSettings, user: runner.RunUser | None = None) -> Toolchain:
    """knm's own interpreter and the configured ansible-playbook, as installed."""
    path = (str(Path(settings.binary_path).parent), str(Path(sys.executable).parent))
    return Toolchain(python=sys.executable, playbook=settings.binary_path, path=path, user=user)


def mirrored(settings: AnsibleSettings, user: runner.RunUser, runtime: Path) -> Toolchain:
    dest = mirror.build(runtime)
    bin_dir = dest / "bin"
    default = settings.binary_path == default_binary()
    playbook = str(bin_dir / "ansible-playbook") if default else settings.binary_path
    env = {}
    libdir = mirror.library_dir(dest)
    if libdir is not None:
        env["LD_LIBRARY_PATH"] = str(libdir)
    return Toolchain(
        python=str(mirror.python_of(dest)), playbook=playbook, path=(str(bin_dir),), env=env,
        mirror=str(dest), user=user,
    )  # fmt: skip


def resolve(settings: AnsibleSettings, data_dir: Path) -> Toolchain:
    """The toolchain the run user can run, or ``Unavailable``. Blocking: use a thread."""
    try:
        user = runner.ensure_run_user(settings.run_user)
    except (runner.RunUserError, OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"ansible unavailable: {exc}") from None
    runs = runs_dir(settings, data_dir, user)
    chain = _interpreter(settings, data_dir, user, Path(runs))
    return msgspec.structs.replace(chain, runs=runs)


def runs_dir(settings: AnsibleSettings, data_dir: Path, user: runner.RunUser) -> str:
    """``temp_dir`` (else ``<data_dir>/ansible-runs``), made if missing, or ``Unavailable``.

    Runs hold secrets while they last, so only a directory of knm's own user will do (a
    shared ``/tmp`` path another user made first is refused), and the run user must be able to
    pass through to it."""
    path = Path(settings.temp_dir) if settings.temp_dir else data_dir / "ansible-runs"
    fix = "set temp_dir to a directory of knm's own (empty: <data_dir>/ansible-runs)"
    try:
        if not settings.temp_dir:
            reach.data_dir(data_dir)
        runner.runs_root(path)
        owner = path.stat().st_uid
    except OSError as exc:
        raise Unavailable(
            f"ansible unavailable: cannot use temp_dir {path}: {exc.strerror or exc}; {fix}"
        ) from None
    if owner != os.geteuid():
        raise Unavailable(
            f"ansible unavailable: temp_dir {reach.describe(path)} belongs to another user; {fix}"
        )
    if user.switched:
        blocked = reach.first_blocked(user.uid, user.gid, path)
        if blocked is not None:
            raise Unavailable(
                f"ansible unavailable: {user.name} cannot pass through "
                f"{reach.describe(blocked)} to reach temp_dir {path}; {fix}"
            )
    return str(path)


def _interpreter(
    settings: AnsibleSettings, data_dir: Path, user: runner.RunUser, scratch: Path
) -> Toolchain:
    own = direct(settings, user)
    problem = problem_with(own, user, scratch)
    if problem is None:
        reach.prune(data_dir / "runtime", "", mirror.PREFIX)
        return own
    default = settings.binary_path == default_binary()
    if not user.switched:
        raise Unavailable(f"ansible unavailable: {problem}")
    if not default and problem_with_binary(settings.binary_path, user) is not None:
        raise Unavailable(
            f"ansible unavailable: {problem_with_binary(settings.binary_path, user)}; make it "
            f"reachable by {user.name}, or clear binary_path to use the ansible-core installed "
            "with knm"
        )
    runtime = data_dir / "runtime"
    try:
        reach.data_dir(data_dir)
        reach.own_dir(runtime, 0o711)
        chain = mirrored(settings, user, runtime)
    except (mirror.MissingDistribution, OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(
            f"ansible unavailable: {problem}; and knm could not mirror its Python into "
            f"{runtime}: {exc}"
        ) from None
    still = problem_with(chain, user, scratch)
    if still is not None:
        raise Unavailable(
            f"ansible unavailable: {problem}; the mirror in {chain.mirror} does not work "
            f"either: {still}; set binary_path to an ansible-playbook {user.name} can run, or "
            f"install knm in a virtualenv {user.name} can read"
        )
    log.info("%s; ansible runs from a mirror of knm's Python in %s", problem, chain.mirror)
    return chain


def problem_with(chain: Toolchain, user: runner.RunUser, scratch: Path) -> str | None:
    """Why ``user`` cannot run ``chain`` (None when it can). ``scratch``: a directory of knm's
    own the user can pass through (the runs directory), for the import check's home."""
    for program in (chain.python, chain.playbook):
        problem = problem_with_binary(program, user)
        if problem is not None:
            return problem
    interpreters = [chain.python]
    shebang = _shebang(chain.playbook)
    if shebang is not None and shebang != chain.python and "python" in Path(shebang).name:
        interpreters.append(shebang)
    for python in interpreters:
        problem = _import_problem(python, chain, user, scratch)
        if problem is not None:
            return problem
    return None


def problem_with_binary(path: str, user: runner.RunUser) -> str | None:
    """Why ``user`` cannot execute ``path`` or the interpreter of its shebang."""
    for program in filter(None, (path, _shebang(path))):
        if not os.path.exists(program):
            return f"{program} does not exist"
        if reach.user_can(user.uid, user.gid, program, "x"):
            continue
        real = os.path.realpath(program)
        named = program if real == program else f"{program} (a link to {real})"
        blocked = reach.first_blocked(user.uid, user.gid, real)
        where = f"{reach.describe(blocked)} is in the way" if blocked else "it is not executable"
        return f"{user.name} cannot execute {named}: {where}"
    return None


def _shebang(path: str) -> str | None:
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        first = handle.readline(512)
        if first.startswith(b"#!"):
            words = first[2:].decode(errors="replace").split()
            if words and not words[0].endswith("/env"):
                return words[0]
    return None


#: The import check's scratch homes: a process killed during a check leaves its home behind,
#: which the next check removes once it is older than any check can last.
PROBE_PREFIX = "probe-"
PROBE_STALE = 600.0


def _import_problem(
    python: str, chain: Toolchain, user: runner.RunUser, scratch: Path
) -> str | None:
    if not user.switched and python == sys.executable:
        missing = [n for n in ("ansible", "ansible_runner") if importlib.util.find_spec(n) is None]
        return f"{', '.join(missing)} not installed for {python}" if missing else None
    # Importing ansible's CLI makes its local temp dir in HOME: a scratch one of the user's, in
    # knm's own runs directory (not the system's /tmp, where a killed check would leave it).
    _prune_probes(scratch)
    home = Path(tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=scratch))
    try:
        if user.switched:
            os.chown(home, user.uid, user.gid)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **chain.env}
        completed = subprocess.run(
            [python, "-c", _IMPORTS], env=env, cwd="/", stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120, check=False, **user.popen_kwargs(),
        )  # type: ignore[call-overload]  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{user.name} cannot run {python}: {exc}"
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if completed.returncode == 0:
        return None
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    return f"{user.name} cannot import Ansible with {python}: {' '.join(lines[-2:])[-300:]}"


def _prune_probes(scratch: Path) -> None:
    cutoff = time.time() - PROBE_STALE
    with contextlib.suppress(OSError):
        for entry in scratch.iterdir():
            with contextlib.suppress(OSError):
                if entry.name.startswith(PROBE_PREFIX) and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)


class Tools:
    """One app's answers, per (binary_path, run_user): a Toolchain, or why there is none."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._answers: dict[tuple[str, ...], tuple[float, Toolchain | str]] = {}
        self._checking: dict[tuple[str, ...], asyncio.Future[Toolchain | str]] = {}

    async def check(self, settings: AnsibleSettings) -> Toolchain | str:
        key = _key(settings)
        known = self._answers.get(key)
        if known is not None and _still_good(*known):
            return known[1]
        future = self._checking.get(key)
        if future is None:
            future = self._checking[key] = asyncio.ensure_future(self._check(key, settings))
            future.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(future)

    async def get(self, settings: AnsibleSettings) -> Toolchain:
        """The toolchain, or ``FeatureUnavailable`` (503) saying why there is none."""
        answer = await self.check(settings)
        if isinstance(answer, str):
            raise FeatureUnavailable(answer)
        return answer

    def forget(self, settings: AnsibleSettings) -> None:
        """Checks again next time (a start failed although the check had passed)."""
        self._answers.pop(_key(settings), None)

    async def _check(self, key: tuple[str, ...], settings: AnsibleSettings) -> Toolchain | str:
        answer: Toolchain | str
        try:
            answer = await asyncio.to_thread(resolve, settings, self.data_dir)
        except Unavailable as exc:
            answer = str(exc)
        before = self._answers.get(key)
        if isinstance(answer, str) and (before is None or before[1] != answer):
            log.warning("%s", answer)
        self._answers[key] = (time.monotonic(), answer)
        return answer


def _key(settings: AnsibleSettings) -> tuple[str, ...]:
    return (settings.binary_path, settings.run_user, settings.temp_dir)


def _still_good(when: float, answer: Toolchain | str) -> bool:
    if isinstance(answer, str):
        return time.monotonic() - when < RETRY
    return not answer.mirror or os.path.isdir(answer.mirror)


def for_app(knm: Knm) -> Tools:
    """This app's toolchain checks, kept in its registry's state slot."""
    return knm.registry.state_for(Tools, lambda: Tools(knm.config.resolved_data_dir()))


async def unavailable(knm: Knm) -> str | None:
    """Why Ansible cannot run in this app now (None when it can, or while it is off)."""
    settings: AnsibleSettings = await knm.features.settings("ansible")
    if not settings.enabled:
        return None
    answer = await for_app(knm).check(settings)
    return answer if isinstance(answer, str) else None


@contextlib.asynccontextmanager
async def lifespan(knm: Knm) -> AsyncIterator[None]:
    """Checks at start-up, in the background, so the first playbook saved need not wait."""
    check: asyncio.Future[str | None] = asyncio.ensure_future(unavailable(knm))
    try:
        yield
    finally:
        check.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await check
