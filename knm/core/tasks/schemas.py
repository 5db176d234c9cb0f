"""Structs of the task engine: the shared request base, node reports and stored tasks.

What the API sends (states, ``TERMINAL``, status answers, history rows) is in ``knm.wire``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from knm.core.targets import TargetRequest
from knm.wire import TERMINAL, NodeState, Page, TaskState, TaskSummary, page_of
from knm.wire import NodeResult as NodeOut

__all__ = [
    "TERMINAL",
    "ExecRequest",
    "HistoryItem",
    "HistoryPage",
    "NodeOut",
    "NodeResult",
    "NodeState",
    "TaskRow",
    "TaskState",
]


#: The longest deadline a task may have (seconds).
MAX_DEADLINE = 366 * 86_400


class ExecRequest(TargetRequest, kw_only=True, forbid_unknown_fields=True):
    """What every execute request carries (``cluster_name``, ``target_nodes`` or
    ``target_selector``, ``credential_id``, ``timeout`` from ``TargetRequest``); an executor's
    request struct extends it."""

    #: Seconds the whole task may take.
    deadline: int | None = None
    #: At most this many nodes in flight at once.
    batch_size: int | None = None
    #: After this many failed nodes, start no more; the rest fail as ``skipped``.
    max_failures: int | None = None

    def shape_problems(self) -> list[str]:
        """Fields missing, or given together where one excludes the other: a 400 (the body's
        shape is wrong), each naming its field first."""
        found = []
        if self.target_nodes and self.target_selector and self.target_selector.strip():
            found.append("target_nodes: give either target_nodes or target_selector, not both")
        if not self.target_nodes and not (self.target_selector or "").strip():
            found.append(
                "target_nodes: required (node names), or target_selector (a label selector)"
            )
        return found

    def problems(self) -> list[str]:
        """Values that break a rule: a 422."""
        found = []
        for name in ("timeout", "deadline", "batch_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                found.append(f"{name} must be greater than 0")
        if self.max_failures is not None and self.max_failures < 0:
            found.append("max_failures must be 0 or more")
        if self.timeout is not None and self.timeout > 7 * 86_400:
            found.append("timeout must be at most 604800 seconds (7 days)")
        if self.deadline is not None and self.deadline > MAX_DEADLINE:
            found.append(f"deadline must be at most {MAX_DEADLINE} seconds (366 days)")
        return found


class NodeResult(msgspec.Struct, kw_only=True):
    """How one node's work ended, as an executor reports it."""

    status: NodeState
    reason: str | None = None
    message: str = ""
    exit_code: int | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def success(cls, message: str = "", exit_code: int | None = 0, **data: Any) -> NodeResult:
        return cls(status="success", message=message, exit_code=exit_code, data=data)

    @classmethod
    def failure(
        cls, reason: str, message: str = "", exit_code: int | None = None, **data: Any
    ) -> NodeResult:
        return cls(status="failed", reason=reason, message=message, exit_code=exit_code, data=data)


class TaskRow(msgspec.Struct, kw_only=True):
    """A task as stored."""

    id: int
    task_id: str
    kind: str
    status: str
    cluster_name: str
    target_nodes: list[str]
    request: dict[str, Any]
    summary: dict[str, Any]
    result: dict[str, Any]
    credential_id: int | None
    user_id: int | None
    username: str | None
    parent_task_id: str | None
    rerun_of: str | None
    success_count: int
    failed_count: int
    progress: int
    message: str
    error: str | None
    timeout: int | None
    deadline_at: datetime | None
    cancel_requested: bool
    cancel_reason: str | None
    worker_id: str | None
    lease_until: datetime | None
    created_at: datetime
    start_time: datetime | None
    end_time: datetime | None
    idempotency_key: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration(self) -> int | None:
        if self.start_time is None:
            return None
        end = self.end_time or datetime.now(self.start_time.tzinfo)
        return max(0, int((end - self.start_time).total_seconds()))


#: A history row (``knm.wire.TaskSummary``) and a page of them, sent as ``executions``.
HistoryItem = TaskSummary
HistoryPage: type[Page[TaskSummary]] = page_of("executions", TaskSummary)
