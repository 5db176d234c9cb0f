"""What a run requires, and whether disruptive work may start now: the one check the workflow
engine (and anything else that disrupts nodes) asks.

A run requires its cluster's window (``cluster_windows``) and the one its workflow names
(``maintenance_window`` in the definition); both must be open. A disabled window never opens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.errors import Invalid, KnmError
from knm.core.windows import cron, store
from knm.core.windows.store import Window

if TYPE_CHECKING:
    from knm.core.state import Knm

#: The reason of a roll stopped at its window's end (the task's ``error``, its unreached nodes'
#: ``reason``): the task is ``failed``, the contract's five statuses stay five.
WINDOW_CLOSED = "window_closed"


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class Requirement(msgspec.Struct, frozen=True):
    """The windows a run must be inside for disruptive work (none: it may run any time)."""

    windows: tuple[Window, ...] = ()

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.windows]

    def __bool__(self) -> bool:
        return bool(self.windows)

    def is_open(self, at: datetime) -> bool:
        return all(w.enabled and w.schedule.is_open(at) for w in self.windows)

    def next_opening(self, after: datetime) -> datetime | None:
        """When every window is next open together (None: a window is disabled, or they do
        not open together within two years)."""
        if not all(w.enabled for w in self.windows):
            return None
        return cron.next_joint_opening([w.schedule for w in self.windows], after)

    def describe(self) -> str:
        """``maintenance window 'a'`` or ``maintenance windows 'a' and 'b'``."""
        plural = "s" if len(self.windows) > 1 else ""
        return f"maintenance window{plural} " + " and ".join(repr(n) for n in self.names)

    def closed_message(self, at: datetime) -> str:
        disabled = [repr(w.name) for w in self.windows if not w.enabled]
        if disabled:
            return f"maintenance window {' and '.join(disabled)} is disabled"
        one = len(self.windows) == 1
        opening = self.next_opening(at)
        if opening is None:
            when = "; it does not open again" if one else "; they do not open together again"
        else:
            when = (
                f"; {'it next opens' if one else 'they next open together'} at {rfc3339(opening)}"
            )
        return f"{self.describe()} {'is' if one else 'are'} closed{when}"


class WindowClosed(KnmError):
    """A roll stopped because its window closed: the task ends ``failed`` with this reason."""

    status_code = 422
    message = "maintenance window closed"

    def __init__(self) -> None:
        super().__init__(WINDOW_CLOSED)


async def requirement(knm: Knm, cluster_name: str, window_name: str | None = None) -> Requirement:
    """The windows a run on ``cluster_name`` requires, with the one its workflow names (422
    when that window does not exist)."""
    windows: list[Window] = []
    async with knm.pool.acquire() as conn:
        of_cluster = await store.of_cluster(conn, cluster_name)
        if of_cluster is not None:
            windows.append(of_cluster)
        if window_name and (of_cluster is None or of_cluster.name != window_name):
            named = await store.by_names(conn, [window_name])
            if not named:
                raise Invalid(
                    f"maintenance_window: no maintenance window named {window_name!r}",
                    message="maintenance window not found",
                )
            windows.extend(named)
    return Requirement(tuple(windows))


async def by_names(knm: Knm, names: list[str]) -> Requirement:
    """The windows named (those deleted since are left out)."""
    async with knm.pool.acquire() as conn:
        return Requirement(tuple(await store.by_names(conn, names)))


def refusal(required: Requirement, disruptive: bool, at: datetime | None = None) -> str | None:
    """Why disruptive work may not start at ``at`` (now by default), or None when it may: work
    that disrupts nothing, or requires no window, always may."""
    if not disruptive or not required:
        return None
    at = at or now()
    if required.is_open(at):
        return None
    return required.closed_message(at)


def refuse_start(required: Requirement, disruptive: bool, wait: bool) -> None:
    """At start: 422 naming the window and its next opening when it is closed, unless the
    request waits for it (``wait_for_window``)."""
    why = refusal(required, disruptive)
    if why and wait:
        at = now()
        if all(w.enabled for w in required.windows) and required.next_opening(at) is None:
            # Waiting would never end (a disabled window may be enabled again: that one waits).
            raise Invalid(why, message="maintenance window closed")
        return
    if why:
        raise Invalid(
            f"{why} (start inside the window, or set wait_for_window: true to wait for it)",
            message="maintenance window closed",
        )


def detail(required: Requirement, at: datetime, resume_at: datetime | None) -> dict[str, Any]:
    """What a stopped roll keeps in its result (``window_closed``)."""
    return {
        "windows": required.names,
        "stopped_at": rfc3339(at),
        "resume_at": rfc3339(resume_at) if resume_at else None,
    }
