"""The ``static`` provider: a cluster whose nodes are listed by hand, with their addresses.

For machines that are not (or not yet) Kubernetes nodes, or for a Kubernetes cluster whose API
knm should not use. ``ready`` and ``schedulable`` are unknown (None); roles come from the
``node-role.kubernetes.io/<role>`` labels, the way ``kubectl get nodes`` shows them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.clusters import Cluster, ClusterProvider, Node, address_problem, roles_from_labels
from knm.core.selectors import label_problems

if TYPE_CHECKING:
    from knm.core.state import Knm

MAX_NODES = 10_000
_NODE_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?")


class StaticNode(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    address: str
    #: The SSH port; without it, the credential's port (else 22) is used.
    port: int | None = None
    labels: dict[str, str] = {}


class StaticConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    nodes: list[StaticNode] = []


class StaticProvider(ClusterProvider):
    kind = "static"
    config_type = StaticConfig
    description = "nodes listed by hand, with their addresses"

    def validate(self, config: Any) -> list[str]:
        assert isinstance(config, StaticConfig)
        if len(config.nodes) > MAX_NODES:
            return [f"a static cluster holds at most {MAX_NODES} nodes"]
        problems: list[str] = []
        for i, node in enumerate(config.nodes):
            where = f"nodes[{i}]: "
            if not _NODE_NAME.fullmatch(node.name):
                problems.append(
                    f"{where}name {node.name!r} must be 1-253 characters of lowercase letters, "
                    "digits, '.', '_' or '-', starting and ending with a letter or digit"
                )
            if problem := address_problem(node.address):
                problems.append(f"{where}{problem}")
            if node.port is not None and not 1 <= node.port <= 65535:
                problems.append(f"{where}port must be between 1 and 65535")
            problems.extend(label_problems(node.labels, where))
        counts = Counter(node.name for node in config.nodes)
        if duplicates := [name for name, count in counts.items() if count > 1]:
            problems.append(f"duplicate node names: {', '.join(duplicates)}")
        return problems

    async def list_nodes(self, knm: Knm, cluster: Cluster) -> list[Node]:
        config: StaticConfig = cluster.config
        return [
            Node(
                name=node.name,
                address=node.address,
                port=node.port,
                labels=dict(node.labels),
                roles=roles_from_labels(node.labels),
            )
            for node in config.nodes
        ]
