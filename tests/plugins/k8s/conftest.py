"""Fixtures of the Kubernetes plugin's tests: a stand-in API server registered as a cluster."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from knm.testing.client import ApiClient
from knm.testing.k8s import KubeCluster, KubeStandin, Run, kube_standin, register_kube_cluster  # noqa: F401
from knm.testing.tasks import start_task, wait_for_task

_names = itertools.count(1)


@pytest.fixture
async def cluster(
    kube_standin: KubeStandin,  # noqa: F811
    knm_client: ApiClient,
    admin_headers: dict[str, str],
) -> AsyncIterator[KubeCluster]:
    """The default stand-in, registered under a fresh name, allowing 3 nodes out at once."""
    name = await register_kube_cluster(
        knm_client, admin_headers, kube_standin, f"kube-{next(_names)}", max_unavailable=3
    )
    yield KubeCluster(name=name, kube=kube_standin)


@pytest.fixture
def start_k8s(knm_client: ApiClient, admin_headers: dict[str, str], cluster: KubeCluster) -> Run:
    """Starts a k8s task on ``cluster`` (body fields override); returns the answer's ``data``."""

    async def start(action: str, nodes: list[str] | None = None, **body: Any) -> dict[str, Any]:
        request: dict[str, Any] = {"cluster_name": cluster.name, "action": action, **body}
        if nodes is not None:
            request["target_nodes"] = nodes
        return await start_task(knm_client, admin_headers, "k8s", **request)

    return start


@pytest.fixture
def run_k8s(knm_client: ApiClient, admin_headers: dict[str, str], start_k8s: Run) -> Run:
    """Runs a k8s task to its end; returns its final status."""

    async def run(action: str, nodes: list[str] | None = None, **body: Any) -> dict[str, Any]:
        data = await start_k8s(action, nodes, **body)
        return await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=60)

    return run
