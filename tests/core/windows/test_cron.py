"""When a maintenance window is open: cron in a time zone, each opening ``duration`` long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from knm.core.windows.cron import Schedule, next_joint_opening, problems

BERLIN = ZoneInfo("Europe/Berlin")


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BERLIN)  # type: ignore[misc]


def test_a_window_is_open_from_its_fire_time_for_its_duration() -> None:
    window = Schedule("0 2 * * 0", "Europe/Berlin", 3 * 3600)  # Sundays 02:00-05:00
    assert window.is_open(local(2026, 6, 7, 2, 0))
    assert window.is_open(local(2026, 6, 7, 4, 59, 59))
    assert not window.is_open(local(2026, 6, 7, 5, 0))
    assert not window.is_open(local(2026, 6, 7, 1, 59, 59))
    assert not window.is_open(local(2026, 6, 8, 3, 0))  # a Monday
    opening = window.opening_at(local(2026, 6, 7, 3, 0))
    assert opening is not None
    assert opening.start == datetime(2026, 6, 7, 0, 0, tzinfo=UTC)
    assert opening.end == datetime(2026, 6, 7, 3, 0, tzinfo=UTC)


def test_a_window_spanning_midnight_is_one_opening() -> None:
    window = Schedule("0 22 * * *", "Europe/Berlin", 6 * 3600)
    opening = window.opening_at(local(2026, 6, 2, 1, 30))
    assert opening is not None
    assert opening.start.astimezone(BERLIN) == local(2026, 6, 1, 22, 0)
    assert opening.end.astimezone(BERLIN) == local(2026, 6, 2, 4, 0)
    assert not window.is_open(local(2026, 6, 2, 4, 0))
    assert window.next_opening(local(2026, 6, 2, 1, 30)) == local(2026, 6, 2, 22, 0)


def test_on_the_spring_forward_day_a_missing_time_opens_at_the_first_time_that_exists() -> None:
    window = Schedule("30 2 * * *", "Europe/Berlin", 3600)
    starts = [o.start.astimezone(BERLIN) for o in window.next_openings(local(2026, 3, 28, 12), 2)]
    # 02:30 does not exist on 2026-03-29 in Berlin: the window opens at 03:00 CEST.
    assert starts == [local(2026, 3, 29, 3, 0), local(2026, 3, 30, 2, 30)]
    assert window.is_open(local(2026, 3, 29, 3, 59))
    assert not window.is_open(local(2026, 3, 29, 4, 0))


def test_on_the_fall_back_day_a_fixed_time_opens_once_and_lasts_its_real_duration() -> None:
    window = Schedule("30 2 * * *", "Europe/Berlin", 3600)
    openings = window.next_openings(local(2026, 10, 24, 12), 2)
    # The first 02:30 (CEST, 00:30 UTC) only; an hour later it is 02:30 again (CET), closed.
    assert openings[0].start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert openings[0].end == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert openings[1].start == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)
    assert not window.is_open(datetime(2026, 10, 25, 1, 45, tzinfo=UTC))


def test_an_hourly_window_opens_in_both_repeated_hours_on_the_fall_back_day() -> None:
    window = Schedule("30 * * * *", "Europe/Berlin", 600)
    starts = [o.start for o in window.next_openings(datetime(2026, 10, 24, 23, 0, tzinfo=UTC), 3)]
    assert starts == [
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]
    assert window.is_open(datetime(2026, 10, 25, 1, 35, tzinfo=UTC))


def test_next_openings_start_strictly_after_the_given_time() -> None:
    window = Schedule("*/15 * * * *", "UTC", 60)
    at = datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    assert [o.start.minute for o in window.next_openings(at, 3)] == [30, 45, 0]
    assert window.is_open(at)


@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    duration=st.integers(1, 5 * 3600),
    offset=st.integers(0, 14 * 86_400),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
)
def test_a_time_is_inside_exactly_when_an_opening_covers_it(
    minute: int, hour: int, duration: int, offset: int, zone: str
) -> None:
    window = Schedule(f"{minute} {hour} * * *", zone, duration)
    at = datetime(2026, 3, 20, tzinfo=UTC) + timedelta(seconds=offset)
    opening = window.opening_at(at)
    earlier = window.next_openings(at - timedelta(days=3), 10)
    covering = [o for o in earlier if o.start <= at < o.end]
    assert (opening is not None) == bool(covering)
    if opening is not None:
        assert opening == covering[-1]
    upcoming = window.next_opening(at)
    assert upcoming is not None and upcoming > at
    assert window.is_open(upcoming)


def test_several_windows_open_together_when_the_last_of_them_opens() -> None:
    nightly = Schedule("0 22 * * *", "UTC", 6 * 3600)
    sundays = Schedule("0 0 * * 0", "UTC", 86_400)
    at = datetime(2026, 6, 3, 12, tzinfo=UTC)  # a Wednesday
    # Sunday 00:00 opens inside Saturday night's window.
    assert next_joint_opening([nightly, sundays], at) == datetime(2026, 6, 7, 0, 0, tzinfo=UTC)
    disjoint = Schedule("0 12 * * *", "UTC", 60)
    assert next_joint_opening([nightly, disjoint], at) is None


def test_invalid_cron_timezone_and_duration_each_name_their_field() -> None:
    assert problems("0 2 * * 0", "Europe/Berlin", 3600) == []
    found = problems("61 2 * * *", "Mars/Olympus", 0)
    assert [p.split(":")[0] for p in found] == ["cron", "timezone", "duration"]
    for bad in ("0 2 * *", "0 0 2 * * *", "@daily", "0 0 30 2 *", "a b c d e", ""):
        assert problems(bad, "UTC", 60)[0].startswith("cron: "), bad
    for zone in ("Europe", "../etc/passwd", "", "utc+1"):
        assert problems("0 2 * * *", zone, 60)[0].startswith("timezone: "), zone
    assert problems("0 2 * * *", "UTC", 31 * 86_400 + 1)[0].startswith("duration: ")
