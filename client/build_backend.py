"""The PEP 517 backends of knm's two distributions: setuptools', plus what one tree split in two
needs. Both distributions build from the one ``knm/`` package at the repository's root.

- ``client`` builds kube-node-manager-client (this directory) from the modules it owns in
  ``../knm``: wheels and editable installs (``pip install ./client``, ``pip wheel ./client``), but
  no sdist — setuptools would make one without the sources, which live outside this directory.
- ``server`` builds kube-node-manager (the repository's root), which requires the client. Built
  in a checkout, its wheel names the checkout's client directory
  (``kube-node-manager-client @ file:///.../client``), so ``pip install .`` installs both from a
  fresh clone — as poetry-core does for a path dependency. Built where ``client/`` is absent
  (from the sdist, or a copy without it), and for editable installs (``pip install -e ./client
  -e .`` keeps the client editable too), it requires the client by name and version, from an
  index or a wheelhouse.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from setuptools import build_meta as _setuptools

CLIENT = "kube-node-manager-client"
_REQUIRES_CLIENT = re.compile(r"Requires-Dist: *kube[-_.]node[-_.]manager[-_.]client\b[^;]*$", re.I)


def _client_requirement() -> str | None:
    """The direct reference to the checkout's client, or None where there is none.

    PEP 517 runs the hooks in the project's directory: the repository's root for ``server``.
    """
    client = Path.cwd() / "client"
    if (client / "pyproject.toml").is_file() and (client / "build_backend.py").is_file():
        return f"{CLIENT} @ {client.resolve().as_uri()}"
    return None


def _rewritten(metadata: str, requirement: str) -> str:
    headers, blank, body = metadata.partition("\n\n")
    lines = headers.split("\n")
    found = [i for i, line in enumerate(lines) if _REQUIRES_CLIENT.match(line)]
    if len(found) != 1:
        raise RuntimeError(f"pyproject.toml must require {CLIENT} once (found {len(found)})")
    lines[found[0]] = f"Requires-Dist: {requirement}"
    return "\n".join(lines) + blank + body


def _rewrite_dist_info(directory: Path, requirement: str) -> None:
    path = directory / "METADATA"
    path.write_text(_rewritten(path.read_text(encoding="utf-8"), requirement), encoding="utf-8")


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _rewrite_wheel(wheel: Path, requirement: str) -> None:
    staged = wheel.with_name(wheel.name + ".part")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(staged, "w") as target:
        infos = source.infolist()
        dist_info = next(
            i.filename.split("/")[0] for i in infos if i.filename.endswith(".dist-info/METADATA")
        )
        metadata_name, record_name = f"{dist_info}/METADATA", f"{dist_info}/RECORD"
        metadata = _rewritten(source.read(metadata_name).decode(), requirement).encode()
        rows = list(csv.reader(io.StringIO(source.read(record_name).decode())))
        for row in rows:
            if row and row[0] == metadata_name:
                row[1:3] = [_digest(metadata), str(len(metadata))]
        record = io.StringIO()
        csv.writer(record, lineterminator="\n").writerows(rows)
        for info in infos:
            if info.filename == record_name:
                continue
            target.writestr(info, metadata if info.filename == metadata_name else source.read(info))
        # RECORD stays last, as wheels have it.
        target.writestr(source.getinfo(record_name), record.getvalue().encode())
    shutil.move(staged, wheel)


def _prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:
    name = _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)
    if requirement := _client_requirement():
        _rewrite_dist_info(Path(metadata_directory, name), requirement)
    return name


def _build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    if requirement := _client_requirement():
        _rewrite_wheel(Path(wheel_directory, name), requirement)
    return name


def _no_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    raise RuntimeError(
        f"{CLIENT} builds wheels only (its sources live outside client/): "
        "pip wheel ./client, or pip install ./client"
    )


_COMMON = {
    name: getattr(_setuptools, name)
    for name in (
        "get_requires_for_build_wheel",
        "get_requires_for_build_editable",
        "prepare_metadata_for_build_editable",
        "build_editable",
    )
}

client = SimpleNamespace(
    **_COMMON,
    prepare_metadata_for_build_wheel=_setuptools.prepare_metadata_for_build_wheel,
    build_wheel=_setuptools.build_wheel,
    build_sdist=_no_sdist,
)

server = SimpleNamespace(
    **_COMMON,
    get_requires_for_build_sdist=_setuptools.get_requires_for_build_sdist,
    prepare_metadata_for_build_wheel=_prepare_metadata_for_build_wheel,
    build_wheel=_build_wheel,
    build_sdist=_setuptools.build_sdist,
)
