"""A fresh install under a real ``knm serve``, set up the way the contract's examples assume:
credential 1 logs in to the nodes of cluster ``production`` (``node1``…``node3``, real sshd on
loopback), and Ansible runs from a temp dir its run user can reach.

Nothing here goes through knm's own client: requests are plain HTTP, as a client written from
the contract would send them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.sshfleet import SshFleet

CLUSTER = "production"


class Api:
    """Plain HTTP to ``/api/v1`` with the admin's token (or ``token=``/``headers=``)."""

    def __init__(self, server: KnmProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.api, timeout=60)
        self.token = ""

    def login(self, username: str = "admin", password: str = TEST_ADMIN_PASSWORD) -> str:
        response = self.http.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["data"]["token"]

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if "Authorization" not in headers and (token or self.token):
            headers["Authorization"] = f"Bearer {token or self.token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("DELETE", path, **kwargs)


@pytest.fixture(scope="module")
def reachable_dir() -> Iterator[Path]:
    """knm's data dir and Ansible's temp dir: root's, but others may pass through (the run
    user reaches the mirrored Python and its run directories), as knm keeps them."""
    path = Path(tempfile.mkdtemp(prefix="knm-contract-"))
    path.chmod(0o711)
    (path / "data").mkdir(mode=0o711)
    (path / "data").chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, reachable_dir: Path
) -> Iterator[KnmProcess]:
    proc = KnmProcess(
        tmp_path_factory.mktemp("contract"),
        knm_database_url,
        ["serve"],
        {"KNM_DATA_DIR": str(reachable_dir / "data"), "KNM_LOGIN_MAX_FAILURES": "3"},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server: KnmProcess) -> Iterator[Api]:
    client = Api(server)
    client.token = client.login()
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def production(api: Api, ssh_fleet: SshFleet, reachable_dir: Path) -> dict[str, Any]:
    """Credential 1 and cluster ``production`` over the fleet; Ansible's temp dir set."""
    credential = api.post(
        "/credentials",
        json={"name": "fleet", "username": ssh_fleet.username, "auth_type": "password",
              "password": ssh_fleet.password},
    )  # fmt: skip
    assert credential.status_code == 201, credential.text
    assert credential.json()["data"]["id"] == 1  # the examples' credential_id
    nodes = [{"name": n.name, "address": n.address, "port": n.port} for n in ssh_fleet.nodes]
    cluster = api.post("/clusters", json={"name": CLUSTER, "kind": "static", "nodes": nodes})
    assert cluster.status_code == 201, cluster.text
    settings = {"temp_dir": str(reachable_dir / "runs"), "timeout": 300}
    response = api.put("/features/automation/ansible", json=settings)
    assert response.status_code == 200, response.text
    return {"credential_id": 1, "cluster_name": CLUSTER, "nodes": [n.name for n in ssh_fleet.nodes]}
