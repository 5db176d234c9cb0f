"""When a maintenance window is open: its cron expression (five fields), read in its time
zone, opens it at each fire time (daylight saving time as :mod:`knm.core.cron` describes),
for ``duration`` seconds.

A duration is elapsed time: a window opening at 01:00 for three hours on the night the clocks
go back closes three real hours later (at 03:00 wall time, 02:00 had come twice). A window open
across midnight is one opening (``0 22 * * *`` for six hours is open until 04:00 the next day).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import msgspec

from knm.core.cron import cron_problem, fires, timezone_problem
from knm.wire.windows import Opening

#: The longest window: a month.
MAX_DURATION = 31 * 86_400
#: How far ahead an opening is looked for (a window whose cron never fires has none).
HORIZON = timedelta(days=366 * 2)
#: Fire times examined when several windows must be open together.
MAX_CANDIDATES = 20_000


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
        """Fire times (UTC) after ``at`` (or at or before it, ``reverse``), nearest first,
        within the horizon."""
        return fires(self.cron, self.timezone, at, reverse=reverse, within=HORIZON)

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
