"""Which nodes a request targets: ``cluster_name`` plus node names or a label selector, resolved
to addresses through the cluster's provider. Every executor's request struct extends
``TargetRequest`` and calls ``resolve_targets`` before it creates a task.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from knm.core.clusters.provider import Bastion, Node
from knm.core.clusters.store import get_cluster
from knm.core.errors import BadRequest, Invalid
from knm.core.selectors import parse_selector

if TYPE_CHECKING:
    from knm.core.state import Knm

DEFAULT_SSH_PORT = 22


class TargetRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields every execution request shares. Give ``target_nodes`` or ``target_selector``,
    not both; whether ``credential_id`` is required, and what ``timeout`` bounds, is the
    executor's to say."""

    cluster_name: Annotated[str, msgspec.Meta(max_length=256)]
    target_nodes: Annotated[list[str], msgspec.Meta(max_length=10_000)] = []
    target_selector: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    credential_id: int | None = None
    timeout: int | None = None


class ClusterRef(msgspec.Struct, kw_only=True):
    id: int
    name: str
    kind: str


class Resolution(msgspec.Struct, kw_only=True):
    cluster: ClusterRef
    #: The chosen nodes, each with its SSH port decided.
    nodes: list[Node]
    #: The jump host to reach the nodes through, if the cluster has one.
    bastion: Bastion | None = None
    #: The whole ``Cluster`` as read (its config, for executors that need more than nodes).
    source: Any = None

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]


def _resolved(node: Node, credential_port: int | None) -> Node:
    # The node's own port wins: a provider that knows one knows better than a shared credential.
    port = node.port or credential_port or DEFAULT_SSH_PORT
    return node if node.port == port else msgspec.structs.replace(node, port=port)


def _by_names(cluster: str, nodes: list[Node], names: list[str]) -> list[Node]:
    if duplicates := [name for name, count in Counter(names).items() if count > 1]:
        raise Invalid(f"duplicate nodes in target_nodes: {', '.join(duplicates)}")
    known = {node.name: node for node in nodes}
    if unknown := [name for name in names if name not in known]:
        raise Invalid(f"unknown nodes in cluster {cluster}: {', '.join(unknown)}")
    return [known[name] for name in names]


async def resolve_targets(
    knm: Knm, request: TargetRequest, *, credential_port: int | None, cluster: Any = None
) -> Resolution:
    """The request's nodes with addresses and SSH ports, in the request's order for names and
    the cluster's order for a selector.

    Raises ``NotFound`` for an unknown cluster, ``BadRequest`` when both or neither of
    ``target_nodes``/``target_selector`` are given, ``Invalid`` for duplicate or unknown node names (every
    unknown one is named), a bad selector, or a selector that matches no node. SSH port: the
    node's when the provider knows one, else ``credential_port``, else 22. ``cluster``: the
    ``Cluster`` when the caller has read it already.
    """
    selector_text = (request.target_selector or "").strip()
    # The body's shape (400), for callers that did not check ``ExecRequest.shape_problems``.
    if request.target_nodes and selector_text:
        raise BadRequest("target_nodes: give either target_nodes or target_selector, not both")
    if not request.target_nodes and not selector_text:
        raise BadRequest(
            "target_nodes: required (node names), or target_selector (a label selector)"
        )
    selector = parse_selector(selector_text) if selector_text else None
    if cluster is None:
        cluster = await get_cluster(knm, request.cluster_name)
    nodes = await knm.registry.provider_for(cluster.kind).list_nodes(knm, cluster)
    if selector is None:
        chosen = _by_names(cluster.name, nodes, request.target_nodes)
    else:
        chosen = [node for node in nodes if selector.matches(node.labels)]
        if not chosen:
            raise Invalid(
                f"target_selector {selector_text!r} matches no node in cluster {cluster.name}"
            )
    assert cluster.id is not None
    return Resolution(
        cluster=ClusterRef(id=cluster.id, name=cluster.name, kind=cluster.kind),
        nodes=[_resolved(node, credential_port) for node in chosen],
        bastion=cluster.bastion,
        source=cluster,
    )
