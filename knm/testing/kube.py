"""pytest fixtures around the Kubernetes API stand-in (:mod:`knm.testing.k8s_standin`).

- ``kube_standin``: a started :class:`KubeStandin` on loopback with a small cluster — a
  control-plane node ``cp1`` (tainted ``NoSchedule``) and workers ``w1``…``w3`` (pools ``a``,
  ``a``, ``b``) — and a few pods: a ReplicaSet ``web`` on ``w1``, a DaemonSet pod and a mirror pod.
  Its time scale is small (:data:`FAST_TIMINGS`), so graceful deletion, replacements and reboots
  take a fraction of a second.

Helper: :func:`register_kube_cluster` registers a stand-in as a ``kubernetes`` cluster through the
API (as an admin) and returns the cluster's name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.k8s.cluster import Timings
from knm.testing.k8s.server import KubeStandin

__all__ = [
    "FAST_TIMINGS",
    "KUBE_TOKEN",
    "KubeCluster",
    "Run",
    "kube_standin",
    "register_kube_cluster",
    "standin",
]

KUBE_TOKEN = "knm-test-kube-token"
WORKER = "node-role.kubernetes.io/worker"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


#: Starts (or runs to its end) a task and returns the answer's (or final status's) ``data``.
Run = Callable[..., Awaitable[dict[str, Any]]]


class KubeCluster(msgspec.Struct, kw_only=True):
    """A stand-in registered as a cluster."""

    name: str
    kube: KubeStandin


def fast_timings() -> Timings:
    return Timings(
        grace_scale=0.005,
        max_grace=0.3,
        replacement_delay=0.05,
        pod_ready_delay=0.3,
        reboot_duration=0.5,
    )


FAST_TIMINGS = fast_timings()


def standin(*, token: str = KUBE_TOKEN, populate: bool = True) -> KubeStandin:
    """A started stand-in (``stop()`` it), with the default cluster when ``populate``."""
    kube = KubeStandin(token=token, timings=fast_timings()).start()
    if populate:
        kube.add_node(
            "cp1",
            labels={CONTROL_PLANE: ""},
            taints=[{"key": CONTROL_PLANE, "effect": "NoSchedule"}],
            addresses={"InternalIP": "192.0.2.10"},
        )
        kube.add_node(
            "w1",
            labels={WORKER: "", "pool": "a"},
            addresses=[("InternalIP", "192.0.2.11"), ("ExternalIP", "198.51.100.11")],
        )
        kube.add_node(
            "w2", labels={WORKER: "", "pool": "a"}, addresses={"ExternalIP": "198.51.100.12"}
        )
        kube.add_node(
            "w3", labels={WORKER: "", "pool": "b"}, addresses={"InternalIP": "192.0.2.13"}
        )
        kube.add_pod("default", "web-1", "w1", labels={"app": "web"})
        kube.add_pod("kube-system", "agent-w1", "w1", owner_kind="DaemonSet", owner_name="agent")
        kube.add_pod("kube-system", "etcd-cp1", "cp1", mirror=True)
    return kube


@pytest.fixture
def kube_standin() -> Iterator[KubeStandin]:
    kube = standin()
    try:
        yield kube
    finally:
        kube.stop()


async def register_kube_cluster(
    client: ApiClient,
    headers: dict[str, str],
    kube: KubeStandin,
    name: str = "kube",
    **fields: Any,
) -> str:
    """Register ``kube`` as a ``kubernetes`` cluster (``fields`` add to or override the body)."""
    body: dict[str, Any] = {"name": name, "kind": "kubernetes", "kubeconfig": kube.kubeconfig()}
    body.update(fields)
    response = await client.post("/clusters", json=body, headers=headers)
    assert_envelope(response, 201)
    return name
