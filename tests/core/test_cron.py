"""The one cron module: time zones and expressions checked in one wording, fire times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knm.core.cron import check, cron_problem, fires, timezone_problem, zone
from knm.core.errors import Invalid


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_six_fields_are_accepted_only_when_seconds_are_allowed() -> None:
    assert cron_problem("*/20 * * * * *", seconds=True) is None
    refused = cron_problem("*/20 * * * * *")
    assert refused is not None
    assert refused.startswith("cron: ") and "five fields" in refused
    assert "six with seconds first" in (cron_problem("* * *", seconds=True) or "")


@pytest.mark.parametrize(
    "expression", ["61 * * * *", "* * 32 * *", "0 0 30 2 *", "bogus * * * *", "@daily"]
)
def test_a_bad_expression_names_the_cron_field_either_way(expression: str) -> None:
    for seconds in (False, True):
        problem = cron_problem(expression, seconds=seconds)
        assert problem is not None and problem.startswith(f"cron: {expression!r} ")


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "Europe", "../etc/passwd", "/etc/localtime"])
def test_a_name_that_is_not_an_iana_zone_names_the_timezone_field(name: str) -> None:
    assert (timezone_problem(name) or "").startswith(f"timezone: {name!r} is not an IANA")
    with pytest.raises(Invalid, match=r"^timezone: "):
        zone(name)


def test_check_names_the_time_zone_before_the_expression() -> None:
    with pytest.raises(Invalid, match=r"^timezone: "):
        check("61 * * * *", "Mars/Olympus")
    with pytest.raises(Invalid, match=r"^cron: "):
        check("61 * * * *", "UTC")
    check("0 2 * * 0", "Europe/Berlin")


def test_fire_times_are_utc_and_strictly_after_the_given_time() -> None:
    found = fires("0 2 * * *", "Europe/Berlin", utc(2026, 6, 1, 0, 0))
    assert [next(found), next(found)] == [utc(2026, 6, 2, 0, 0), utc(2026, 6, 3, 0, 0)]
    assert next(fires("0 2 * * *", "Europe/Berlin", utc(2026, 6, 2, 0, 0))) == utc(2026, 6, 3)


def test_reverse_fire_times_include_the_given_time() -> None:
    at = utc(2026, 6, 2, 0, 0)
    assert next(fires("0 2 * * *", "Europe/Berlin", at, reverse=True)) == at


def test_fire_times_stop_at_the_horizon() -> None:
    yearly = fires("0 0 1 1 *", "UTC", utc(2026, 6, 1), within=timedelta(days=400))
    assert list(yearly) == [utc(2027, 1, 1)]
