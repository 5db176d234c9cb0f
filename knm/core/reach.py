"""What another OS user must run, made reachable without opening anything knm does not own.

As root, knm runs the embedded PostgreSQL and ansible-playbook as unprivileged users. Their
programs live in knm's install: a venv, or an interpreter that may sit under a 0700 home
(pyenv under ``/root``). knm never changes the mode of a directory it does not own. Instead it
asks whether the user can reach what it must run (by running ``test`` as that user, so ACLs
and groups count exactly as the kernel counts them) and, where it cannot, mirrors the files
into a directory of knm's own that the user can reach: hard links where the file is already
readable by everyone and lies on the same filesystem (no bytes copied, nothing exposed that
its own mode did not already allow), copies otherwise.

A mirror is built beside its final place and renamed into it, so a reader never sees half of
one; its name carries a stamp of its sources, so an upgraded install gets a new mirror.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("knm.reach")

_TEST = next((p for p in ("/usr/bin/test", "/bin/test") if os.path.exists(p)), "test")


def switching(uid: int) -> bool:
    """Whether running as ``uid`` means switching users (only root can, and only then)."""
    return os.geteuid() == 0 and uid != 0


def user_can(uid: int, gid: int, path: Path | str, access: str = "x") -> bool:
    """Whether the user ``uid`` can reach ``path`` with ``access`` (``x``: execute or
    traverse, ``r``: read), counting every parent directory on the way."""
    if not switching(uid):
        return os.access(path, os.X_OK if access == "x" else os.R_OK)
    try:
        completed = subprocess.run(
            [_TEST, f"-{access}", str(path)],
            user=uid,
            group=gid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def first_blocked(uid: int, gid: int, path: Path | str) -> Path | None:
    """The first directory on the way to ``path`` that ``uid`` cannot pass through (for error
    messages: it names what to change, or why a mirror is needed)."""
    target = Path(path).absolute()
    for parent in [*reversed(target.parents), target]:
        if parent.is_dir() and not user_can(uid, gid, parent, "x"):
            return parent
    return None


def describe(path: Path) -> str:
    """``/root (mode 0700, owner root)``: what a message needs to say about a blocking dir."""
    try:
        info = path.stat()
    except OSError:
        return str(path)
    import pwd

    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return f"{path} (mode {stat.S_IMODE(info.st_mode):04o}, owner {owner})"


def own_dir(path: Path, mode: int) -> Path:
    """Creates ``path`` (a directory of knm's own) with ``mode``; sets the mode only when knm's
    user owns it, so a directory someone else made is left as it is."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
            path.chmod(mode)
    return path


def data_dir(path: Path) -> Path:
    """knm's data dir, created if missing: as root mode 0711 (PostgreSQL's and Ansible's
    users pass through to what is theirs or is mirrored for them; no one else can list it),
    otherwise 0700. Its secrets are files of mode 0600."""
    return own_dir(path, 0o711 if os.geteuid() == 0 else 0o700)


def stamp(*parts: object) -> str:
    """A short name for a set of sources: a new install or version gives a new mirror."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _place(source: Path, target: Path) -> None:
    """Hard-links ``source`` at ``target`` when that exposes nothing new, else copies it with
    read (and, for executables, execute) access for everyone."""
    info = source.stat()
    mode = stat.S_IMODE(info.st_mode)
    wanted = mode | 0o444 | (0o111 if mode & 0o100 else 0)
    if mode == wanted:
        try:
            os.link(source, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
    shutil.copyfile(source, target, follow_symlinks=True)
    os.chmod(target, wanted & 0o755)
    # Python's cached bytecode is valid only beside a source of the same mtime.
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def mirror(pairs: Iterable[tuple[Path, Path]], dest: Path) -> Path:
    """Builds ``dest`` from ``(source, relative target)`` pairs, all readable by everyone.

    Symbolic links are followed (their targets may be the unreachable part). Built in a
    sibling directory and renamed into place; a ``dest`` that exists is taken as complete."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Unique per build: another process, or another thread of this one, may build it too.
    building = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for source, relative in pairs:
            target = building / relative
            if source.is_dir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if not target.exists():
                _place(source, target)
        for directory in [building, *(p for p in building.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)
        try:
            building.rename(dest)
        except OSError:
            if not dest.is_dir():  # another process won the race with the same mirror
                raise
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("mirrored files for unprivileged users into %s", dest)
    return dest


def tree(source: Path, into: Path | str = "") -> list[tuple[Path, Path]]:
    """Every file under ``source`` as ``mirror`` pairs placed under ``into``."""
    pairs: list[tuple[Path, Path]] = []
    for root, dirs, files in os.walk(source, followlinks=False):
        base = Path(root)
        relative = Path(into) / base.relative_to(source)
        pairs.append((base, relative))
        for name in dirs:
            if (base / name).is_symlink():  # a link to a directory: mirror what it holds
                pairs += tree((base / name).resolve(), relative / name)
        for name in files:
            path = base / name
            if not path.exists():  # a dangling link
                continue
            pairs.append((path, relative / name))
    return pairs


def prune(parent: Path, keep: str, prefix: str) -> None:
    """Removes older mirrors named ``prefix*`` in ``parent`` beside the one named ``keep``."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if entry.name.startswith(prefix) and entry.name != keep and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
