"""Clusters: named sets of nodes, each served by a cluster-provider plugin of its kind.

The ``static`` provider (``knm.plugins.static``) lists nodes by hand; others (``kubernetes``)
come from plugins through the ``knm_cluster_providers`` hook. Executors reach nodes through
``knm.core.targets.resolve_targets``.
"""

from __future__ import annotations

from knm.core.clusters.provider import (
    Bastion,
    Cluster,
    ClusterProvider,
    Node,
    NodeCondition,
    NodeInspector,
    address_problem,
    roles_from_labels,
)
from knm.core.clusters.routes import ROUTES
from knm.core.clusters.store import get_cluster

__all__ = [
    "ROUTES",
    "Bastion",
    "Cluster",
    "ClusterProvider",
    "Node",
    "NodeCondition",
    "NodeInspector",
    "address_problem",
    "get_cluster",
    "roles_from_labels",
]
