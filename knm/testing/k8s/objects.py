"""The stand-in's internal object model and its rendering to API JSON.

Only what knm reads or writes is modelled as typed state; the rest of each JSON
document is filled with the constant values a kubeadm cluster would show, so that
the official client's strict (pydantic) models accept every response.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

ConditionStatus = Literal["True", "False", "Unknown"]

# The node lifecycle controller owns these taints: they are derived from the Ready
# condition on every read and stripped from anything a client writes back.
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
CONTROLLER_TAINTS = frozenset({NOT_READY_TAINT, UNREACHABLE_TAINT})
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_PAUSE_DIGEST = (
    "registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"
)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

OWNER_API_VERSIONS = {
    "ReplicaSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "Node": "v1",
}


def timestamp(when: datetime) -> str:
    # metav1.Time serialises with second precision in UTC.
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Taint(msgspec.Struct, rename="camel", omit_defaults=True):
    key: str
    effect: str
    value: str | None = None
    time_added: str | None = None


class NodeAddress(msgspec.Struct):
    type: str
    address: str


class NodeInfo(
    msgspec.Struct,
    rename={
        "machine_id": "machineID",
        "system_uuid": "systemUUID",
        "boot_id": "bootID",
        "kernel_version": "kernelVersion",
        "os_image": "osImage",
        "container_runtime_version": "containerRuntimeVersion",
        "kubelet_version": "kubeletVersion",
        "kube_proxy_version": "kubeProxyVersion",
        "operating_system": "operatingSystem",
        "architecture": "architecture",
    },
):
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str = "6.1.0-21-amd64"
    os_image: str = "Debian GNU/Linux 12 (bookworm)"
    container_runtime_version: str = "containerd://1.7.13"
    kubelet_version: str = "v1.30.2"
    kube_proxy_version: str = "v1.30.2"
    operating_system: str = "linux"
    architecture: str = "amd64"


class Node(msgspec.Struct, kw_only=True):
    name: str
    uid: str
    created: str
    resource_version: int
    index: int
    labels: dict[str, str]
    annotations: dict[str, str]
    unschedulable: bool = False
    taints: list[Taint] = msgspec.field(default_factory=list)
    addresses: list[NodeAddress]
    info: NodeInfo
    ready: ConditionStatus = "True"
    ready_reason: str = "KubeletReady"
    ready_message: str = "kubelet is posting ready status"
    ready_transition: str
    heartbeat: str
    rebooting: bool = False

    @property
    def is_ready(self) -> bool:
        return self.ready == "True"

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    def effective_taints(self) -> list[Taint]:
        taints = [t for t in self.taints if t.key not in CONTROLLER_TAINTS]
        if self.ready == "False":
            taints.append(Taint(key=NOT_READY_TAINT, effect="NoSchedule"))
        elif self.ready == "Unknown":
            taints.append(Taint(key=UNREACHABLE_TAINT, effect="NoSchedule"))
        return taints


class OwnerRef(msgspec.Struct):
    kind: str
    name: str
    uid: str


class Pod(msgspec.Struct, kw_only=True):
    namespace: str
    name: str
    uid: str
    created: str
    resource_version: int
    node: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    owner: OwnerRef | None
    volumes: list[dict[str, Any]]
    image: str = "registry.k8s.io/pause:3.9"
    phase: str = "Running"
    ready: bool = True
    ready_transition: str
    start_time: str | None = None
    pod_ip: str | None = None
    host_ip: str | None = None
    restart_count: int = 0
    termination_grace: int = 30
    generate_name: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def mirror(self) -> bool:
        return MIRROR_ANNOTATION in self.annotations

    @property
    def terminating(self) -> bool:
        return self.deletion_timestamp is not None

    @property
    def healthy(self) -> bool:
        """What the disruption controller counts: Running, Ready and not being deleted."""
        return self.phase == "Running" and self.ready and not self.terminating


class PdbStatus(msgspec.Struct, frozen=True):
    current_healthy: int
    desired_healthy: int
    disruptions_allowed: int
    expected_pods: int
    observed_generation: int


class Pdb(msgspec.Struct, kw_only=True):
    namespace: str
    name: str
    uid: str
    created: str
    resource_version: int
    generation: int = 1
    # None is a nil selector (selects nothing); {} with no expressions selects all.
    match_labels: dict[str, str] | None
    match_expressions: list[dict[str, Any]] = msgspec.field(default_factory=list)
    min_available: int | str | None = None
    max_unavailable: int | str | None = None
    unhealthy_pod_eviction_policy: str | None = None
    status: PdbStatus | None = None
    status_transition: str = ""

    @property
    def has_selector(self) -> bool:
        return self.match_labels is not None or bool(self.match_expressions)


class Workload(msgspec.Struct, kw_only=True):
    """An implicit ReplicaSet/DaemonSet, born from the owner reference of its first pod."""

    kind: str
    namespace: str
    name: str
    uid: str
    created: str
    resource_version: int
    replicas: int
    template_labels: dict[str, str]
    image: str
    last_status: dict[str, int] | None = None


def _meta(
    name: str,
    uid: str,
    rv: int,
    created: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta |= {"uid": uid, "resourceVersion": str(rv), "creationTimestamp": created}
    # Empty maps are omitted on the wire (omitempty), never sent as {}.
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def render_node(node: Node) -> dict[str, Any]:
    spec: dict[str, Any] = {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}
    if node.unschedulable:
        spec["unschedulable"] = True
    taints = node.effective_taints()
    if taints:
        spec["taints"] = [msgspec.to_builtins(t) for t in taints]

    def condition(kind: str, healthy_reason: str, message: str) -> dict[str, Any]:
        # A node whose kubelet went silent has every condition flipped to Unknown.
        if node.ready == "Unknown":
            status, reason, message = (
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )
        else:
            status, reason = "False", healthy_reason
        return {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": node.heartbeat,
            "lastTransitionTime": node.ready_transition
            if node.ready == "Unknown"
            else node.created,
            "reason": reason,
            "message": message,
        }

    conditions = [
        condition(
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        {
            "type": "Ready",
            "status": node.ready,
            "lastHeartbeatTime": node.heartbeat,
            "lastTransitionTime": node.ready_transition,
            "reason": node.ready_reason,
            "message": node.ready_message,
        },
    ]
    resources = {
        "cpu": "4",
        "ephemeral-storage": "101430960Ki",
        "memory": "16374176Ki",
        "pods": "110",
    }
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": _meta(
            node.name,
            node.uid,
            node.resource_version,
            node.created,
            labels=node.labels,
            annotations=node.annotations,
        ),
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources | {"cpu": "3800m", "memory": "15223200Ki"},
            "conditions": conditions,
            "addresses": [msgspec.to_builtins(a) for a in node.addresses],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": msgspec.to_builtins(node.info),
            "images": [
                {
                    "names": [
                        _PAUSE_DIGEST,
                        "registry.k8s.io/pause:3.9",
                    ],
                    "sizeBytes": 321520,
                }
            ],
        },
    }


def _owner_ref(owner: OwnerRef) -> dict[str, Any]:
    return {
        "apiVersion": OWNER_API_VERSIONS.get(owner.kind, "apps/v1"),
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render_pod(pod: Pod) -> dict[str, Any]:
    meta = _meta(
        pod.name,
        pod.uid,
        pod.resource_version,
        pod.created,
        namespace=pod.namespace,
        labels=pod.labels,
        annotations=pod.annotations,
    )
    if pod.generate_name:
        meta["generateName"] = pod.generate_name
    if pod.owner is not None:
        meta["ownerReferences"] = [_owner_ref(pod.owner)]
    if pod.deletion_timestamp is not None:
        meta["deletionTimestamp"] = pod.deletion_timestamp
        meta["deletionGracePeriodSeconds"] = pod.deletion_grace
    container: dict[str, Any] = {
        "name": "app",
        "image": pod.image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    mounts = [
        {"name": v["name"], "mountPath": f"/mnt/{v['name']}"}
        for v in pod.volumes
        if "projected" not in v
    ]
    mounts += [
        {
            "name": v["name"],
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
        for v in pod.volumes
        if "projected" in v
    ]
    if mounts:
        container["volumeMounts"] = mounts
    tolerations = [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        for key in (NOT_READY_TAINT, UNREACHABLE_TAINT)
    ]
    if pod.owner is not None and pod.owner.kind == "DaemonSet":
        # The DaemonSet controller adds these so its pods survive cordons and outages.
        tolerations = [
            {"key": key, "operator": "Exists", "effect": effect}
            for key, effect in (
                (NOT_READY_TAINT, "NoExecute"),
                (UNREACHABLE_TAINT, "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
            )
        ]
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": pod.termination_grace,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": tolerations,
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    if pod.volumes:
        spec["volumes"] = [dict(v) for v in pod.volumes]
    if pod.node is not None:
        spec["nodeName"] = pod.node
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": spec,
        "status": _pod_status(pod),
    }


def _pod_status(pod: Pod) -> dict[str, Any]:
    def cond(
        kind: str, status: bool, reason: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        c: dict[str, Any] = {
            "type": kind,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": pod.ready_transition
            if kind in ("Ready", "ContainersReady")
            else pod.created,
        }
        if reason:
            c["reason"] = reason
        if message:
            c["message"] = message
        return c

    if pod.node is None:
        return {
            "phase": "Pending",
            "conditions": [
                cond(
                    "PodScheduled",
                    False,
                    "Unschedulable",
                    "0/0 nodes are available: no schedulable node.",
                )
            ],
            "qosClass": "BestEffort",
        }
    running = pod.phase == "Running"
    not_ready = None if pod.ready else "ContainersNotReady"
    not_ready_msg = None if pod.ready else "containers with unready status: [app]"
    state: dict[str, Any] = (
        {"running": {"startedAt": pod.start_time}}
        if running
        else {"waiting": {"reason": "ContainerCreating"}}
    )
    status: dict[str, Any] = {
        "phase": pod.phase,
        "conditions": [
            cond("PodReadyToStartContainers", True),
            cond("Initialized", True),
            cond("Ready", pod.ready, not_ready, not_ready_msg),
            cond("ContainersReady", pod.ready, not_ready, not_ready_msg),
            cond("PodScheduled", True),
        ],
        "hostIP": pod.host_ip,
        "hostIPs": [{"ip": pod.host_ip}],
        "startTime": pod.start_time or pod.created,
        "containerStatuses": [
            {
                "name": "app",
                "state": state,
                "lastState": {},
                "ready": pod.ready,
                "restartCount": pod.restart_count,
                "image": pod.image,
                "imageID": _PAUSE_DIGEST,
                "started": running,
                **({"containerID": f"containerd://{pod.uid.replace('-', '')}"} if running else {}),
            }
        ],
        "qosClass": "BestEffort",
    }
    if pod.pod_ip is not None:
        status["podIP"] = pod.pod_ip
        status["podIPs"] = [{"ip": pod.pod_ip}]
    return status


def render_pdb(pdb: Pdb) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if pdb.min_available is not None:
        spec["minAvailable"] = pdb.min_available
    if pdb.max_unavailable is not None:
        spec["maxUnavailable"] = pdb.max_unavailable
    if pdb.has_selector:
        selector: dict[str, Any] = {}
        if pdb.match_labels:
            selector["matchLabels"] = dict(pdb.match_labels)
        if pdb.match_expressions:
            selector["matchExpressions"] = [dict(e) for e in pdb.match_expressions]
        spec["selector"] = selector
    if pdb.unhealthy_pod_eviction_policy is not None:
        spec["unhealthyPodEvictionPolicy"] = pdb.unhealthy_pod_eviction_policy
    meta = _meta(pdb.name, pdb.uid, pdb.resource_version, pdb.created, namespace=pdb.namespace)
    meta["generation"] = pdb.generation
    doc: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": spec,
    }
    if pdb.status is not None:
        s = pdb.status
        allowed = s.disruptions_allowed > 0
        doc["status"] = {
            "observedGeneration": s.observed_generation,
            "disruptionsAllowed": s.disruptions_allowed,
            "currentHealthy": s.current_healthy,
            "desiredHealthy": s.desired_healthy,
            "expectedPods": s.expected_pods,
            "conditions": [
                {
                    "type": "DisruptionAllowed",
                    "status": "True" if allowed else "False",
                    "reason": "SufficientPods" if allowed else "InsufficientPods",
                    "message": "",
                    "lastTransitionTime": pdb.status_transition,
                    "observedGeneration": s.observed_generation,
                }
            ],
        }
    return doc


def render_workload(workload: Workload, status: dict[str, int]) -> dict[str, Any]:
    meta = _meta(
        workload.name,
        workload.uid,
        workload.resource_version,
        workload.created,
        namespace=workload.namespace,
        labels=workload.template_labels,
    )
    meta["generation"] = 1
    template = {
        "metadata": {"labels": dict(workload.template_labels)},
        "spec": {"containers": [{"name": "app", "image": workload.image}]},
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(workload.template_labels)},
        "template": template,
    }
    if workload.kind == "ReplicaSet":
        spec["replicas"] = workload.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": workload.kind,
        "metadata": meta,
        "spec": spec,
        "status": {"observedGeneration": 1, **status},
    }


def kube_api_access_volume(suffix: str) -> dict[str, Any]:
    return {
        "name": f"kube-api-access-{suffix}",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }
