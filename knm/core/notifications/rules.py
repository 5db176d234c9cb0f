"""Value rules of a subscription (each broken one is a 422 naming the field).

Messages name fields, never secret values: a rejected secret must not come back in an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from knm.core.credentials.rules import check_line
from knm.core.errors import Invalid
from knm.wire import TASK_STATES
from knm.wire.notifications import EVENT_NAMES, EmailTarget, SlackTarget, WebhookTarget

#: Events a subscription may name (``notification.test`` is sent only by the test route).
SUBSCRIBABLE = tuple(e for e in EVENT_NAMES if e != "notification.test")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ADDRESS = re.compile(r"[^@\s<>,;\"\x00-\x1f\x7f]+@[^@\s<>,;\"\x00-\x1f\x7f]+")
_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]+")


def check_events(events: list[str]) -> list[str]:
    for event in events:
        if event not in SUBSCRIBABLE:
            raise Invalid(
                f"events: unknown event {event!r}; valid events: {', '.join(SUBSCRIBABLE)}"
            )
    return list(dict.fromkeys(events))


def check_filter(field: str, values: list[str], allowed: Iterable[str] | None = None) -> list[str]:
    known = None if allowed is None else sorted(allowed)
    for value in values:
        check_line(f"{field} entries", value)
        if known is not None and value not in known:
            raise Invalid(f"{field}: unknown value {value!r}; valid values: {', '.join(known)}")
    return list(dict.fromkeys(values))


def check_statuses(values: list[str]) -> list[str]:
    return check_filter("statuses", values, TASK_STATES)


def check_url(field: str, url: str, *, secret: bool = False) -> None:
    shown = "" if secret else f" (got {url[:200]!r})"
    if _CONTROL.search(url) or url != url.strip():
        raise Invalid(f"{field} must not contain control characters or surrounding whitespace")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise Invalid(f"{field} is not a valid URL{shown}") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(f"{field} must be an http:// or https:// URL{shown}")
    if not parts.hostname:
        raise Invalid(f"{field} must name a host{shown}")
    if not secret and (parts.username or parts.password):
        # A webhook's URL is shown to every viewer; credentials in it would be too.
        raise Invalid(f"{field} must not carry a user or password (user:password@host)")


def check_address(field: str, address: str) -> None:
    # One plain address per entry; CR/LF would let a value add mail headers.
    if not _ADDRESS.fullmatch(address):
        raise Invalid(f"{field} must be a plain e-mail address like ops@example.com")


def split_target(
    target: WebhookTarget | SlackTarget | EmailTarget,
) -> tuple[str, dict[str, Any], str | None]:
    """The target's type, its plain settings as stored, and its secret as sent (None: not
    sent), each value checked."""
    if isinstance(target, WebhookTarget):
        check_url("target.url", target.url)
        return "webhook", {"url": target.url}, target.secret
    if isinstance(target, SlackTarget):
        if target.url:
            check_url("target.url", target.url, secret=True)
        return "slack", {}, target.url
    if not _HOST.fullmatch(target.host):
        raise Invalid("target.host must be a host name or address")
    if not 1 <= target.port <= 65535:
        raise Invalid("target.port must be between 1 and 65535")
    if target.username:
        check_line("target.username", target.username)
    check_address("target.from_addr", target.from_addr)
    for address in target.to:
        check_address("target.to entries", address)
    plain = {
        "host": target.host,
        "port": target.port,
        "security": target.security,
        "username": target.username,
        "from_addr": target.from_addr,
        "to": list(dict.fromkeys(target.to)),
    }
    return "email", plain, target.password


def check_secret(target_type: str, has_secret: bool) -> None:
    if target_type == "slack" and not has_secret:
        raise Invalid("target.url: required for a slack target (the incoming webhook's URL)")


def check_secret_text(field: str, secret: str) -> None:
    if "\x00" in secret:
        raise Invalid(f"{field} must not contain NUL characters")
