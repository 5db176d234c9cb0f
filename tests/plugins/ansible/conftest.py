"""Fixtures of the Ansible plugin's tests: a real sshd fleet, a cluster of it, run helpers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from knm.core.processes import process_gone
from knm.plugins.ansible import toolchain
from knm.plugins.ansible.schemas import AnsibleSettings
from knm.plugins.ansible.toolchain import Toolchain
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.ssh import SshdNotInstalledError, SshFleet, find_sshd
from knm.testing.tasks import FleetRunner

Runner = Callable[..., Awaitable[dict[str, Any]]]
CLUSTER = "ansible-fleet"


class Fleet(msgspec.Struct, kw_only=True):
    sshd: Any
    cluster_name: str
    credential_id: int
    key_credential_id: int
    nodes: list[str]
    refused: str


@pytest.fixture(scope="module")
def outside_tmp() -> Iterator[Path]:
    """A directory the run user can reach (pytest's own tmp dirs are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="knm-ansible-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def data_dir(outside_tmp: Path) -> Path:
    """knm's data dir as knm keeps it as root: others may pass through it (to the mirrored
    Python in ``runtime/``), not list it; its secrets are 0600."""
    path = outside_tmp / "data"
    path.mkdir(mode=0o711)
    path.chmod(0o711)
    secret = path / "secret.txt"
    secret.write_text("knm-data-dir-secret\n")
    secret.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def tools(data_dir: Path) -> Toolchain:
    """What the run user runs here, as the app decides it (a mirror when /root is 0700)."""
    return toolchain.resolve(AnsibleSettings(), data_dir)


@pytest.fixture(scope="module")
def knm_config_overrides(data_dir: Path) -> dict[str, Any]:
    return {"data_dir": str(data_dir)}


@pytest.fixture(scope="module")
def sshd_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    if os.geteuid() != 0:
        pytest.skip("the SSH fleet needs root (it starts sshd and creates a user)")
    try:
        find_sshd()
    except SshdNotInstalledError as exc:
        pytest.skip(str(exc))
    with SshFleet(tmp_path_factory.mktemp("ansible-fleet"), nodes=3) as fleet:
        yield fleet


@pytest.fixture(scope="module")
async def fleet(
    sshd_fleet: SshFleet, knm_client: ApiClient, admin_headers: dict[str, str], outside_tmp: Path
) -> Fleet:
    settings = {"temp_dir": str(outside_tmp / "runs"), "timeout": 120}
    assert_envelope(
        await knm_client.put("/features/automation/ansible", json=settings, headers=admin_headers),
        200,
    )
    password = {"name": "fleet-password", "username": sshd_fleet.username,
                "auth_type": "password", "password": sshd_fleet.password}  # fmt: skip
    key = {"name": "fleet-encrypted-key", "username": sshd_fleet.username,
           "auth_type": "private_key", "private_key": sshd_fleet.encrypted_private_key_pem,
           "passphrase": sshd_fleet.key_passphrase}  # fmt: skip
    ids = []
    for body in (password, key):
        response = await knm_client.post("/credentials", json=body, headers=admin_headers)
        ids.append(assert_envelope(response, 201)["data"]["id"])
    roles = ["control-plane", "worker", "worker"]
    nodes = [
        {"name": n.name, "address": n.address, "port": n.port,
         "labels": {f"node-role.kubernetes.io/{role}": "", "zone": f"z{i}"}}
        for i, (n, role) in enumerate(zip(sshd_fleet.nodes, roles, strict=True))
    ]  # fmt: skip
    refused = sshd_fleet.refused_node()
    nodes.append({"name": refused.name, "address": refused.address, "port": refused.port})
    body = {"name": CLUSTER, "kind": "static", "nodes": nodes}
    assert_envelope(await knm_client.post("/clusters", json=body, headers=admin_headers), 201)
    return Fleet(
        sshd=sshd_fleet,
        cluster_name=CLUSTER,
        credential_id=ids[0],
        key_credential_id=ids[1],
        nodes=[n.name for n in sshd_fleet.nodes],
        refused=refused.name,
    )


@pytest.fixture(scope="module")
def add_playbook(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> Callable[..., Any]:
    async def add(name: str, content: str) -> int:
        body = {"name": name, "content": content, "category": "test"}
        response = await knm_client.post(
            "/automation/ansible/playbooks", json=body, headers=admin_headers
        )
        return assert_envelope(response, 201)["data"]["id"]

    return add


@pytest.fixture(scope="module")
def ansible_runner(knm_fleet_runner: Callable[..., FleetRunner], fleet: Fleet) -> FleetRunner:
    return knm_fleet_runner(
        "ansible", fleet, path="run", status_path="/automation/ansible/status/{task_id}",
        deadline=100,
    )  # fmt: skip


@pytest.fixture(scope="module")
def start_run(ansible_runner: FleetRunner) -> Runner:
    return ansible_runner.start


@pytest.fixture(scope="module")
def run_playbook(ansible_runner: FleetRunner) -> Runner:
    return ansible_runner.run


def sleeping_on(fleet: Fleet) -> list[psutil.Process]:
    """The live ``sleep 3600`` commands the cancel tests' playbooks started on the fleet."""
    found = []
    for proc in fleet.sshd.session_processes():
        try:
            if proc.cmdline()[:2] == ["sleep", "3600"] and not process_gone(proc):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
async def local_plays_allowed(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> AsyncIterator[None]:
    """The admin setting ``allow_local_plays`` on for one test (plays on the knm host run)."""
    features = "/features/automation/ansible"
    on, off = {"allow_local_plays": True}, {"allow_local_plays": False}
    assert_envelope(await knm_client.put(features, json=on, headers=admin_headers), 200)
    try:
        yield
    finally:
        assert_envelope(await knm_client.put(features, json=off, headers=admin_headers), 200)
