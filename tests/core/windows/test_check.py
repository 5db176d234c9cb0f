"""Whether disruptive work may start now: the windows a run requires, all open together."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from knm.core.errors import Invalid
from knm.core.windows.check import Requirement, refusal, refuse_start
from knm.core.windows.store import Window


def window(name: str, cron: str, duration: int, *, enabled: bool = True) -> Window:
    return Window(
        id=1, name=name, cron=cron, timezone="UTC", duration=duration, enabled=enabled,
        description="",
    )  # fmt: skip


NIGHTLY = window("nightly", "0 22 * * *", 6 * 3600)
SUNDAYS = window("sundays", "0 0 * * 0", 86_400)
INSIDE = datetime(2026, 6, 7, 1, 0, tzinfo=UTC)  # a Sunday, 01:00
OUTSIDE = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday, noon


def test_work_that_disrupts_nothing_or_requires_no_window_may_always_start() -> None:
    assert refusal(Requirement((NIGHTLY,)), False, OUTSIDE) is None
    assert refusal(Requirement(), True, OUTSIDE) is None


def test_disruptive_work_may_start_only_while_every_required_window_is_open() -> None:
    both = Requirement((NIGHTLY, SUNDAYS))
    assert refusal(both, True, INSIDE) is None
    # Saturday 23:00: the nightly window is open, the Sunday one is not yet.
    why = refusal(both, True, datetime(2026, 6, 6, 23, 0, tzinfo=UTC))
    assert why == (
        "maintenance windows 'nightly' and 'sundays' are closed; they next open together at "
        "2026-06-07T00:00:00Z"
    )


def test_a_disabled_window_never_opens() -> None:
    frozen = Requirement((window("frozen", "* * * * *", 3600, enabled=False),))
    assert not frozen.is_open(INSIDE)
    assert frozen.next_opening(INSIDE) is None
    assert refusal(frozen, True, INSIDE) == "maintenance window 'frozen' is disabled"


def test_a_start_outside_the_window_is_a_422_unless_it_waits_for_it() -> None:
    closed = Requirement((window("never-now", "0 0 1 1 *", 1),))
    with pytest.raises(Invalid) as raised:
        refuse_start(closed, True, wait=False)
    assert "'never-now' is closed; it next opens at" in raised.value.error
    assert "wait_for_window: true" in raised.value.error
    refuse_start(closed, True, wait=True)
    refuse_start(closed, False, wait=False)


def test_waiting_for_windows_that_never_open_together_is_a_422() -> None:
    noon = window("noon", "0 12 * * *", 60)
    night = window("night", "0 0 * * *", 60)
    with pytest.raises(Invalid) as raised:
        refuse_start(Requirement((noon, night)), True, wait=True)
    assert "they do not open together again" in raised.value.error
    # A disabled window may be enabled again: waiting for it is allowed.
    refuse_start(Requirement((window("frozen", "0 12 * * *", 60, enabled=False),)), True, wait=True)
