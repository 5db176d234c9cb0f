"""What a cluster provider is, and the structs it works with: ``Cluster``, ``Node``, ``Bastion``.

A provider serves one ``kind`` of cluster (``static``, ``kubernetes``). Its ``config_type`` is the
kind-specific part of a cluster's body, written at the top level next to the common fields
(``{"name": "lab", "kind": "static", "nodes": [...]}``). Fields named in ``secret_fields`` are
stored encrypted and never shown: a GET leaves them out and a PUT that omits them keeps them.
"""

from __future__ import annotations

import abc
import ipaddress
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

if TYPE_CHECKING:
    from knm.core.state import Knm

#: Field names of the common part of a cluster's body; a provider's config may not reuse them.
COMMON_FIELDS = frozenset(
    {"id", "name", "kind", "description", "bastion", "default_credential_id", "created_at",
     "updated_at"}
)  # fmt: skip
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ROLE_PREFIX = "node-role.kubernetes.io/"


class Node(msgspec.Struct, kw_only=True):
    """A node as a provider lists it, and — resolved (``port`` decided) — as executors get it
    (``TaskContext.nodes``). ``port`` is the SSH port when the provider knows one;
    ``ready``/``schedulable`` are None when the provider cannot tell (a static inventory)."""

    name: str
    address: str = ""
    port: int | None = None
    labels: dict[str, str] = {}
    ready: bool | None = None
    schedulable: bool | None = None
    roles: list[str] = []
    #: Provider-specific facts (kubelet version, OS image...), for display.
    info: dict[str, str] = {}


class Bastion(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A jump host the SSH transport goes through to reach a cluster's nodes.

    Without ``credential_id`` the SSH transport logs in to the bastion with the task's credential.
    """

    address: str
    port: int = 22
    credential_id: int | None = None

    def problems(self) -> list[str]:
        found = []
        problem = address_problem(self.address)
        if problem:
            found.append(f"bastion: {problem}")
        if not 1 <= self.port <= 65535:
            found.append("bastion: port must be between 1 and 65535")
        if self.credential_id is not None and self.credential_id < 1:
            found.append("bastion: credential_id must be a positive integer")
        return found


class Cluster(msgspec.Struct, kw_only=True):
    """A cluster with its provider's config decoded, secret fields included (server side only).

    ``id`` is None while a new cluster is being checked, before it is stored.
    """

    id: int | None
    name: str
    kind: str
    description: str = ""
    config: Any = None
    bastion: Bastion | None = None
    #: The credential an execute request naming none uses (None: requests must name one).
    default_credential_id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class NodeCondition(msgspec.Struct, kw_only=True):
    """A node's live state, as the engine checks it right before a step runs there (the
    workflow safety gate): who cordoned it, what is left on it, which boot it is on."""

    name: str
    unschedulable: bool
    #: The task that cordoned it (the ``knm.io/cordoned-by`` annotation on Kubernetes), if knm did.
    cordoned_by: str | None
    boot_id: str
    #: Pods that would have to be evicted (DaemonSet, mirror and finished pods do not count).
    pods_left: list[str]
    ready: bool = False


class NodeInspector(Protocol):
    """Reads the live state of one cluster's nodes (see ``ClusterProvider.inspector``)."""

    async def state(self, node: str) -> NodeCondition: ...

    async def cordoned_by_knm(self) -> set[str]: ...


class ClusterProvider(abc.ABC):
    """Serves one kind of cluster. Subclass it; return instances from ``knm_cluster_providers``.

    Every method gets the config already decoded into ``config_type``. Methods that can fail for
    a reason the caller must fix raise ``knm.core.errors.Invalid`` (422); an unreachable upstream
    raises ``ServiceUnavailable`` (503).
    """

    kind: ClassVar[str] = ""
    #: The kind-specific part of a cluster's body; use ``forbid_unknown_fields=True``.
    config_type: ClassVar[type[msgspec.Struct]]
    #: Names of ``config_type`` fields that are secrets: stored encrypted, never returned.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def validate(self, config: Any) -> list[str]:
        """Every problem with the config's values, one sentence each (the API answers 422)."""
        return []

    def missing(self, config: Any) -> list[str]:
        """The required fields the body left out, by name, where what is required depends on
        other fields (a field always required is simply a field without a default). The API
        answers 400 naming the first, as for any other missing field."""
        return []

    async def check(self, knm: Knm, cluster: Cluster) -> None:
        """Called before a cluster is stored (created, or its config changed): a reachability
        check, for example. Raise ``Invalid`` to refuse it."""
        return None

    @abc.abstractmethod
    async def list_nodes(self, knm: Knm, cluster: Cluster) -> list[Node]:
        """The cluster's nodes, in a stable order (the order selectors resolve to)."""

    async def inspector(self, knm: Knm, cluster: Cluster) -> NodeInspector | None:
        """How to read the cluster's nodes' live state, for kinds where something schedules
        onto nodes (Kubernetes); None (the default) where nothing does, so a node is always
        fit for any step."""
        return None

    def public_config(self, config: Any) -> dict[str, Any]:
        """What GET shows of the config. The default drops ``secret_fields``."""
        shown: dict[str, Any] = msgspec.to_builtins(config)
        for name in self.secret_fields:
            shown.pop(name, None)
        return shown


def config_fields(provider: ClusterProvider) -> tuple[str, ...]:
    return tuple(field.encode_name for field in msgspec.structs.fields(provider.config_type))


def address_problem(address: str) -> str | None:
    """Why ``address`` is neither an IP address nor a hostname, or None."""
    try:
        ipaddress.ip_address(address)
        return None
    except ValueError:
        pass
    host = address[:-1] if address.endswith(".") else address
    labels = host.split(".")
    if (
        not host
        or len(host) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        # "10.0.0.300" is a mistyped IP address, not a hostname.
        or labels[-1].isdigit()
    ):
        return f"address {address!r} is neither an IP address nor a valid hostname"
    return None


def roles_from_labels(labels: dict[str, str]) -> list[str]:
    """Node roles the way ``kubectl get nodes`` shows them, from the role labels."""
    roles = {key[len(_ROLE_PREFIX) :] for key in labels if key.startswith(_ROLE_PREFIX)}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return sorted(role for role in roles if role)
