"""Kubernetes plugin settings, the ``kubernetes`` cluster config, and the ``k8s`` request with one
params struct per action."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from knm.core.features import ExecutorSettings
from knm.core.selectors import label_key_problem, label_problems
from knm.core.tasks import ExecRequest

ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS")
Action = Literal[
    "cordon",
    "uncordon",
    "drain",
    "label",
    "unlabel",
    "taint",
    "untaint",
    "wait_ready",
    "record_boot_id",
]
Effect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class K8sSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: node actions in flight at once in one process."""

    timeout: int = 600
    max_concurrent: int = 10
    #: Kubeconfigs whose user runs a command (exec, auth-provider) run code on the knm server.
    allow_kubeconfig_exec: bool = False


class KubernetesConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``kubernetes`` cluster kind's fields. ``kubeconfig`` is a secret (write-only)."""

    kubeconfig: str | None = None
    #: The kubeconfig context to use; its ``current-context`` when left out.
    context: str | None = None
    #: Use the service account knm runs under (knm itself deployed in the cluster).
    in_cluster: bool = False
    #: A node's address is the first of these types it has (else its name).
    address_order: list[str] = msgspec.field(
        default_factory=lambda: ["InternalIP", "ExternalIP", "Hostname"]
    )
    #: At most this many nodes of the cluster cordoned by knm at once, across all tasks.
    max_unavailable: int = 1


class K8sRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    action: Action
    params: dict[str, Any] = msgspec.field(default_factory=dict)


# --- params, one struct per action --------------------------------------------------------------


class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    def problems(self) -> list[str]:
        return []


class LockParams(Params, kw_only=True, forbid_unknown_fields=True):
    #: Wait (up to the timeout) for another task's lock or a free ``max_unavailable`` slot.
    wait_for_lock: bool = False


class CordonParams(LockParams, kw_only=True, forbid_unknown_fields=True):
    #: Say what would happen (cordon, leave as it is, or the lock's refusal), changing nothing.
    dry_run: bool = False


class UncordonParams(Params, kw_only=True, forbid_unknown_fields=True):
    #: Also uncordon a node that was cordoned by hand (not by knm).
    force: bool = False
    #: Say what would happen (uncordon, nothing to do, or the refusal), changing nothing.
    dry_run: bool = False


class DrainParams(LockParams, kw_only=True, forbid_unknown_fields=True):
    #: Evict pods that no controller manages (they are gone for good).
    force: bool = False
    #: Evict pods with emptyDir volumes (their data is lost).
    delete_emptydir_data: bool = False
    #: Seconds each evicted pod gets to stop; the pod's own when left out.
    grace_period: int | None = None
    #: What to do when pods are still left at the timeout.
    on_timeout: Literal["fail", "uncordon", "delete"] = "fail"
    #: List what would be evicted and which budgets would block, changing nothing.
    dry_run: bool = False
    #: Seconds for the evictions; by default the node's timeout less a reserve for ``on_timeout``.
    drain_timeout: int | None = None

    def problems(self) -> list[str]:
        found = []
        if self.grace_period is not None and self.grace_period < 0:
            found.append("params.grace_period must be 0 or more")
        if self.drain_timeout is not None and self.drain_timeout <= 0:
            found.append("params.drain_timeout must be greater than 0")
        return found


class LabelParams(Params, kw_only=True, forbid_unknown_fields=True):
    labels: dict[str, str]

    def problems(self) -> list[str]:
        if not self.labels:
            return ["params.labels must name at least one label"]
        return label_problems(self.labels, "params.labels: ")


class UnlabelParams(Params, kw_only=True, forbid_unknown_fields=True):
    keys: Annotated[list[str], msgspec.Meta(min_length=1)]

    def problems(self) -> list[str]:
        return [f"params.keys: {p}" for k in self.keys if (p := label_key_problem(k))]


class TaintParams(Params, kw_only=True, forbid_unknown_fields=True):
    key: str
    value: str = ""
    effect: Effect = "NoSchedule"

    def problems(self) -> list[str]:
        return label_problems({self.key: self.value}, "params: ")


class UntaintParams(Params, kw_only=True, forbid_unknown_fields=True):
    key: str
    #: Only the taint with this effect; every taint with the key when left out.
    effect: Effect | None = None

    def problems(self) -> list[str]:
        problem = label_key_problem(self.key)
        return [f"params: {problem}"] if problem else []


class WaitReadyParams(Params, kw_only=True, forbid_unknown_fields=True):
    #: Also wait until the node booted again: its bootID differs from the recorded one.
    after_reboot: bool = False
    #: The boot id before the reboot; by default the one ``record_boot_id`` stored on the node.
    boot_id: str | None = None
    #: Per node, the boot id before its reboot (a workflow passes the ones it recorded right
    #: before its rebooting step); a node not named here falls back to ``boot_id``.
    boot_ids: dict[str, str] | None = None


class RecordBootIdParams(Params, kw_only=True, forbid_unknown_fields=True):
    pass


PARAMS: dict[str, type[Params]] = {
    "cordon": CordonParams,
    "uncordon": UncordonParams,
    "drain": DrainParams,
    "label": LabelParams,
    "unlabel": UnlabelParams,
    "taint": TaintParams,
    "untaint": UntaintParams,
    "wait_ready": WaitReadyParams,
    "record_boot_id": RecordBootIdParams,
}
#: Actions that take the per-node lock and count against ``max_unavailable``.
DISRUPTIVE = frozenset({"cordon", "drain"})
