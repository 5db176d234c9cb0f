"""Typed results of the SDK. Unknown fields in answers are ignored, so a newer server does not
break an older client; fields an executor or provider adds beyond these land in ``extra``."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from knm.core.tasks.events import Event

T = TypeVar("T")

#: Task states after which a task never changes again.
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Page(msgspec.Struct, Generic[T]):
    """One page of a list: ``total`` across every page, and this page's ``items``."""

    total: int
    items: list[T]


class UserRef(msgspec.Struct):
    id: int
    username: str
    role: str


class Login(msgspec.Struct):
    token: str
    expires_at: datetime
    user: UserRef


class User(msgspec.Struct, kw_only=True):
    id: int
    username: str
    role: str
    disabled: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ApiToken(msgspec.Struct, kw_only=True):
    id: int
    name: str
    role: str
    user_id: int | None = None
    prefix: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    created_at: datetime | None = None


class NewApiToken(msgspec.Struct, kw_only=True):
    """A token as created: ``token`` (``knm_…``) is shown this once."""

    id: int
    name: str
    role: str
    token: str
    expires_at: datetime | None = None
    created_at: datetime | None = None


class Credential(msgspec.Struct, kw_only=True):
    """A credential without its secrets (the API never returns them)."""

    id: int
    name: str
    username: str
    auth_type: str
    description: str = ""
    port: int = 22
    has_password: bool = False
    has_private_key: bool = False
    has_passphrase: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Cluster(msgspec.Struct, kw_only=True):
    """A cluster: common fields, and its provider's fields (static: ``nodes``) in ``extra``."""

    id: int
    name: str
    kind: str
    description: str = ""
    bastion: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = {}


class Node(msgspec.Struct, kw_only=True):
    name: str
    address: str = ""
    port: int | None = None
    labels: dict[str, str] = {}
    roles: list[str] = []
    ready: bool | None = None
    schedulable: bool | None = None
    info: dict[str, str] = {}


class HostKey(msgspec.Struct, kw_only=True):
    cluster_name: str
    node: str
    key_type: str
    fingerprint: str
    public_key: str = ""
    address: str = ""
    port: int = 22
    created_at: datetime | None = None


class ContentItem(msgspec.Struct, kw_only=True):
    """A playbook, script or workflow. Its body is ``content`` (playbooks, scripts) or
    ``definition`` (workflows); lists of scripts and workflows leave the body out."""

    id: int
    name: str
    description: str = ""
    category: str = ""
    is_builtin: bool = False
    is_active: bool = True
    version: int = 1
    tags: list[str] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None
    updated_by: str | None = None
    content: str | None = None
    definition: dict[str, Any] | None = None
    language: str | None = None
    parameters: list[dict[str, Any]] | None = None
    step_count: int | None = None

    @property
    def body(self) -> Any:
        return self.definition if self.definition is not None else self.content


class ContentVersion(msgspec.Struct, kw_only=True):
    """One version of a content item; the body only when one version was asked for."""

    version: int
    created_at: datetime | None = None
    created_by: str | None = None
    content: str | None = None
    definition: dict[str, Any] | None = None
    language: str | None = None
    parameters: list[dict[str, Any]] | None = None


class TaskStarted(msgspec.Struct, kw_only=True):
    """The answer of execute/run/rerun/resume; the executor's summary is in ``extra``."""

    task_id: str
    status: str
    cluster_name: str = ""
    target_nodes: list[str] = []
    start_time: datetime | None = None
    rerun_of: str | None = None
    resumed_from: str | None = None
    extra: dict[str, Any] = {}


class NodeResult(msgspec.Struct, kw_only=True):
    """How one node's work ended: ``status`` is ``success`` or ``failed``; ``reason`` says why."""

    node: str
    status: str
    reason: str | None = None
    message: str = ""
    exit_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    address: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None


class TaskStatus(msgspec.Struct, kw_only=True):
    """A task's status answer; an executor's own fields (``command``, ``playbook_name``, ...)
    are in ``extra``."""

    task_id: str
    status: str
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
    output: str | None = None
    current_step: str | None = None
    total_steps: int | None = None
    steps: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = {}

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class TaskSummary(msgspec.Struct, kw_only=True):
    """One entry of a history or ``/tasks`` list."""

    id: int
    task_id: str
    status: str
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
    summary: dict[str, Any] = {}


class CancelResult(msgspec.Struct):
    task_id: str
    status: str


class Decision(msgspec.Struct, kw_only=True):
    task_id: str
    step_id: str
    decision: str
    batch: int = 0


class AuditEntry(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    action: str
    target: str = ""
    outcome: str = ""
    client: str = ""
    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    detail: dict[str, Any] = {}


class PluginInfo(msgspec.Struct, kw_only=True):
    name: str
    version: str = ""
    hooks: list[str] = []
    contributes: dict[str, list[str]] = {}


@functools.cache
def _encode_names(type_: Any) -> frozenset[str]:
    # msgspec.structs.fields resolves annotations on every call; this runs per decoded item.
    return frozenset(f.encode_name for f in msgspec.structs.fields(type_))


def with_extra(data: Any, type_: type[T]) -> T:
    """``data`` as ``type_``, keys it does not declare gathered into its ``extra`` field."""
    known = _encode_names(type_)
    own = {k: v for k, v in data.items() if k in known and k != "extra"}
    own["extra"] = {k: v for k, v in data.items() if k not in known}
    return msgspec.convert(own, type_)


__all__ = [
    "TERMINAL",
    "ApiToken",
    "AuditEntry",
    "CancelResult",
    "Cluster",
    "ContentItem",
    "ContentVersion",
    "Credential",
    "Decision",
    "Event",
    "HostKey",
    "Login",
    "NewApiToken",
    "Node",
    "NodeResult",
    "Page",
    "PluginInfo",
    "TaskStarted",
    "TaskStatus",
    "TaskSummary",
    "User",
    "UserRef",
]
