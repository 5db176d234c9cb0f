"""When a maintenance window is open: its cron expression, read in its time zone, opens it at
each fire time, for ``duration`` seconds.

Fire times follow cronsim's rules (Debian cron's, for DST): a fixed-time expression whose time
does not exist on the day the clocks go forward (``30 2 * * *`` in Europe/Berlin) fires at the
first minute that exists after it (03:00), and on the day they go back it fires once, at the
first of the two 02:30s; an expression with ``*`` in its minute or hour field fires at every
matching instant that exists. A duration is elapsed time: a window opening at 01:00 for three
hours on the night the clocks go back closes three real hours later (at 03:00 wall time, 02:00
had come twice). A window open across midnight is one opening (``0 22 * * *`` for six hours is
open until 04:00 the next day).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import msgspec
from cronsim import CronSim, CronSimError

#: The longest window: a month.
MAX_DURATION = 31 * 86_400
#: How far ahead an opening is looked for (a window whose cron never fires has none).
HORIZON = timedelta(days=366 * 2)
#: Fire times examined when several windows must be open together.
MAX_CANDIDATES = 20_000


class Opening(msgspec.Struct, frozen=True):
    """One opening of a window: ``start`` (a fire time) and ``end``, both UTC."""

    start: datetime
    end: datetime


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression knm can use, or None."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"cron: {expression!r} must have five fields (minute hour day-of-month month "
            "day-of-week)"
        )
    try:
        next(iter(CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))))
    except CronSimError as exc:
        return f"cron: {expression!r} is not a valid cron expression: {exc}"
    except StopIteration:
        return f"cron: {expression!r} never fires"
    return None


def timezone_problem(name: str) -> str | None:
    if name not in _zones():
        return f"timezone: {name!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)"
    return None


def duration_problem(seconds: int) -> str | None:
    if not 1 <= seconds <= MAX_DURATION:
        return f"duration: must be between 1 and {MAX_DURATION} seconds (31 days)"
    return None


def problems(expression: str, timezone: str, duration: int) -> list[str]:
    """Every problem of a window's timing, each naming its field, for one 422."""
    found = [cron_problem(expression), timezone_problem(timezone), duration_problem(duration)]
    return [p for p in found if p]


class Schedule(msgspec.Struct, frozen=True):
    """A window's timing: ``cron`` in ``timezone``, each opening ``duration`` seconds long.
    Built only from values :func:`problems` accepted."""

    cron: str
    timezone: str
    duration: int

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=self.duration)

    def _fires(self, at: datetime, *, reverse: bool) -> Iterator[datetime]:
        """Fire times (UTC) after ``at`` (or at or before it, ``reverse``), nearest first.

        cronsim reads a fixed-time expression in wall time, so around a clock change it may
        hand back a time on the wrong side of ``at``; those are passed over."""
        zone = ZoneInfo(self.timezone)
        base = at.astimezone(UTC).replace(microsecond=0)
        start = base + timedelta(seconds=1) if reverse else base
        limit = base - HORIZON if reverse else base + HORIZON
        try:
            for fire in CronSim(self.cron, start.astimezone(zone), reverse=reverse):
                utc = fire.astimezone(UTC)
                if (utc > limit) if not reverse else (utc < limit):
                    return
                if (utc <= base) if reverse else (utc > base):
                    yield utc
        except StopIteration:  # pragma: no cover - cronsim ends its own iteration
            return

    def opening_at(self, at: datetime) -> Opening | None:
        """The opening ``at`` falls in (start ≤ at < end), or None when the window is closed.
        Openings are equally long, so the latest fire time at or before ``at`` ends last."""
        latest = next(self._fires(at, reverse=True), None)
        if latest is None or at >= latest + self.length:
            return None
        return Opening(latest, latest + self.length)

    def is_open(self, at: datetime) -> bool:
        return self.opening_at(at) is not None

    def next_openings(self, after: datetime, count: int) -> list[Opening]:
        """The next ``count`` openings that start after ``after``."""
        found = []
        for fire in self._fires(after, reverse=False):
            found.append(Opening(fire, fire + self.length))
            if len(found) == count:
                break
        return found

    def next_opening(self, after: datetime) -> datetime | None:
        """When the window next opens after ``after`` (None: not within two years)."""
        return next(self._fires(after, reverse=False), None)


def all_open(schedules: list[Schedule], at: datetime) -> bool:
    return all(s.is_open(at) for s in schedules)


def next_joint_opening(schedules: list[Schedule], after: datetime) -> datetime | None:
    """The first moment after ``after`` at which every schedule is open (they open together
    when the last of them opens, which is one of their fire times), or None within the
    horizon."""
    if not schedules:
        return None
    streams = [s._fires(after, reverse=False) for s in schedules]
    heads = [next(stream, None) for stream in streams]
    for _ in range(MAX_CANDIDATES):
        live = [(t, i) for i, t in enumerate(heads) if t is not None]
        if not live:
            return None
        moment, index = min(live)
        if all_open(schedules, moment):
            return moment
        heads[index] = next(streams[index], None)
    return None
