"""The client-only install (``pip install ./client``) and the full one (``pip install .``) into
fresh venvs, from a copy of the checkout, as the README says to make them."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: What a client-only install may add to a fresh venv (issue #21), in bytes on disk.
CLIENT_BUDGET = 30 * 1000 * 1000
SERVER_ONLY = ("litestar", "asyncpg", "pluggy", "uvicorn", "asyncssh", "ansible-core")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(
    argv: list[str | Path], *, ok: bool = True, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    # Not this suite's PYTHONPATH: the venv's knm is the one under test.
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KNM_", "PYTHON"))}
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600,
                          check=False, env={**environ, **env}, cwd=cwd)  # fmt: skip
    if ok:
        assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the checkout: builds write build/ and egg-info beside the sources."""
    source = tmp_path / "knm"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", "tests"))  # fmt: skip
    return source


def _venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", path])
    return path


def _disk_usage(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for item in [path, *path.rglob("*")]:
        stat = item.lstat()
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_blocks * 512
    return total


def _installed(venv: Path) -> set[str]:
    listed = _run([venv / "bin" / "pip", "list", "--format=json", "--disable-pip-version-check"])
    return {entry["name"].lower() for entry in json.loads(listed.stdout)}


def _owners(venv: Path) -> dict[str, list[str]]:
    """Each installed file, with the distributions whose RECORD names it."""
    owners: dict[str, list[str]] = {}
    for record in venv.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        with record.open(newline="") as rows:
            for row in csv.reader(rows):
                owners.setdefault(row[0], []).append(record.parent.name.split("-")[0])
    return owners


def _refuses_serve(venv: Path) -> None:
    done = _run([venv / "bin" / "knm", "serve"], ok=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("knm serve: the knm server is not installed"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_client_only_install_runs_the_remote_commands_in_at_most_30_mb(
    tmp_path: Path, checkout: Path
) -> None:
    venv = _venv(tmp_path / "venv")
    fresh = _disk_usage(venv)
    _run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check",
          checkout / "client"])  # fmt: skip
    added = _disk_usage(venv) - fresh
    assert added <= CLIENT_BUDGET, f"the client-only install added {added / 1e6:.1f} MB"

    installed = _installed(venv)
    assert "kube-node-manager-client" in installed and "kube-node-manager" not in installed
    assert installed.isdisjoint(SERVER_ONLY)
    knm = venv / "bin" / "knm"
    assert "exit codes:" in _run([knm, "--help"]).stdout
    _run([knm, "login", "--help"])
    _run([venv / "bin" / "python", "-c", "import knm.client; from knm.client import Client"])
    # Nothing listens on port 9: a network error (4), from the client alone.
    done = _run([knm, "task", "list"], ok=False, KNM_URL="http://127.0.0.1:9", HOME=str(tmp_path))
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr
    _refuses_serve(venv)
    # The sources stay the checkout's: nothing was written beside knm/ but the build's own dirs.
    assert not list(checkout.glob("*.egg-info"))


def test_pip_install_dot_installs_the_server_beside_the_client_sharing_no_file(
    tmp_path: Path, checkout: Path
) -> None:
    venv = _venv(tmp_path / "venv")
    pip = venv / "bin" / "pip"
    # The README's command, from the checkout's root: the client comes from client/ by itself.
    _run([pip, "install", "--quiet", "--disable-pip-version-check", "."], cwd=checkout)
    installed = _installed(venv)
    assert {"kube-node-manager", "kube-node-manager-client", "litestar"} <= installed
    _run([pip, "check", "--disable-pip-version-check"])

    owners = _owners(venv)
    shared = {path: found for path, found in owners.items() if len(found) > 1}
    assert shared == {}
    assert owners["knm/__init__.py"] == ["kube_node_manager_client"]
    assert owners["knm/cli/main.py"] == ["kube_node_manager_client"]
    assert owners["knm/core/app.py"] == ["kube_node_manager"]
    assert sum(path.startswith("../../../bin/knm") for path in owners) == 1

    knm = venv / "bin" / "knm"
    assert "--no-runner" in _run([knm, "serve", "--help"]).stdout
    _run([venv / "bin" / "python", "-c", "import knm.core.app, knm.client; knm.create_app"])

    # Taking the server away leaves a working client, which says what is missing.
    _run([pip, "uninstall", "--yes", "--quiet", "--disable-pip-version-check", "kube-node-manager"])
    assert "exit codes:" in _run([knm, "--help"]).stdout
    _refuses_serve(venv)
