"""The ``kubernetes`` cluster provider: nodes listed from a cluster's API server.

A cluster is registered with a kubeconfig (sealed, write-only) or ``in_cluster``. Creating it
checks that the API answers ``/version``. A kubeconfig whose user runs a command to authenticate
(``exec``, ``auth-provider``) runs code on the knm server, so it is refused unless the ``k8s``
setting ``allow_kubeconfig_exec`` is on; a kubeconfig naming files on the server is refused too
(it must carry the data). Node lists are reused for a few seconds per cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knm.core.clusters import Cluster, ClusterProvider, Node, NodeCondition, roles_from_labels
from knm.core.errors import Invalid, ServiceUnavailable
from knm.plugins.k8s import objects
from knm.plugins.k8s.client import KubeError, hub_of, kubeconfig_problems, runs_commands
from knm.plugins.k8s.schemas import ADDRESS_TYPES, KubernetesConfig

if TYPE_CHECKING:
    from knm.core.state import Knm

CORDONED_BY = "knm.io/cordoned-by"
CORDONED_AT = "knm.io/cordoned-at"
BOOT_ID = "knm.io/boot-id"
MAX_KUBECONFIG = 1024 * 1024


class ApiUnreachable(ServiceUnavailable):
    message = "Kubernetes API unreachable"


class KubernetesProvider(ClusterProvider):
    kind = "kubernetes"
    config_type = KubernetesConfig
    secret_fields = ("kubeconfig",)
    description = "nodes of a Kubernetes cluster, read from its API server"

    def validate(self, config: Any) -> list[str]:
        assert isinstance(config, KubernetesConfig)
        problems = []
        if config.in_cluster and config.kubeconfig:
            problems.append("give kubeconfig or in_cluster, not both")
        elif not config.in_cluster and not config.kubeconfig:
            # Left out entirely it is a missing field (400, ``missing``); this is an empty one.
            problems.append("give kubeconfig (YAML) or in_cluster: true")
        elif config.kubeconfig:
            if len(config.kubeconfig) > MAX_KUBECONFIG:
                problems.append(f"kubeconfig is longer than {MAX_KUBECONFIG} characters")
            else:
                problems.extend(kubeconfig_problems(config.kubeconfig, config.context))
        if not config.address_order:
            problems.append("address_order must name at least one address type")
        for kind in config.address_order:
            if kind not in ADDRESS_TYPES:
                problems.append(
                    f"address_order: unknown address type {kind!r}; "
                    f"known: {', '.join(ADDRESS_TYPES)}"
                )
        if not 1 <= config.max_unavailable <= 10_000:
            problems.append("max_unavailable must be between 1 and 10000")
        return problems

    def missing(self, config: Any) -> list[str]:
        assert isinstance(config, KubernetesConfig)
        return ["kubeconfig"] if config.kubeconfig is None and not config.in_cluster else []

    async def check(self, knm: Knm, cluster: Cluster) -> None:
        config: KubernetesConfig = cluster.config
        await refuse_commands(knm, config)
        hub = hub_of(knm)
        try:
            kube = await hub.build(config)
            try:
                await kube.version()
            finally:
                kube.api.close()
        except KubeError as exc:
            raise Invalid(
                f"the Kubernetes API did not answer /version: {exc.message}",
                message="cluster check failed",
            ) from None

    async def list_nodes(self, knm: Knm, cluster: Cluster) -> list[Node]:
        config: KubernetesConfig = cluster.config
        docs = await cluster_nodes(knm, cluster)
        return [to_node(doc, config.address_order) for doc in docs]

    async def inspector(self, knm: Knm, cluster: Cluster) -> NodeProbe:
        await refuse_commands(knm, cluster.config)
        return NodeProbe(await hub_of(knm).kube(cluster))


class NodeProbe:
    """Reads nodes of one Kubernetes cluster for the engine's safety gate."""

    def __init__(self, kube: Any) -> None:
        self.kube = kube

    async def state(self, node: str) -> NodeCondition:
        doc = await self.kube.node(node)
        pods = await self.kube.pods_on(node)
        left = [p.ref for p in pods if not (p.mirror or p.daemonset or p.finished)]
        return NodeCondition(
            name=node,
            unschedulable=bool(doc.spec.unschedulable),
            cordoned_by=doc.metadata.annotations.get(CORDONED_BY),
            boot_id=doc.status.node_info.boot_id,
            pods_left=left,
            ready=doc.ready,
        )

    async def cordoned_by_knm(self) -> set[str]:
        return {
            doc.name
            for doc in await self.kube.list_nodes()
            if doc.spec.unschedulable and CORDONED_BY in doc.metadata.annotations
        }


async def refuse_commands(knm: Knm, config: KubernetesConfig) -> None:
    """``Invalid`` when the kubeconfig runs commands and the setting does not allow it."""
    if not config.kubeconfig:
        return
    users = runs_commands(config.kubeconfig)
    if users and not (await knm.features.settings("k8s")).allow_kubeconfig_exec:
        raise Invalid(
            f"kubeconfig user {users[0]!r} runs a command (exec or auth-provider) to "
            "authenticate; an admin must turn on the k8s setting allow_kubeconfig_exec first"
        )


async def cluster_nodes(knm: Knm, cluster: Cluster) -> list[objects.NodeDoc]:
    """The cluster's nodes (cached briefly); ``ApiUnreachable`` (503) when the API fails."""
    await refuse_commands(knm, cluster.config)
    try:
        return await hub_of(knm).nodes(cluster)
    except KubeError as exc:
        raise ApiUnreachable(f"cluster {cluster.name}: {exc.message}") from None


def to_node(doc: objects.NodeDoc, address_order: list[str]) -> Node:
    meta, info = doc.metadata, doc.status.node_info
    facts = {
        "kubelet_version": info.kubelet_version,
        "os_image": info.os_image,
        "kernel_version": info.kernel_version,
        "container_runtime": info.container_runtime_version,
        "addresses": ",".join(f"{a.type}={a.address}" for a in doc.status.addresses),
        "taints": ",".join(str(taint) for taint in doc.spec.taints),
    }
    if CORDONED_BY in meta.annotations:
        facts["cordoned_by"] = meta.annotations[CORDONED_BY]
    return Node(
        name=meta.name,
        address=doc.address(address_order),
        labels=dict(meta.labels),
        ready=doc.ready,
        schedulable=not doc.spec.unschedulable,
        roles=roles_from_labels(meta.labels),
        info=facts,
    )
