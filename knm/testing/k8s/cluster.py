"""In-memory cluster state plus the controllers the tests rely on.

Time-driven behaviour (graceful deletion, ReplicaSet replacements, reboots) is
kept in an event queue that is drained lazily, under the lock, whenever anyone
looks at the cluster. Nothing can observe the state without going through that
drain, so no background thread is needed and stopping the server leaves nothing
running.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import itertools
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from knm.testing.k8s import errors
from knm.testing.k8s.objects import (
    MIRROR_ANNOTATION,
    ConditionStatus,
    Node,
    NodeAddress,
    NodeInfo,
    OwnerRef,
    Pdb,
    PdbStatus,
    Pod,
    Taint,
    Workload,
    kube_api_access_volume,
    render_node,
    render_pdb,
    render_pod,
    render_workload,
    timestamp,
)
from knm.testing.k8s.selectors import LabelSelector, SelectorError, selector_from_spec
from knm.testing.k8s.validation import check_preconditions, parse_taints, string_map

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what apiserver's generateName uses


@dataclass
class Timings:
    """Simulated delays, in real seconds; small so that tests stay fast."""

    # Real seconds per second of gracePeriodSeconds, capped by max_grace.
    grace_scale: float = 0.01
    max_grace: float = 1.0
    # From a ReplicaSet pod starting to terminate until its replacement exists.
    replacement_delay: float = 0.1
    # From a pod being scheduled (or its node coming back) until it is Ready.
    pod_ready_delay: float = 0.4
    reboot_duration: float = 1.0

    def grace(self, seconds: int) -> float:
        return min(seconds * self.grace_scale, self.max_grace)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int


#: The annotation knm marks its own cordons with (the stand-in only reads it for its history).
KNM_CORDON = "knm.io/cordoned-by"


@dataclass(frozen=True)
class HistoryEntry:
    """One change, in the order it happened (``seq``), with what it touched at that moment.

    ``kind``: ``node`` (schedulability or knm's cordon mark changed), ``eviction``,
    ``deletion``, ``reboot`` (the node goes down), ``boot`` (it is back with a new boot id).
    A ``reboot`` says who asked (``by``: ``test`` for the test's own :meth:`Cluster.reboot`,
    ``node`` for a command on the node, through the ``/_standin`` endpoint), the node's state and
    the pods on it; ``violations`` names budgets it broke (a reboot a node asked for while pods
    of a budget with none to spare were on it; a deletion of a pod whose budget had none)."""

    seq: int
    at: float
    kind: str
    node: str | None
    pod: str | None = None
    unschedulable: bool | None = None
    cordoned_by: str | None = None
    boot_id: str | None = None
    pods: tuple[str, ...] = ()
    by: str = ""
    violations: tuple[str, ...] = ()


class Cluster:
    def __init__(
        self,
        timings: Timings | None = None,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timings = timings or Timings()
        # Re-entrant because public helpers call one another while holding it.
        self.lock = threading.RLock()
        self._clock = clock
        self._random = random.Random(seed)
        self._rv = 1
        self._nodes: dict[str, Node] = {}
        self._pods: dict[tuple[str, str], Pod] = {}
        self._pdbs: dict[tuple[str, str], Pdb] = {}
        self._workloads: dict[tuple[str, str, str], Workload] = {}
        self._events: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._node_index = itertools.count(1)
        self._ip_counter: dict[str, itertools.count[int]] = {}
        self._requests: list[RequestRecord] = []
        self._history: list[HistoryEntry] = []

    # ----------------------------------------------------------------- plumbing

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    @property
    def resource_version(self) -> str:
        with self.lock:
            return str(self._rv)

    def _stamp(self, at: float | None = None) -> str:
        now = self._clock()
        ago = 0.0 if at is None else max(0.0, now - at)
        return timestamp(datetime.now(UTC) - timedelta(seconds=ago))

    def _uid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _suffix(self, n: int = 5) -> str:
        return "".join(self._random.choices(_SUFFIX_ALPHABET, k=n))

    def _schedule(
        self, delay: float, action: Callable[[float], None], base: float | None = None
    ) -> None:
        due = (self._clock() if base is None else base) + delay
        heapq.heappush(self._events, (due, next(self._seq), action))

    def tick(self) -> None:
        """Apply every simulated transition that is due; every accessor calls this."""
        with self.lock:
            now = self._clock()
            while self._events and self._events[0][0] <= now:
                due, _, action = heapq.heappop(self._events)
                action(due)
            for pod in [p for p in self._pods.values() if p.node is None]:
                self._try_schedule(pod, now)
            self._refresh_derived(now)

    def record_request(self, method: str, path: str, query: str, status: int) -> None:
        with self.lock:
            self._requests.append(RequestRecord(method, path, query, status))

    @property
    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._requests)

    def _record(self, kind: str, node: str | None, **fields: Any) -> None:
        self._history.append(
            HistoryEntry(seq=len(self._history), at=self._clock(), kind=kind, node=node, **fields)
        )

    @property
    def history(self) -> list[HistoryEntry]:
        with self.lock:
            self.tick()
            return list(self._history)

    def violations(self) -> list[HistoryEntry]:
        """Entries that broke a disruption budget."""
        return [entry for entry in self.history if entry.violations]

    def _spare_violations(self, pods: Sequence[Pod]) -> tuple[str, ...]:
        """Budgets that cannot lose all of ``pods`` at once (healthy ones they select)."""
        broken = []
        for pdb in self._pdbs.values():
            selector = _pdb_selector(pdb)
            mine = [
                p
                for p in pods
                if p.namespace == pdb.namespace and selector.matches(p.labels) and p.healthy
            ]
            allowed = self._pdb_status(pdb).disruptions_allowed
            if len(mine) > allowed:
                broken.append(
                    f"{pdb.namespace}/{pdb.name}: {len(mine)} pod(s) down, {allowed} allowed"
                )
        return tuple(broken)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    # -------------------------------------------------------------------- nodes

    def add_node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        addresses: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        ready: bool = True,
        unschedulable: bool = False,
        taints: Sequence[Taint | Mapping[str, Any]] = (),
        kubelet_version: str = "v1.30.2",
    ) -> Node:
        with self.lock:
            self.tick()
            if name in self._nodes:
                raise ValueError(f"node {name!r} already exists")
            index = next(self._node_index)
            pairs = (
                list(addresses.items()) if isinstance(addresses, Mapping) else list(addresses or ())
            )
            if not pairs:
                pairs = [("InternalIP", f"10.0.0.{index}")]
            if not any(kind == "Hostname" for kind, _ in pairs):
                pairs.append(("Hostname", name))
            now = self._stamp()
            node = Node(
                name=name,
                uid=self._uid(),
                created=now,
                resource_version=self._next_rv(),
                index=index,
                labels={
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    **(labels or {}),
                },
                annotations={
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    **(annotations or {}),
                },
                unschedulable=unschedulable,
                taints=[t if isinstance(t, Taint) else msgspec.convert(t, Taint) for t in taints],
                addresses=[NodeAddress(kind, address) for kind, address in pairs],
                info=NodeInfo(
                    machine_id=hashlib.md5(name.encode()).hexdigest(),
                    system_uuid=self._uid(),
                    boot_id=self._uid(),
                    kubelet_version=kubelet_version,
                    kube_proxy_version=kubelet_version,
                ),
                ready_transition=now,
                heartbeat=now,
            )
            if not ready:
                node.ready, node.ready_reason = "False", "KubeletNotReady"
                node.ready_message = "container runtime network not ready"
            self._nodes[name] = node
            self.tick()
            return copy.deepcopy(node)

    def remove_node(self, name: str) -> None:
        with self.lock:
            self._get_node(name)
            del self._nodes[name]
            self._next_rv()
            self.tick()

    def _get_node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r}") from None

    def node(self, name: str) -> Node:
        """A snapshot copy; mutating it does not change the cluster."""
        with self.lock:
            self.tick()
            return copy.deepcopy(self._get_node(name))

    def nodes(self) -> list[Node]:
        with self.lock:
            self.tick()
            return [copy.deepcopy(n) for _, n in sorted(self._nodes.items())]

    def set_ready(self, name: str, ready: bool, message: str | None = None) -> None:
        with self.lock:
            self.tick()
            node = self._get_node(name)
            if ready:
                self._set_node_ready(
                    node,
                    "True",
                    "KubeletReady",
                    message or "kubelet is posting ready status",
                    self._clock(),
                )
            else:
                self._set_node_ready(
                    node,
                    "False",
                    "KubeletNotReady",
                    message or "container runtime is down",
                    self._clock(),
                )
            self.tick()

    def _set_node_ready(
        self,
        node: Node,
        status: ConditionStatus,
        reason: str,
        message: str,
        at: float,
        pods_ready_delay: float = 0.0,
    ) -> None:
        if (node.ready, node.ready_reason, node.ready_message) == (status, reason, message):
            return
        stamp = self._stamp(at)
        if node.ready != status:
            node.ready_transition = stamp
        node.ready, node.ready_reason, node.ready_message = status, reason, message
        node.heartbeat = stamp
        node.resource_version = self._next_rv()
        for pod in self._pods.values():
            if pod.node != node.name or pod.terminating or pod.phase != "Running":
                continue
            if status != "True":
                # The node lifecycle controller marks every pod on a lost node unready.
                self._set_pod_ready(pod, False, at)
            elif pods_ready_delay <= 0:
                self._set_pod_ready(pod, True, at)
            else:
                self._schedule(pods_ready_delay, self._pod_ready_action(pod.uid), base=at)

    def reboot(self, name: str, duration: float | None = None, *, by: str = "test") -> None:
        """NotReady (kubelet silent) for ``duration``, then Ready with a new bootID.

        ``by``: who asked — ``test`` (the test itself; never a violation) or ``node`` (a
        command run on the node, which knm ran)."""
        with self.lock:
            self.tick()
            node = self._get_node(name)
            if node.rebooting:
                return
            on_node = [
                p
                for p in self._pods.values()
                if p.node == name and not p.mirror and not _daemonset(p) and not p.terminating
                and p.phase in ("Running", "Pending")
            ]  # fmt: skip
            self._record(
                "reboot",
                name,
                unschedulable=node.unschedulable,
                cordoned_by=node.annotations.get(KNM_CORDON),
                boot_id=node.info.boot_id,
                pods=tuple(f"{p.namespace}/{p.name}" for p in on_node),
                by=by,
                violations=self._spare_violations(on_node) if by != "test" else (),
            )
            node.rebooting = True
            now = self._clock()
            self._set_node_ready(
                node, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", now
            )
            uid = node.uid

            def come_back(due: float) -> None:
                current = self._nodes.get(name)
                if current is None or current.uid != uid:
                    return
                current.rebooting = False
                current.info = msgspec.structs.replace(current.info, boot_id=self._uid())
                self._record("boot", name, boot_id=current.info.boot_id)
                for pod in self._pods.values():
                    if pod.node == name and not pod.terminating and pod.phase == "Running":
                        pod.restart_count += 1
                        pod.start_time = self._stamp(due)
                self._set_node_ready(
                    current,
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    due,
                    pods_ready_delay=self.timings.pod_ready_delay,
                )
                current.resource_version = self._next_rv()

            self._schedule(
                self.timings.reboot_duration if duration is None else duration, come_back
            )

    def node_doc(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            node = self._nodes.get(name)
            if node is None:
                raise errors.not_found("nodes", name)
            return render_node(node)

    def list_node_docs(
        self, selector: LabelSelector, fields: Callable[[dict[str, Any]], bool]
    ) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            self.tick()
            docs = [
                render_node(n) for _, n in sorted(self._nodes.items()) if selector.matches(n.labels)
            ]
            return [d for d in docs if fields(d)], str(self._rv)

    def write_node(
        self,
        name: str,
        doc: Any,
        *,
        require_rv: bool,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Store a client-supplied Node document (PUT, or the result of a PATCH).

        Only metadata.labels/annotations and spec are writable through the main
        resource; status is silently kept, exactly as the real registry does.
        """
        with self.lock:
            self.tick()
            node = self._nodes.get(name)
            if node is None:
                raise errors.not_found("nodes", name)
            if not isinstance(doc, dict) or not isinstance(doc.get("metadata", {}), dict):
                raise errors.bad_request('Node in version "v1" cannot be handled as a Node')
            meta = doc.get("metadata") or {}
            if meta.get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name "
                    f"on the URL ({name})"
                )
            rv = meta.get("resourceVersion")
            if rv is not None and str(rv) != str(node.resource_version):
                raise errors.conflict("nodes", name)
            if rv is None and require_rv:
                raise errors.invalid(
                    "Node",
                    name,
                    [
                        {
                            "field": "metadata.resourceVersion",
                            "message": "Invalid value: 0x0: must be specified for an update",
                        }
                    ],
                )
            if meta.get("uid") not in (None, node.uid):
                raise errors.conflict("nodes", name)
            labels = string_map(meta.get("labels"), "labels", name, validate=True)
            annotations = string_map(meta.get("annotations"), "annotations", name, validate=False)
            spec = doc.get("spec") or {}
            if not isinstance(spec, dict):
                raise errors.bad_request('Node in version "v1" cannot be handled as a Node: spec')
            unschedulable = spec.get("unschedulable") or False
            if not isinstance(unschedulable, bool):
                raise errors.bad_request(
                    'Node in version "v1" cannot be handled as a Node: json: cannot unmarshal '
                    "into Go struct field NodeSpec.spec.unschedulable of type bool"
                )
            taints = parse_taints(spec.get("taints"), name, self._stamp())
            candidate = copy.deepcopy(node)
            candidate.labels, candidate.annotations = labels, annotations
            candidate.unschedulable, candidate.taints = unschedulable, taints
            if render_node(candidate) == render_node(node) or dry_run:
                return render_node(candidate)
            before = (node.unschedulable, node.annotations.get(KNM_CORDON))
            node.labels, node.annotations = labels, annotations
            node.unschedulable, node.taints = unschedulable, taints
            node.resource_version = self._next_rv()
            if (unschedulable, annotations.get(KNM_CORDON)) != before:
                self._record(
                    "node",
                    name,
                    unschedulable=unschedulable,
                    cordoned_by=annotations.get(KNM_CORDON),
                    boot_id=node.info.boot_id,
                )
            self.tick()
            return render_node(node)

    # --------------------------------------------------------------------- pods

    def add_pod(
        self,
        namespace: str,
        name: str,
        node: str | None,
        *,
        owner_kind: str | None = "ReplicaSet",
        owner_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        mirror: bool = False,
        empty_dir: bool = False,
        volumes: Sequence[Mapping[str, Any]] = (),
        ready: bool = True,
        phase: str = "Running",
        grace_period: int = 30,
        image: str = "registry.k8s.io/pause:3.9",
    ) -> Pod:
        """Create a pod; ``mirror=True`` makes it a static pod's mirror owned by its Node.

        A ReplicaSet/DaemonSet owner is created implicitly (named after the pod
        without its last ``-suffix`` unless ``owner_name`` is given) and its
        desired replica count grows by one per pod.
        """
        with self.lock:
            self.tick()
            if (namespace, name) in self._pods:
                raise ValueError(f"pod {namespace}/{name} already exists")
            owner: OwnerRef | None = None
            annotations = dict(annotations or {})
            if mirror:
                if node is None:
                    raise ValueError("a mirror pod needs a node")
                config_hash = hashlib.md5(f"{namespace}/{name}".encode()).hexdigest()
                annotations |= {
                    "kubernetes.io/config.hash": config_hash,
                    MIRROR_ANNOTATION: config_hash,
                    "kubernetes.io/config.seen": self._stamp(),
                    "kubernetes.io/config.source": "file",
                }
                owner = OwnerRef("Node", node, self._get_node(node).uid)
            elif owner_kind is not None:
                owner_name = owner_name or (
                    name.rsplit("-", 1)[0] if "-" in name else f"{name}-owner"
                )
                if owner_kind in ("ReplicaSet", "DaemonSet"):
                    workload = self._workload(
                        owner_kind, namespace, owner_name, dict(labels or {}), image
                    )
                    workload.replicas += 1
                    owner = OwnerRef(owner_kind, owner_name, workload.uid)
                else:
                    owner = OwnerRef(
                        owner_kind,
                        owner_name,
                        str(
                            uuid.uuid5(uuid.NAMESPACE_URL, f"{owner_kind}/{namespace}/{owner_name}")
                        ),
                    )
            extra = [dict(v) for v in volumes]
            if empty_dir:
                extra.insert(0, {"name": "scratch", "emptyDir": {}})
            pod = self._new_pod(
                namespace,
                name,
                owner=owner,
                labels=dict(labels or {}),
                annotations=annotations,
                volumes=extra,
                image=image,
                grace_period=grace_period,
                service_account=not mirror,
            )
            if node is not None:
                self._bind(pod, self._get_node(node))
                pod.phase, pod.ready = phase, ready and phase == "Running"
                pod.start_time = pod.created
            self._pods[pod.key] = pod
            self.tick()
            return copy.deepcopy(pod)

    def _new_pod(
        self,
        namespace: str,
        name: str,
        *,
        owner: OwnerRef | None,
        labels: dict[str, str],
        annotations: dict[str, str],
        volumes: list[dict[str, Any]],
        image: str,
        grace_period: int,
        service_account: bool,
        generate_name: str | None = None,
    ) -> Pod:
        if service_account:
            # Every non-static pod gets the projected service-account volume.
            volumes = [*volumes, kube_api_access_volume(self._suffix())]
        now = self._stamp()
        return Pod(
            namespace=namespace,
            name=name,
            uid=self._uid(),
            created=now,
            resource_version=self._next_rv(),
            node=None,
            labels=labels,
            annotations=annotations,
            owner=owner,
            volumes=volumes,
            image=image,
            phase="Pending",
            ready=False,
            ready_transition=now,
            termination_grace=grace_period,
            generate_name=generate_name,
        )

    def _bind(self, pod: Pod, node: Node) -> None:
        pod.node = node.name
        pod.host_ip = next(
            (a.address for a in node.addresses if a.type == "InternalIP"), "10.0.0.1"
        )
        counter = self._ip_counter.setdefault(node.name, itertools.count(2))
        pod.pod_ip = f"10.244.{node.index}.{next(counter) % 254 + 1}"
        pod.resource_version = self._next_rv()

    def _workload(
        self, kind: str, namespace: str, name: str, labels: dict[str, str], image: str
    ) -> Workload:
        key = (kind, namespace, name)
        if key not in self._workloads:
            self._workloads[key] = Workload(
                kind=kind,
                namespace=namespace,
                name=name,
                uid=self._uid(),
                created=self._stamp(),
                resource_version=self._next_rv(),
                replicas=0,
                template_labels=labels,
                image=image,
            )
        return self._workloads[key]

    def _set_pod_ready(self, pod: Pod, ready: bool, at: float) -> None:
        if pod.ready == ready:
            return
        pod.ready = ready
        pod.ready_transition = self._stamp(at)
        pod.resource_version = self._next_rv()

    def _pod_ready_action(self, uid: str) -> Callable[[float], None]:
        def become_ready(due: float) -> None:
            pod = self._pod_by_uid(uid)
            if pod is None or pod.terminating or pod.node is None:
                return
            node = self._nodes.get(pod.node)
            if node is None or not node.is_ready:
                return
            if pod.phase != "Running":
                pod.phase = "Running"
                pod.start_time = self._stamp(due)
            self._set_pod_ready(pod, True, due)
            pod.resource_version = self._next_rv()

        return become_ready

    def _pod_by_uid(self, uid: str) -> Pod | None:
        return next((p for p in self._pods.values() if p.uid == uid), None)

    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        with self.lock:
            self.tick()
            pod = self._pods[(namespace, name)]
            if ready and pod.phase != "Running":
                pod.phase = "Running"
                pod.start_time = self._stamp()
            self._set_pod_ready(pod, ready, self._clock())
            self.tick()

    def pod(self, namespace: str, name: str) -> Pod | None:
        with self.lock:
            self.tick()
            pod = self._pods.get((namespace, name))
            return copy.deepcopy(pod) if pod is not None else None

    def pods(self, namespace: str | None = None) -> list[Pod]:
        with self.lock:
            self.tick()
            return [
                copy.deepcopy(p)
                for k, p in sorted(self._pods.items())
                if namespace is None or p.namespace == namespace
            ]

    def pods_on(self, node: str) -> list[Pod]:
        """Pods bound to ``node``, terminating ones included (check ``.terminating``)."""
        return [p for p in self.pods() if p.node == node]

    def pod_doc(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            pod = self._pods.get((namespace, name))
            if pod is None:
                raise errors.not_found("pods", name)
            return render_pod(pod)

    def list_pod_docs(
        self,
        namespace: str | None,
        selector: LabelSelector,
        fields: Callable[[dict[str, Any]], bool],
    ) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            self.tick()
            docs = [
                render_pod(p)
                for _, p in sorted(self._pods.items())
                if (namespace is None or p.namespace == namespace) and selector.matches(p.labels)
            ]
            return [d for d in docs if fields(d)], str(self._rv)

    def namespaces(self) -> list[str]:
        with self.lock:
            found = {p.namespace for p in self._pods.values()} | {
                p.namespace for p in self._pdbs.values()
            }
            return sorted(found | {"default", "kube-node-lease", "kube-public", "kube-system"})

    def delete_pod(
        self,
        namespace: str,
        name: str,
        grace_period: int | None = None,
        *,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Graceful deletion as the registry does it; returns the pod as last seen."""
        with self.lock:
            self.tick()
            pod = self._pods.get((namespace, name))
            if pod is None:
                raise errors.not_found("pods", name)
            check_preconditions(pod, preconditions)
            if grace_period is not None and grace_period < 0:
                grace_period = 0
            if dry_run:
                return render_pod(pod)
            self._record(
                "deletion",
                pod.node,
                pod=f"{namespace}/{name}",
                violations=self._spare_violations([pod]) if not pod.terminating else (),
            )
            self._delete(pod, grace_period, self._clock())
            doc = render_pod(pod)
            self.tick()
            return doc

    def _delete(self, pod: Pod, grace_period: int | None, at: float) -> None:
        grace = pod.termination_grace if grace_period is None else grace_period
        if pod.node is None or grace == 0:
            self._remove_pod(pod, at, started_termination=not pod.terminating)
            return
        if pod.terminating:
            # A second delete may only shorten the grace period.
            if pod.deletion_grace is not None and grace >= pod.deletion_grace:
                return
        else:
            self._controller_notices_termination(pod, at)
        pod.deletion_grace = grace
        wall = datetime.now(UTC) + timedelta(seconds=grace) - timedelta(seconds=self._clock() - at)
        pod.deletion_timestamp = timestamp(wall)
        self._set_pod_ready(pod, False, at)
        pod.resource_version = self._next_rv()
        uid = pod.uid

        def finish(due: float) -> None:
            current = self._pod_by_uid(uid)
            if current is not None and current.deletion_grace == grace:
                self._remove_pod(current, due, started_termination=False)

        self._schedule(self.timings.grace(grace), finish, base=at)

    def _remove_pod(self, pod: Pod, at: float, *, started_termination: bool) -> None:
        if started_termination:
            self._controller_notices_termination(pod, at)
        del self._pods[pod.key]
        self._next_rv()
        if pod.mirror and pod.node in self._nodes:
            # The kubelet still runs the static pod and recreates its mirror.
            node_name, template = pod.node, copy.deepcopy(pod)

            def recreate(due: float) -> None:
                node = self._nodes.get(node_name)
                if node is None or template.key in self._pods:
                    return
                clone = self._new_pod(
                    template.namespace,
                    template.name,
                    owner=OwnerRef("Node", node.name, node.uid),
                    labels=template.labels,
                    annotations=template.annotations,
                    volumes=template.volumes,
                    image=template.image,
                    grace_period=template.termination_grace,
                    service_account=False,
                )
                self._bind(clone, node)
                clone.phase, clone.ready, clone.start_time = "Running", True, self._stamp(due)
                self._pods[clone.key] = clone

            self._schedule(self.timings.replacement_delay, recreate, base=at)

    def _controller_notices_termination(self, pod: Pod, at: float) -> None:
        """ReplicaSets replace a terminating pod elsewhere; DaemonSets on the same node."""
        owner = pod.owner
        if owner is None or owner.kind not in ("ReplicaSet", "DaemonSet"):
            return
        workload = self._workloads.get((owner.kind, pod.namespace, owner.name))
        if workload is None:
            return
        template = copy.deepcopy(pod)

        def replace(due: float) -> None:
            if (owner.kind, pod.namespace, owner.name) not in self._workloads:
                return
            if owner.kind == "DaemonSet" and template.node not in self._nodes:
                return
            name = f"{owner.name}-{self._suffix()}"
            clone = self._new_pod(
                template.namespace,
                name,
                owner=owner,
                labels=template.labels,
                annotations=template.annotations,
                volumes=[v for v in template.volumes if "projected" not in v],
                image=template.image,
                grace_period=template.termination_grace,
                service_account=True,
                generate_name=f"{owner.name}-",
            )
            self._pods[clone.key] = clone
            if owner.kind == "DaemonSet":
                assert template.node is not None
                self._bind(clone, self._nodes[template.node])
                self._schedule(
                    self.timings.pod_ready_delay, self._pod_ready_action(clone.uid), base=due
                )
            else:
                self._try_schedule(clone, due, avoid=template.node)

        self._schedule(self.timings.replacement_delay, replace, base=at)

    def _try_schedule(self, pod: Pod, at: float, avoid: str | None = None) -> None:
        candidates = [
            n
            for n in self._nodes.values()
            if n.is_ready
            and not n.unschedulable
            and not any(t.effect in ("NoSchedule", "NoExecute") for t in n.effective_taints())
        ]
        if not candidates:
            return  # stays Pending; retried on every tick
        load = {n.name: 0 for n in candidates}
        for p in self._pods.values():
            if p.node in load:
                load[p.node] += 1
        target = min(candidates, key=lambda n: (n.name == avoid, load[n.name], n.name))
        self._bind(pod, target)
        self._schedule(self.timings.pod_ready_delay, self._pod_ready_action(pod.uid), base=at)

    # ----------------------------------------------------------------- eviction

    def evict(
        self,
        namespace: str,
        name: str,
        grace_period: int | None = None,
        *,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> None:
        """The policy/v1 Eviction subresource; raises ``ApiError`` when refused."""
        with self.lock:
            self.tick()
            pod = self._pods.get((namespace, name))
            if pod is None:
                raise errors.not_found("pods", name)
            check_preconditions(pod, preconditions)
            # Pods that are not running, or already going, cost no disruption.
            if pod.phase in ("Succeeded", "Failed", "Pending") or pod.terminating:
                if not dry_run:
                    self._delete(pod, grace_period, self._clock())
                    self.tick()
                return
            budgets = [
                b
                for b in self._pdbs.values()
                if b.namespace == namespace and _pdb_selector(b).matches(pod.labels)
            ]
            if len(budgets) > 1:
                raise errors.internal_error(
                    "This pod has more than one PodDisruptionBudget, which the eviction "
                    "subresource does not support."
                )
            if budgets:
                budget = budgets[0]
                status = self._pdb_status(budget)
                policy = budget.unhealthy_pod_eviction_policy or "IfHealthyBudget"
                unhealthy_ok = not pod.healthy and (
                    policy == "AlwaysAllow"
                    or (
                        status.current_healthy >= status.desired_healthy
                        and status.desired_healthy > 0
                    )
                )
                if not unhealthy_ok and status.disruptions_allowed <= 0:
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [
                            {
                                "type": "DisruptionBudget",
                                "message": f"The disruption budget {budget.name} needs "
                                f"{status.desired_healthy} healthy pods and has "
                                f"{status.current_healthy} currently",
                            }
                        ],
                    )
            if not dry_run:
                self._record("eviction", pod.node, pod=f"{namespace}/{name}")
                self._delete(pod, grace_period, self._clock())
                self.tick()

    # --------------------------------------------------------------------- pdbs

    def add_pdb(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str] | None,
        *,
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
        match_expressions: Iterable[Mapping[str, Any]] = (),
        unhealthy_pod_eviction_policy: str | None = None,
    ) -> Pdb:
        """``selector`` is matchLabels; None without expressions selects no pods at all."""
        if (min_available is None) == (max_unavailable is None):
            raise ValueError("give exactly one of min_available and max_unavailable")
        for value in (min_available, max_unavailable):
            if isinstance(value, str) and not re.fullmatch(r"\d+%", value):
                raise ValueError(f"{value!r} is neither an int nor a percentage")
        expressions = [dict(e) for e in match_expressions]
        selector_from_spec(selector, expressions)  # fail early on bad operators
        with self.lock:
            self.tick()
            if (namespace, name) in self._pdbs:
                raise ValueError(f"pdb {namespace}/{name} already exists")
            pdb = Pdb(
                namespace=namespace,
                name=name,
                uid=self._uid(),
                created=self._stamp(),
                resource_version=self._next_rv(),
                match_labels=dict(selector)
                if selector is not None
                else ({} if expressions else None),
                match_expressions=expressions,
                min_available=min_available,
                max_unavailable=max_unavailable,
                unhealthy_pod_eviction_policy=unhealthy_pod_eviction_policy,
            )
            self._pdbs[(namespace, name)] = pdb
            self.tick()
            return copy.deepcopy(pdb)

    def remove_pdb(self, namespace: str, name: str) -> None:
        with self.lock:
            del self._pdbs[(namespace, name)]
            self._next_rv()

    def pdb(self, namespace: str, name: str) -> Pdb:
        with self.lock:
            self.tick()
            return copy.deepcopy(self._pdbs[(namespace, name)])

    def pdb_doc(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            pdb = self._pdbs.get((namespace, name))
            if pdb is None:
                raise errors.not_found("poddisruptionbudgets", name, "policy")
            return render_pdb(pdb)

    def list_pdb_docs(
        self, namespace: str | None, selector: LabelSelector
    ) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            self.tick()
            docs = [
                render_pdb(b)
                for _, b in sorted(self._pdbs.items())
                if namespace is None or b.namespace == namespace
            ]
            return [d for d in docs if selector.matches(d["metadata"].get("labels", {}))], str(
                self._rv
            )

    def _pdb_status(self, pdb: Pdb) -> PdbStatus:
        selector = _pdb_selector(pdb)
        pods = [
            p
            for p in self._pods.values()
            if p.namespace == pdb.namespace and selector.matches(p.labels)
        ]
        healthy = sum(p.healthy for p in pods)
        if isinstance(pdb.min_available, int):
            expected, desired = len(pods), pdb.min_available
        else:
            # Percentages and maxUnavailable are relative to the controllers' scale,
            # not to the pods that happen to exist right now.
            expected = self._controller_scale(pods)
            if pdb.max_unavailable is not None:
                desired = max(0, expected - _scaled(pdb.max_unavailable, expected))
            else:
                assert pdb.min_available is not None
                desired = _scaled(pdb.min_available, expected)
        return PdbStatus(
            current_healthy=healthy,
            desired_healthy=desired,
            disruptions_allowed=max(0, healthy - desired),
            expected_pods=expected,
            observed_generation=pdb.generation,
        )

    def _controller_scale(self, pods: list[Pod]) -> int:
        seen: set[tuple[str, str]] = set()
        total = 0
        for pod in pods:
            if pod.owner is None or pod.owner.kind not in ("ReplicaSet", "DaemonSet"):
                total += 1
                continue
            key = (pod.owner.kind, pod.owner.name)
            if key not in seen:
                seen.add(key)
                workload = self._workloads.get((pod.owner.kind, pod.namespace, pod.owner.name))
                total += workload.replicas if workload is not None else 1
        return total

    # ---------------------------------------------------------------- workloads

    def workload_doc(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            workload = self._workloads.get((kind, namespace, name))
            if workload is None:
                raise errors.not_found(kind.lower() + "s", name, "apps")
            return render_workload(workload, self._workload_status(workload))

    def list_workload_docs(
        self, kind: str, namespace: str | None, selector: LabelSelector
    ) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            self.tick()
            docs = [
                render_workload(w, self._workload_status(w))
                for key, w in sorted(self._workloads.items())
                if key[0] == kind
                and (namespace is None or w.namespace == namespace)
                and selector.matches(w.template_labels)
            ]
            return docs, str(self._rv)

    def _workload_status(self, workload: Workload) -> dict[str, int]:
        pods = [
            p
            for p in self._pods.values()
            if p.owner is not None and p.owner.uid == workload.uid and not p.terminating
        ]
        ready = sum(p.healthy for p in pods)
        if workload.kind == "DaemonSet":
            scheduled = len({p.node for p in pods if p.node is not None})
            return {
                "currentNumberScheduled": scheduled,
                "desiredNumberScheduled": workload.replicas,
                "numberMisscheduled": 0,
                "numberReady": ready,
                "numberAvailable": ready,
                "updatedNumberScheduled": scheduled,
            }
        return {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
        }

    def _refresh_derived(self, now: float) -> None:
        # Controllers write status back, which bumps resourceVersion; mimic that
        # so that clients comparing versions see the change.
        for pdb in self._pdbs.values():
            status = self._pdb_status(pdb)
            if status != pdb.status:
                old_allowed = pdb.status.disruptions_allowed > 0 if pdb.status else None
                if old_allowed != (status.disruptions_allowed > 0):
                    pdb.status_transition = self._stamp(now)
                pdb.status = status
                pdb.resource_version = self._next_rv()
        for workload in self._workloads.values():
            status = self._workload_status(workload)
            if status != workload.last_status:
                workload.last_status = status
                workload.resource_version = self._next_rv()


def _daemonset(pod: Pod) -> bool:
    return pod.owner is not None and pod.owner.kind == "DaemonSet"


def _pdb_selector(pdb: Pdb) -> LabelSelector:
    if not pdb.has_selector:
        return LabelSelector(nothing=True)
    return selector_from_spec(pdb.match_labels, pdb.match_expressions)


def _scaled(value: int | str, total: int) -> int:
    if isinstance(value, int):
        return value
    return math.ceil(int(value.rstrip("%")) * total / 100)


__all__ = ["Cluster", "RequestRecord", "SelectorError", "Timings"]
