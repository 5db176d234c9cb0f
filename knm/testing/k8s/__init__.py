"""Kubernetes test tooling for knm and its plugins: the one module to import.

- ``KubeStandin``: a Kubernetes API server stand-in on a real loopback socket, which the
  official ``kubernetes`` client talks to (nodes, pods, PDBs, evictions, reboots; its own
  ``Timings``). ``python -m knm.testing.k8s_standin --port N`` runs it on its own.
- pytest fixture ``kube_standin`` (the knm.testing plugin registers it): a started stand-in
  with a small cluster on a fast time scale (``FAST_TIMINGS``); ``standin()`` makes another;
  ``register_kube_cluster`` registers one as a ``kubernetes`` cluster through the API.

``knm.testing.k8s_standin`` (what older plugin docs named) stays importable.
"""

from knm.testing.k8s.cluster import Cluster, HistoryEntry, RequestRecord, Timings
from knm.testing.k8s.errors import ApiError
from knm.testing.k8s.objects import Node, NodeAddress, NodeInfo, Pdb, PdbStatus, Pod, Taint
from knm.testing.k8s.server import KubeStandin

# The fixtures and their helpers (they bring pytest and the API client along).
from knm.testing.kube import (
    FAST_TIMINGS,
    KUBE_TOKEN,
    KubeCluster,
    Run,
    kube_standin,
    register_kube_cluster,
    standin,
)

__all__ = [
    "FAST_TIMINGS",
    "KUBE_TOKEN",
    "ApiError",
    "Cluster",
    "HistoryEntry",
    "KubeCluster",
    "KubeStandin",
    "Node",
    "NodeAddress",
    "NodeInfo",
    "Pdb",
    "PdbStatus",
    "Pod",
    "RequestRecord",
    "Run",
    "Taint",
    "Timings",
    "kube_standin",
    "register_kube_cluster",
    "standin",
]
