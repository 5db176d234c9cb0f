"""Cron expressions read in an IANA time zone: the one place knm checks them and counts their
fire times (through ``cronsim``). Schedules (``knm.core.schedules.cron``) and maintenance
windows (``knm.core.windows.cron``) build on it.

Daylight saving time follows Debian cron's rules, which cronsim implements:

- a fixed-time expression whose time does not exist on the day the clocks go forward
  (``30 2 * * *`` in Europe/Berlin on the last Sunday of March, when 02:00 becomes 03:00)
  fires once, at the first minute that exists after the gap (03:00);
- a fixed-time expression whose time occurs twice on the day the clocks go back fires once,
  at the first occurrence (02:30 summer time, not 02:30 winter time);
- an expression with ``*`` in its minute or hour field (and a six-field one, seconds first)
  follows the real clock: it fires at every matching instant that exists, nothing is made up
  for the skipped hour and the repeated hour's instants each fire.

Every fire time is returned in UTC, in whole seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

from knm.core.errors import Invalid

_FIVE = "minute hour day-of-month month day-of-week"


@functools.cache
def _zones() -> frozenset[str]:
    # The IANA names the system (or the tzdata package) has: never a path, never a directory.
    return frozenset(available_timezones())


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, naming the ``timezone`` field; None if it is."""
    if name not in _zones():
        return f"timezone: {name!r} is not an IANA time zone (such as Europe/Berlin or UTC)"
    return None


def cron_problem(expression: str, *, seconds: bool = False) -> str | None:
    """Why ``expression`` is not a cron expression that fires, naming the ``cron`` field;
    None if it is. Five fields, or (``seconds``) six with seconds first."""
    counts = (5, 6) if seconds else (5,)
    if len(expression.split()) not in counts:
        also = ", or six with seconds first" if seconds else ""
        return f"cron: {expression!r} must have five fields ({_FIVE}){also}"
    try:
        next(CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC)))
    except StopIteration:
        return f"cron: {expression!r} never fires"
    except (CronSimError, ValueError, IndexError, KeyError) as exc:
        return f"cron: {expression!r} is not a valid cron expression: {exc}"
    return None


def zone(name: str) -> ZoneInfo:
    """The time zone ``name``, or :class:`Invalid` (422) naming ``timezone``."""
    if problem := timezone_problem(name):
        raise Invalid(problem)
    return ZoneInfo(name)


def check(expression: str, timezone: str, *, seconds: bool = False) -> None:
    """:class:`Invalid` (422) naming ``timezone`` or ``cron`` unless both can be used."""
    zone(timezone)
    if problem := cron_problem(expression, seconds=seconds):
        raise Invalid(problem)


def fires(
    expression: str,
    timezone: str,
    at: datetime,
    *,
    reverse: bool = False,
    within: timedelta | None = None,
) -> Iterator[datetime]:
    """The fire times (UTC) of a valid ``expression`` read in ``timezone``, nearest first:
    strictly after ``at``, or (``reverse``) at or before it; none further than ``within``
    from ``at`` when given.

    cronsim reads a fixed-time expression in wall time, so around a clock change it may hand
    back a time on the wrong side of ``at``; those are passed over."""
    base = at.astimezone(UTC).replace(microsecond=0)
    start = base + timedelta(seconds=1) if reverse else base
    limit = None if within is None else (base - within if reverse else base + within)
    for fire in CronSim(expression, start.astimezone(zone(timezone)), reverse=reverse):
        utc = fire.astimezone(UTC)
        if limit is not None and ((utc < limit) if reverse else (utc > limit)):
            return
        if (utc <= base) if reverse else (utc > base):
            yield utc
