"""Typed results of the SDK. Unknown fields in answers are ignored, so a newer server does not
break an older client; fields an executor or provider adds beyond these land in ``extra``.

Tasks, their events and pages are the server's own wire structs (``knm.wire``); the rest are
the SDK's views of the other answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

from knm.wire import (
    TERMINAL,
    CancelResult,
    Event,
    NodeResult,
    Open,
    Page,
    TaskStarted,
    TaskStatus,
    TaskSummary,
)
from knm.wire import split_extra as with_extra
from knm.wire.notifications import (
    Attempt,
    Delivery,
    EmailTarget,
    EventList,
    SlackTarget,
    Subscription,
    WebhookTarget,
)
from knm.wire.schedules import Schedule, ScheduleRun
from knm.wire.windows import Opening, Window, WindowDetail
from knm.wire.windows import Resume as WindowResume

T = TypeVar("T")
#: A notification subscription's target, tagged by ``type``.
Target = WebhookTarget | SlackTarget | EmailTarget


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
    #: Who may use it and where; None is no limit.
    allowed_roles: list[str] | None = None
    allowed_users: list[str] | None = None
    allowed_clusters: list[str] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Cluster(Open, kw_only=True):
    """A cluster: common fields, and its provider's fields (static: ``nodes``) in ``extra``."""

    id: int
    name: str
    kind: str
    description: str = ""
    bastion: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


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


__all__ = [
    "TERMINAL",
    "ApiToken",
    "Attempt",
    "AuditEntry",
    "CancelResult",
    "Cluster",
    "ContentItem",
    "ContentVersion",
    "Credential",
    "Decision",
    "Delivery",
    "EmailTarget",
    "Event",
    "EventList",
    "HostKey",
    "Login",
    "NewApiToken",
    "Node",
    "NodeResult",
    "Opening",
    "Page",
    "PluginInfo",
    "Schedule",
    "ScheduleRun",
    "SlackTarget",
    "Subscription",
    "Target",
    "TaskStarted",
    "TaskStatus",
    "TaskSummary",
    "User",
    "UserRef",
    "WebhookTarget",
    "Window",
    "WindowDetail",
    "WindowResume",
    "with_extra",
]
