"""pytest fixtures around :class:`knm.testing.sshfleet.SshFleet`: real sshd nodes for SSH tests.

- ``ssh_fleet`` (session): a started 3-node fleet, plus its fault nodes ``refused`` and
  ``silent``; skips the test when not root or when sshd is not installed.
- ``ssh_fleet_cluster`` (module): through the API of ``knm_client``, a password credential for
  the fleet's user and a static cluster ``fleet`` listing ``node1``…``node3``, ``refused`` and
  ``silent``; a :class:`FleetCluster` with their ids and names.

Helpers for more: :func:`create_fleet_credential` (password, key, or passphrase-protected key)
and :func:`create_fleet_cluster` (any name, nodes and bastion).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from knm.testing import sshfleet
from knm.testing.client import ApiClient, assert_envelope

__all__ = [
    "FleetCluster",
    "create_fleet_cluster",
    "create_fleet_credential",
    "ssh_fleet",
    "ssh_fleet_cluster",
]

FLEET_NODES = 3
FLEET_CLUSTER = "fleet"


class FleetCluster(msgspec.Struct, kw_only=True):
    cluster_name: str
    credential_id: int
    #: The healthy nodes' names (``node1``…).
    nodes: list[str]
    refused: str
    silent: str
    fleet: Any


@pytest.fixture(scope="session")
def ssh_fleet() -> Iterator[sshfleet.SshFleet]:
    if os.geteuid() != 0:
        pytest.skip("the SSH fleet needs root (it starts sshd and creates a user)")
    try:
        sshfleet.find_sshd()
    except sshfleet.SshdNotInstalledError as exc:
        pytest.skip(str(exc))
    base = Path(tempfile.mkdtemp(prefix="knm-sshfleet-"))
    try:
        with sshfleet.ssh_fleet(base, nodes=FLEET_NODES) as fleet:
            yield fleet
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def create_fleet_credential(
    client: ApiClient,
    headers: dict[str, str],
    fleet: sshfleet.SshFleet,
    *,
    auth: Literal["password", "key", "encrypted_key", "encrypted_key_pkcs8"] = "password",
    name: str | None = None,
    password: str | None = None,
) -> int:
    """A credential for the fleet's user; ``password`` overrides the right one (auth tests)."""
    body: dict[str, Any] = {"name": name or f"fleet-{auth}", "username": fleet.username}
    if auth == "password":
        body |= {"auth_type": "password", "password": password or fleet.password}
    elif auth == "key":
        body |= {"auth_type": "private_key", "private_key": fleet.private_key_pem}
    else:
        pem = fleet.encrypted_private_key_pem
        if auth == "encrypted_key_pkcs8":
            pem = fleet.encrypted_private_key_pkcs8_pem
        body |= {
            "auth_type": "private_key",
            "private_key": pem,
            "passphrase": fleet.key_passphrase,
        }
    response = await client.post("/credentials", json=body, headers=headers)
    return assert_envelope(response, 201)["data"]["id"]


def fleet_nodes(fleet: sshfleet.SshFleet, *, faults: bool = True) -> list[dict[str, Any]]:
    nodes = list(fleet.nodes)
    if faults:
        nodes += [fleet.refused_node(), fleet.silent_node()]
    return [{"name": n.name, "address": n.address, "port": n.port} for n in nodes]


async def create_fleet_cluster(
    client: ApiClient,
    headers: dict[str, str],
    fleet: sshfleet.SshFleet,
    name: str = FLEET_CLUSTER,
    *,
    nodes: list[dict[str, Any]] | None = None,
    bastion: dict[str, Any] | None = None,
) -> str:
    """A static cluster of the fleet's nodes (and fault nodes); returns its name."""
    body: dict[str, Any] = {
        "name": name,
        "kind": "static",
        "nodes": nodes if nodes is not None else fleet_nodes(fleet),
    }
    if bastion is not None:
        body["bastion"] = bastion
    response = await client.post("/clusters", json=body, headers=headers)
    assert_envelope(response, 201)
    return name


@pytest.fixture(scope="module")
async def ssh_fleet_cluster(
    ssh_fleet: sshfleet.SshFleet, knm_client: ApiClient, admin_headers: dict[str, str]
) -> FleetCluster:
    credential_id = await create_fleet_credential(knm_client, admin_headers, ssh_fleet)
    cluster = await create_fleet_cluster(knm_client, admin_headers, ssh_fleet)
    return FleetCluster(
        cluster_name=cluster,
        credential_id=credential_id,
        nodes=[n.name for n in ssh_fleet.nodes],
        refused=ssh_fleet.refused_node().name,
        silent=ssh_fleet.silent_node().name,
        fleet=ssh_fleet,
    )
