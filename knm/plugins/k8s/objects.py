"""The parts of Kubernetes objects knm reads, decoded straight from the API's JSON.

Decoding raw JSON with msgspec skips the official client's model layer, which is slow and
validates fields knm never looks at.
"""

from __future__ import annotations

from typing import Any

import msgspec

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class OwnerRef(msgspec.Struct, kw_only=True):
    kind: str
    name: str
    controller: bool = False


class Meta(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[OwnerRef] = []
    deletion_timestamp: str | None = None


class Taint(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    key: str
    effect: str
    value: str | None = None
    time_added: str | None = None

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


class NodeSpec(msgspec.Struct, kw_only=True):
    unschedulable: bool = False
    taints: list[Taint] = []


class Condition(msgspec.Struct, kw_only=True):
    type: str
    status: str
    reason: str = ""
    message: str = ""


class Address(msgspec.Struct, kw_only=True):
    type: str
    address: str


class NodeInfo(msgspec.Struct, kw_only=True, rename="camel"):
    boot_id: str = msgspec.field(default="", name="bootID")
    kubelet_version: str = ""
    os_image: str = ""
    kernel_version: str = ""
    container_runtime_version: str = ""


class NodeStatus(msgspec.Struct, kw_only=True, rename="camel"):
    conditions: list[Condition] = []
    addresses: list[Address] = []
    node_info: NodeInfo = msgspec.field(default_factory=NodeInfo)


class NodeDoc(msgspec.Struct, kw_only=True):
    metadata: Meta
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ready_condition(self) -> Condition | None:
        return next((c for c in self.status.conditions if c.type == "Ready"), None)

    @property
    def ready(self) -> bool:
        condition = self.ready_condition
        return condition is not None and condition.status == "True"

    def address(self, order: list[str]) -> str:
        for kind in order:
            for address in self.status.addresses:
                if address.type == kind and address.address:
                    return address.address
        return self.name


class NodeList(msgspec.Struct):
    items: list[NodeDoc]


class PodSpec(msgspec.Struct, kw_only=True, rename="camel"):
    node_name: str = ""
    volumes: list[dict[str, Any]] = []
    termination_grace_period_seconds: int | None = None


class PodStatus(msgspec.Struct, kw_only=True):
    phase: str = ""


class PodDoc(msgspec.Struct, kw_only=True):
    metadata: Meta
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    @property
    def ref(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def controller(self) -> OwnerRef | None:
        return next((o for o in self.metadata.owner_references if o.controller), None)

    @property
    def mirror(self) -> bool:
        return MIRROR_ANNOTATION in self.metadata.annotations

    @property
    def daemonset(self) -> bool:
        owner = self.controller
        return owner is not None and owner.kind == "DaemonSet"

    @property
    def empty_dir(self) -> bool:
        return any("emptyDir" in volume for volume in self.spec.volumes)

    @property
    def finished(self) -> bool:
        return self.status.phase in ("Succeeded", "Failed")


class PodList(msgspec.Struct):
    items: list[PodDoc]


class SelectorRequirement(msgspec.Struct, kw_only=True):
    key: str
    operator: str
    values: list[str] = []


class LabelSelector(msgspec.Struct, kw_only=True, rename="camel"):
    match_labels: dict[str, str] = {}
    match_expressions: list[SelectorRequirement] = []

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for term in self.match_expressions:
            present = term.key in labels
            if term.operator == "In" and not (present and labels[term.key] in term.values):
                return False
            if term.operator == "NotIn" and present and labels[term.key] in term.values:
                return False
            if term.operator == "Exists" and not present:
                return False
            if term.operator == "DoesNotExist" and present:
                return False
        return True


class PdbSpec(msgspec.Struct, kw_only=True):
    #: None selects no pods at all (policy/v1); an empty selector selects every pod.
    selector: LabelSelector | None = None


class PdbStatus(msgspec.Struct, kw_only=True, rename="camel"):
    disruptions_allowed: int = 0
    current_healthy: int = 0
    desired_healthy: int = 0


class PdbDoc(msgspec.Struct, kw_only=True):
    metadata: Meta
    spec: PdbSpec = msgspec.field(default_factory=PdbSpec)
    status: PdbStatus = msgspec.field(default_factory=PdbStatus)

    def selects(self, pod: PodDoc) -> bool:
        selector = self.spec.selector
        return (
            selector is not None
            and pod.metadata.namespace == self.metadata.namespace
            and selector.matches(pod.metadata.labels)
        )


class PdbList(msgspec.Struct):
    items: list[PdbDoc]


class Status(msgspec.Struct, kw_only=True):
    """An API error's body."""

    message: str = ""
    reason: str = ""
    details: dict[str, Any] = {}
