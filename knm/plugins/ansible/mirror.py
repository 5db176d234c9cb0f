"""A Python the run user can reach: knm's interpreter and Ansible's distributions, mirrored.

When the run user cannot reach knm's interpreter (pyenv under a 0700 ``/root``, a venv made
from it), knm builds ``<data_dir>/runtime/python-<stamp>/`` with ``knm.core.reach.mirror``::

    bin/python3.X                  the base interpreter (``sys.base_prefix``'s, not the venv's)
    bin/ansible-playbook, ansible  ansible-core's entry points (libexec/) run by the python
                                   above, from shell scripts (see ``_entry_point``)
    lib/libpython3.X.so.1.0        when the interpreter is built shared (``LD_LIBRARY_PATH``)
    lib/python3.X/                 the standard library, without site-packages and what
                                   nothing of Ansible's imports (tests, IDLE, Tk, ensurepip)
    <its site dir>/                only the distributions ``ansible-core`` and
                                   ``ansible-runner`` need, wherever knm found them

The mirrored interpreter finds its standard library beside itself, as a relocated install
does, and its site dir from that prefix: none of knm's own packages (nor knm) is in it. The
stamp covers the interpreter's real path and version and every mirrored distribution's name
and version, so an upgrade gets a new mirror; older ones are removed.
"""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from knm.core import reach

ROOTS = ("ansible-core", "ansible-runner")
PREFIX = "python-"
#: Bumped when the mirror's layout changes, so an old layout is never reused.
_LAYOUT = 4
#: The ansible-core commands a run uses: the playbook, and ``ansible`` as ssh's password helper.
_ENTRY_POINTS = {
    "ansible-playbook": "ansible.cli.playbook:main",
    "ansible": "ansible.cli.adhoc:main",
}
#: Parts of the standard library Ansible never imports (and the static libpython in config-*).
_SKIPPED = {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo",
            "ensurepip", "lib2to3", "__phello__"}  # fmt: skip
_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


class MissingDistribution(Exception):
    """A distribution Ansible needs is not installed where knm's Python looks."""


def closure(roots: tuple[str, ...] = ROOTS) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, theirs included (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise MissingDistribution(f"{name} is not installed") from None
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def interpreter() -> Path:
    """The base interpreter's real file (a venv's python is a link to it, or a copy)."""
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    versioned = Path(sys.base_prefix) / "bin" / _VERSION
    return (versioned if versioned.exists() else base).resolve()


def name_for(dists: list[metadata.Distribution]) -> str:
    versions = [f"{d.metadata['Name']}=={d.version}" for d in dists]
    return PREFIX + reach.stamp(_LAYOUT, str(interpreter()), sys.version, versions)


def build(runtime: Path) -> Path:
    """The mirror for this interpreter and Ansible under ``runtime`` (reused when its stamp
    matches; older mirrors are removed). Blocking: run it in a thread."""
    dists = closure()
    name = name_for(dists)
    dest = runtime / name
    if not dest.is_dir():
        runtime.mkdir(parents=True, exist_ok=True)
        # Unique per build: two apps of one process may build at once, in two threads.
        scratch = Path(tempfile.mkdtemp(prefix=".gen-", dir=runtime))
        try:
            reach.mirror(_pairs(dest, dists, scratch), dest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    reach.prune(runtime, name, PREFIX)
    return dest


def python_of(dest: Path) -> Path:
    return dest / "bin" / _VERSION


def library_dir(dest: Path) -> Path | None:
    """Where the mirrored libpython is (for ``LD_LIBRARY_PATH``), None when not shared."""
    return dest / "lib" if _shared_library() is not None else None


def _pairs(
    dest: Path, dists: list[metadata.Distribution], scratch: Path
) -> Iterator[tuple[Path, Path]]:
    yield interpreter(), Path("bin") / _VERSION
    shared = _shared_library()
    if shared is not None:
        yield shared, Path("lib") / shared.name
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix,
                                            "platbase": sys.base_prefix})["stdlib"])  # fmt: skip
    target = Path("lib") / _VERSION
    yield stdlib, target
    for entry in sorted(stdlib.iterdir()):
        if entry.name in _SKIPPED or entry.name.startswith("config-"):
            continue
        if entry.is_dir():
            yield from _without_optimized(reach.tree(entry, target / entry.name))
        elif entry.exists():
            yield entry, target / entry.name
    site = _site_dir(dest).relative_to(dest)
    for dist in dists:
        yield from _files_of(dist, site)
    for name, target in _ENTRY_POINTS.items():
        yield from _entry_point(dest, scratch, name, target)


def _entry_point(dest: Path, scratch: Path, name: str, target: str) -> Iterator[tuple[Path, Path]]:
    """``bin/<name>``: a shell script running ansible-core's entry point with the mirrored
    python. It sets ``LD_LIBRARY_PATH`` itself because ansible-runner starts ansible-playbook
    under ``ssh-agent``, which is setgid on Debian and Ubuntu: the kernel's secure mode drops
    ``LD_*`` from the environment of everything under it. ``sys.argv[0]`` is the script's
    path, where Ansible looks for ``ansible`` beside it (its ``SSH_ASKPASS`` for passwords)."""
    module, function = target.split(":")
    entry = scratch / f"{name}.entry"  # not importable: its directory is first on sys.path
    entry.write_text(
        "import sys\n"
        f"sys.argv[0] = {str(dest / 'bin' / name)!r}\n"
        f"from {module} import {function}\n"
        f"sys.exit({function}())\n"
    )
    entry.chmod(0o644)
    yield entry, Path("libexec") / entry.name
    libdir = library_dir(dest)
    export = ""
    if libdir is not None:
        export = f'LD_LIBRARY_PATH="{libdir}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"\n'
        export += "export LD_LIBRARY_PATH\n"
    script = scratch / name
    script.write_text(
        f'#!/bin/sh\n{export}exec "{python_of(dest)}" "{dest / "libexec" / entry.name}" "$@"\n'
    )
    script.chmod(0o755)
    yield script, Path("bin") / name


def _without_optimized(pairs: list[tuple[Path, Path]]) -> Iterator[tuple[Path, Path]]:
    """Leaves out bytecode only ``python -O`` reads."""
    for source, relative in pairs:
        if ".opt-" not in source.name:
            yield source, relative


def _shared_library() -> Path | None:
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    libdir = sysconfig.get_config_var("LIBDIR")
    if not name or not libdir:
        return None
    path = Path(libdir) / name
    return path if path.exists() else None


def _site_dir(dest: Path) -> Path:
    """The site dir the mirrored interpreter will read with ``dest`` as its prefix, as that
    interpreter itself computes it (Debian's reads ``dist-packages``, others ``site-packages``)."""
    completed = subprocess.run(
        [str(interpreter()), "-I", "-S", "-c",
         "import site, sys; print('\\n'.join(site.getsitepackages([sys.argv[1]])))", str(dest)],
        capture_output=True, text=True, check=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    found = [Path(line) for line in completed.stdout.splitlines() if line]
    preferred = dest / "lib" / _VERSION / "site-packages"
    return preferred if preferred in found or not found else found[0]


def _files_of(dist: metadata.Distribution, site: Path) -> Iterator[tuple[Path, Path]]:
    """A distribution's installed files (its RECORD) as mirror pairs under ``site``; the
    scripts it put in ``bin`` are left out (the mirror writes its own)."""
    base = Path(str(dist.locate_file("")))
    files = dist.files
    if files is None:  # no RECORD: its top-level packages and its metadata directory
        yield from _untracked(dist, base, site)
        return
    for file in files:
        if ".." in file.parts:
            continue
        source = base / file
        if source.exists() and ".opt-" not in source.name:
            yield source, site / file


def _untracked(dist: metadata.Distribution, base: Path, site: Path) -> Iterator[tuple[Path, Path]]:
    meta = Path(str(getattr(dist, "_path", "")))
    names = (dist.read_text("top_level.txt") or "").split()
    for name in names:
        for candidate in (base / name, base / f"{name}.py"):
            if candidate.is_dir():
                yield from reach.tree(candidate, site / name)
            elif candidate.is_file():
                yield candidate, site / candidate.name
    if meta.is_dir():
        yield from reach.tree(meta, site / meta.name)
