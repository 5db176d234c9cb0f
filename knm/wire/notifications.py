"""Notifications as the API takes and sends them: subscriptions, deliveries and their attempts.

A subscription's secret (a webhook's signing secret, a Slack incoming webhook's URL, an SMTP
password) is write-only: requests may carry it, answers say only ``has_secret``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

#: Every event a subscription may name. ``task.*`` fire when a top-level task ends with that
#: status; ``node.failed`` when one of its nodes fails while it runs; ``approval.requested``
#: when a workflow waits at an approval step; ``schedule.misfired`` and ``roll.paused`` are
#: emitted by schedules and maintenance windows; ``notification.test`` is the test-send.
EventName = Literal[
    "task.completed",
    "task.failed",
    "task.cancelled",
    "node.failed",
    "approval.requested",
    "schedule.misfired",
    "roll.paused",
    "notification.test",
]
EVENT_NAMES: tuple[str, ...] = get_args(EventName)
TargetType = Literal["webhook", "slack", "email"]
TARGET_TYPES: tuple[str, ...] = get_args(TargetType)
DeliveryState = Literal["pending", "delivered", "dead"]
#: The delivery states, in the order a delivery goes through them.
DELIVERY_STATES: tuple[str, ...] = get_args(DeliveryState)
SmtpSecurity = Literal["starttls", "tls", "none"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Filter = Annotated[list[Annotated[str, msgspec.Meta(max_length=256)]], msgspec.Meta(max_length=100)]
Url = Annotated[str, msgspec.Meta(max_length=2048)]
Secret = Annotated[str, msgspec.Meta(max_length=4096, description="write-only: never returned")]
Address = Annotated[str, msgspec.Meta(max_length=320)]


class WebhookTarget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag="webhook"):
    """A JSON POST to ``url``, signed with HMAC-SHA256 when ``secret`` is set."""

    url: Url
    #: Write-only: the HMAC key of ``X-Knm-Signature``.
    secret: Secret | None = None


class SlackTarget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag="slack"):
    """A Slack-compatible incoming webhook: ``{"text": ...}``. Its URL is its credential, so
    it is write-only like any secret."""

    url: Url | None = None


class EmailTarget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag="email"):
    """A plain-text mail over SMTP."""

    host: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    port: int = 587
    security: SmtpSecurity = "starttls"
    username: Annotated[str, msgspec.Meta(max_length=256)] = ""
    #: Write-only.
    password: Secret | None = None
    from_addr: Address
    to: Annotated[list[Address], msgspec.Meta(min_length=1, max_length=50)]


Target = Annotated[
    WebhookTarget | SlackTarget | EmailTarget, msgspec.Meta(description="tagged by `type`")
]


class SubscriptionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    events: Annotated[list[str], msgspec.Meta(min_length=1, max_length=len(EVENT_NAMES))]
    target: Target
    kinds: Filter = []
    clusters: Filter = []
    statuses: Filter = []
    enabled: bool = True


class SubscriptionUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A partial update. A ``target`` replaces the stored one; its secret left out (null)
    keeps the stored secret when the type stays the same, an empty string removes it."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    events: (
        Annotated[list[str], msgspec.Meta(min_length=1, max_length=len(EVENT_NAMES))]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    target: Target | msgspec.UnsetType = msgspec.UNSET
    kinds: Filter | msgspec.UnsetType = msgspec.UNSET
    clusters: Filter | msgspec.UnsetType = msgspec.UNSET
    statuses: Filter | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class Subscription(msgspec.Struct, kw_only=True):
    """A subscription as the API shows it: its target's plain settings and ``has_secret``."""

    id: int
    name: str
    owner: str
    events: list[str]
    kinds: list[str]
    clusters: list[str]
    statuses: list[str]
    target_type: TargetType
    #: The target's settings without its secret.
    target: dict[str, Any]
    has_secret: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime


class SubscriptionList(msgspec.Struct):
    total: int
    subscriptions: list[Subscription]


class Attempt(msgspec.Struct, kw_only=True):
    """One try at delivering: the receiver's status code (none when it never answered), how
    long it took, and what went wrong."""

    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class Delivery(msgspec.Struct, kw_only=True):
    id: int
    subscription_id: int
    event: str
    idempotency_key: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[Attempt] = []


class DeliveryList(msgspec.Struct):
    total: int
    deliveries: list[Delivery]


class EventList(msgspec.Struct):
    events: list[str]
