"""Fire times: cron in a time zone (Debian cron's DST rules, through cronsim) and intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knm.core.errors import Invalid
from knm.core.schedules.cron import Timing, check_cron, zone


def berlin(cron: str, **bounds: datetime | None) -> Timing:
    return Timing(
        cron=cron,
        timezone="Europe/Berlin",
        interval_seconds=None,
        start_at=bounds.get("start_at"),
        end_at=bounds.get("end_at"),
        anchor=datetime(2020, 1, 1, tzinfo=UTC),
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_0230_job_on_the_spring_forward_day_runs_once_at_0300_local() -> None:
    # 2026-03-29: Berlin's clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    fires = berlin("30 2 * * *").upcoming(utc(2026, 3, 27, 12), 4)
    assert fires == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first minute after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_a_0230_job_on_the_fall_back_day_runs_once_at_the_first_0230() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    fires = berlin("30 2 * * *").upcoming(utc(2026, 10, 23, 12), 4)
    assert fires == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST), not the second (CET)
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
    ]


def test_an_hourly_job_follows_the_real_clock_across_the_spring_forward_gap() -> None:
    fires = berlin("0 * * * *").upcoming(utc(2026, 3, 29, 0, 30), 3)
    # 01:00 CET, then 03:00 CEST: one real hour apart, nothing made up for 02:00.
    assert fires == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0), utc(2026, 3, 29, 3, 0)]


def test_six_fields_fire_on_seconds() -> None:
    fires = berlin("*/20 * * * * *").upcoming(utc(2026, 1, 1, 10, 0, 5), 3)
    assert fires == [utc(2026, 1, 1, 10, 0, 20), utc(2026, 1, 1, 10, 0, 40), utc(2026, 1, 1, 10, 1)]


def test_fire_times_respect_start_and_end() -> None:
    timing = berlin("0 12 * * *", start_at=utc(2026, 5, 3, 9), end_at=utc(2026, 5, 5, 9))
    assert timing.upcoming(utc(2026, 1, 1), 5) == [utc(2026, 5, 3, 10), utc(2026, 5, 4, 10)]
    assert timing.next_after(utc(2026, 5, 4, 10)) is None


def test_a_fire_time_exactly_at_start_counts() -> None:
    timing = berlin("0 12 * * *", start_at=utc(2026, 5, 3, 10))
    assert timing.next_after(utc(2026, 1, 1)) == utc(2026, 5, 3, 10)


def test_intervals_count_from_start_at_or_the_anchor() -> None:
    anchor = utc(2026, 1, 1, 0, 0, 0)
    timing = Timing(
        cron=None, timezone="UTC", interval_seconds=90, start_at=None, end_at=None, anchor=anchor
    )
    assert timing.upcoming(anchor - timedelta(hours=1), 2) == [
        anchor,
        anchor + timedelta(seconds=90),
    ]
    assert timing.next_after(anchor + timedelta(seconds=100)) == anchor + timedelta(seconds=180)
    assert timing.next_after(anchor + timedelta(seconds=90)) == anchor + timedelta(seconds=180)
    started = Timing(
        cron=None, timezone="UTC", interval_seconds=60, start_at=utc(2026, 2, 1), end_at=None,
        anchor=anchor,
    )  # fmt: skip
    assert started.next_after(anchor) == utc(2026, 2, 1)


@pytest.mark.parametrize(
    "expression",
    ["", "* * *", "61 * * * *", "* 25 * * *", "* * 32 * *", "bogus * * * *", "0 0 30 2 *"],
)
def test_a_bad_cron_expression_is_a_422_naming_cron(expression: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_cron(expression, "UTC")
    assert str(caught.value).startswith("cron: ")


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "UTC+1"])
def test_an_unknown_time_zone_is_a_422_naming_timezone(name: str) -> None:
    with pytest.raises(Invalid) as caught:
        zone(name)
    assert str(caught.value).startswith("timezone: ")
