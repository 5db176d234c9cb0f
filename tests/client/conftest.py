"""A real knm server over loopback for the SDK's tests, with the test executor (route ``test``)
so tasks run without SSH, and a static cluster ``lab``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knm.client import Client
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

PLUGIN = "knm.testing.executor:TestExecutorPlugin"
NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    proc = KnmProcess(
        tmp_path_factory.mktemp("sdk"),
        knm_database_url,
        ["serve"],
        {"KNM_PLUGINS": PLUGIN, "KNM_LOGIN_MAX_FAILURES": "2"},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin(server: KnmProcess) -> Iterator[Client]:
    with Client(server.base_url) as client:
        client.login("admin", TEST_ADMIN_PASSWORD)
        yield client


@pytest.fixture(scope="module")
def lab(admin: Client) -> str:
    nodes = [
        {
            "name": name,
            "address": f"127.0.0.{i + 2}",
            "port": 1,
            "labels": {"rack": "a" if i else "b"},
        }
        for i, name in enumerate(NODES)
    ]
    admin.create_cluster("lab", "static", nodes=nodes, description="the lab")
    return "lab"
