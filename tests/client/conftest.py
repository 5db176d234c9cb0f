"""A real knm server over loopback for the SDK's tests, with the test executor (route ``test``)
so tasks run without SSH, and a static cluster ``lab``."""

from __future__ import annotations

import pytest

from knm.client import Client
from knm.testing.plugin import TEST_EXECUTOR
from knm.testing.process import KnmProcess

NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def knm_server_env() -> dict[str, str]:
    return {"KNM_PLUGINS": TEST_EXECUTOR, "KNM_LOGIN_MAX_FAILURES": "2"}


@pytest.fixture(scope="module")
def server(knm_server: KnmProcess) -> KnmProcess:
    return knm_server


@pytest.fixture(scope="module")
def admin(sdk_admin: Client) -> Client:
    return sdk_admin


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
