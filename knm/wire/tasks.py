"""Tasks as the API sends them: states, node results, status answers, history rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import msgspec

from knm.wire.base import Open, flatten, split_extra

TaskState = Literal["pending", "running", "completed", "failed", "cancelled"]
TASK_STATES: tuple[str, ...] = get_args(TaskState)
#: Task states after which a task never changes again.
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
#: A node's status has two values; why a node failed is its ``reason``.
NodeState = Literal["success", "failed"]
StepState = Literal["pending", "running", "completed", "failed", "skipped", "cancelled"]


class NodeResult(Open, kw_only=True, omit_defaults=True):
    """One entry of a status answer's ``results``: how one node's work ended. An executor's
    own per-node fields (Ansible's ``ok``/``changed`` counts) are in ``extra``."""

    node: str
    status: NodeState
    reason: str | None = None
    message: str = ""
    exit_code: int | None = None
    #: Left out when the executor's status answers carry no per-node output.
    stdout: str | None = None
    stderr: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    address: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None


class TaskStatus(Open, kw_only=True):
    """A task's status answer: the contract's common fields, the fields the contract gives
    some kinds (``output``, ``current_step``, ``total_steps``, ``steps``; absent otherwise),
    and the executor's own (``command``, ``playbook_name`` …) in ``extra``."""

    task_id: str
    status: TaskState
    kind: str = ""
    cluster_name: str = ""
    target_nodes: list[str] = []
    success_count: int = 0
    failed_count: int = 0
    progress: int = 0
    message: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    created_at: datetime | None = None
    user_id: int | None = None
    username: str | None = None
    parent_task_id: str | None = None
    rerun_of: str | None = None
    error: str | None = None
    results: list[NodeResult] = []
    output: str | msgspec.UnsetType = msgspec.UNSET
    current_step: str | msgspec.UnsetType | None = msgspec.UNSET
    total_steps: int | msgspec.UnsetType | None = msgspec.UNSET
    steps: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def to_wire(self) -> dict[str, Any]:
        """The answer as sent: ``extra`` (the task's and each node's) beside the rest."""
        data = flatten(msgspec.to_builtins(self))
        for result in data["results"]:
            flatten(result)
            # Always present (the contract's shape): null for a node that ended without one
            # (a timeout, a cancel, a lost connection, an unreachable node).
            result.setdefault("exit_code", None)
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TaskStatus:
        results = [split_extra(r, NodeResult) for r in data.get("results") or ()]
        status = split_extra({k: v for k, v in data.items() if k != "results"}, cls)
        status.results = results
        return status


class TaskStarted(Open, kw_only=True, omit_defaults=True):
    """The answer of execute/run/rerun/resume; the executor's summary is in ``extra``."""

    task_id: str
    status: TaskState
    cluster_name: str = ""
    target_nodes: list[str] = []
    start_time: datetime | None = None
    rerun_of: str | None = None
    resumed_from: str | None = None


class TaskSummary(Open, kw_only=True):
    """One row of a history or ``/tasks`` list. The kind's display fields (``command``,
    ``playbook_name``, ``script_name``, ``workflow_name`` …) sit at the top level, as in the
    status answer and the contract's rows (``extra``)."""

    id: int
    task_id: str
    status: TaskState
    kind: str = ""
    cluster_name: str = ""
    target_nodes: list[str] = []
    success_count: int = 0
    failed_count: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    user_id: int | None = None
    username: str | None = None
    parent_task_id: str | None = None
    created_at: datetime | None = None

    def to_wire(self) -> dict[str, Any]:
        return flatten(msgspec.to_builtins(self))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TaskSummary:
        return split_extra(data, cls)


class CancelResult(msgspec.Struct):
    task_id: str
    status: TaskState


class StepStatus(msgspec.Struct, kw_only=True):
    """One of a workflow status answer's ``steps`` (one per step and batch)."""

    id: str
    name: str
    status: StepState
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    #: ``success`` for a completed step, ``failed`` for a failed or cancelled one, else null.
    result: Literal["success", "failed"] | None = None
    progress: int = 0
    type: str = ""
    batch: int = 0
    attempts: int = 0
    error: str | None = None
    task_id: str | None = None
    nodes: list[str] = []
    #: The values later steps read as ``{{ steps.<id>.<key> }}``.
    outputs: dict[str, Any] = {}


def _fields_of(
    struct: type[msgspec.Struct], *, required: tuple[str, ...] = (), **types: Any
) -> list[tuple[Any, ...]]:
    """``struct``'s fields for ``msgspec.defstruct``, less ``extra``; ``types`` replace some
    fields' types, and ``required`` fields lose their default (always sent)."""
    fields: list[tuple[Any, ...]] = []
    for field in msgspec.structs.fields(struct):
        if field.name == "extra":
            continue
        kind = types.get(field.name, field.type)
        if field.name in required:
            fields.append((field.name, kind))
        elif field.default is not msgspec.NODEFAULT:
            fields.append((field.name, kind, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, kind, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, kind))
    # Fields without a default go first, as a struct wants them.
    return sorted(fields, key=lambda f: len(f) > 2)


def answer_shapes(
    prefix: str, own: dict[str, Any]
) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    """The execute and status answers of one kind of task as the OpenAPI document shows them:
    the common fields and the kind's own (``own``: name → type), flat, as they are sent
    (``SshStarted``, ``SshStatus``). Made once per ``prefix``."""
    if prefix in _SHAPES:
        return _SHAPES[prefix]
    extra = [(name, kind | None, None) for name, kind in own.items()]
    started = msgspec.defstruct(
        f"{prefix}Started", _fields_of(TaskStarted) + extra, kw_only=True, module=__name__
    )
    node = msgspec.defstruct(
        f"{prefix}NodeResult",
        _fields_of(NodeResult, required=("exit_code",)),
        kw_only=True,
        module=__name__,
    )
    steps = list[StepStatus] | msgspec.UnsetType
    status = msgspec.defstruct(
        f"{prefix}Status",
        _fields_of(TaskStatus, results=list[node], steps=steps)  # type: ignore[valid-type]
        + [field for field in extra if field[0] not in TASK_STATUS_FIELDS],
        kw_only=True,
        module=__name__,
    )
    _SHAPES[prefix] = (started, status)
    return started, status


_SHAPES: dict[str, tuple[type[msgspec.Struct], type[msgspec.Struct]]] = {}
TASK_STATUS_FIELDS = frozenset(f.name for f in msgspec.structs.fields(TaskStatus))
