"""A Kubernetes API server stand-in for tests; see :mod:`knm.testing.k8s_standin`."""

from knm.testing.k8s.cluster import Cluster, HistoryEntry, RequestRecord, Timings
from knm.testing.k8s.errors import ApiError
from knm.testing.k8s.objects import Node, NodeAddress, NodeInfo, Pdb, PdbStatus, Pod, Taint
from knm.testing.k8s.server import KubeStandin

__all__ = [
    "ApiError",
    "Cluster",
    "HistoryEntry",
    "KubeStandin",
    "Node",
    "NodeAddress",
    "NodeInfo",
    "Pdb",
    "PdbStatus",
    "Pod",
    "RequestRecord",
    "Taint",
    "Timings",
]
