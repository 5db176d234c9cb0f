"""client/build_backend.py: the server's wheel, built in a checkout, requires the checkout's
client by its path; elsewhere by name and version."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
METADATA = """\
Metadata-Version: 2.1
Name: kube-node-manager
Version: 0.1.0
Requires-Dist: kube-node-manager-client==0.1.0
Requires-Dist: litestar<3,>=2.25
Provides-Extra: dev
Requires-Dist: pytest>=8.3; extra == "dev"

Requires-Dist: kube-node-manager-client==0.1.0 (the README, not a header)
"""
REFERENCE = "kube-node-manager-client @ file:///src/knm/client"


@pytest.fixture(scope="module")
def backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_backend", ROOT / "client" / "build_backend.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_client_requirement_header_alone_becomes_the_reference(backend: ModuleType) -> None:
    rewritten = backend._rewritten(METADATA, REFERENCE)
    assert rewritten == METADATA.replace(
        "Requires-Dist: kube-node-manager-client==0.1.0\nRequires-Dist: litestar",
        f"Requires-Dist: {REFERENCE}\nRequires-Dist: litestar",
    )


def test_metadata_without_the_client_requirement_is_refused(backend: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="must require kube-node-manager-client once"):
        backend._rewritten(METADATA.replace("kube-node-manager-client==", "other=="), REFERENCE)


def test_a_checkout_is_required_by_path_and_a_tree_without_the_client_by_name(
    backend: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "client").mkdir()
    # An sdist carries the backend (MANIFEST.in) but not the client's project.
    (tmp_path / "client" / "build_backend.py").write_text("")
    assert backend._client_requirement() is None
    (tmp_path / "client" / "pyproject.toml").write_text("")
    assert backend._client_requirement() == (
        f"kube-node-manager-client @ {(tmp_path / 'client').resolve().as_uri()}"
    )


def digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_a_rewritten_wheel_records_its_new_metadata(backend: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / "kube_node_manager-0.1.0-py3-none-any.whl"
    files = {
        "knm/core/__init__.py": b"",
        "kube_node_manager-0.1.0.dist-info/METADATA": METADATA.encode(),
        "kube_node_manager-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
    }
    record = "".join(f"{name},{digest(data)},{len(data)}\n" for name, data in files.items())
    record += "kube_node_manager-0.1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
        out.writestr("kube_node_manager-0.1.0.dist-info/RECORD", record)

    backend._rewrite_wheel(wheel, REFERENCE)

    with zipfile.ZipFile(wheel) as done:
        names = done.namelist()
        metadata = done.read("kube_node_manager-0.1.0.dist-info/METADATA")
        rows = list(csv.reader(io.StringIO(done.read(names[-1]).decode())))
        unchanged = {name: done.read(name) for name in files if not name.endswith("METADATA")}
    assert names[-1] == "kube_node_manager-0.1.0.dist-info/RECORD"
    assert metadata.decode() == backend._rewritten(METADATA, REFERENCE)
    assert unchanged == {n: d for n, d in files.items() if not n.endswith("METADATA")}
    assert [
        "kube_node_manager-0.1.0.dist-info/METADATA",
        digest(metadata),
        str(len(metadata)),
    ] in rows
    assert not wheel.with_name(wheel.name + ".part").exists()


def test_the_client_builds_no_sdist(backend: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="builds wheels only"):
        backend.client.build_sdist(str(tmp_path))
