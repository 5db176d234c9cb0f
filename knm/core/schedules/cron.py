"""When a schedule fires: a cron expression in a time zone (five fields, or six with seconds
first; daylight saving time as :mod:`knm.core.cron` describes) or a fixed interval, between
optional start and end times. Every time is in UTC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from knm.core import cron as cron_times
from knm.core.cron import zone


def check_cron(expression: str, timezone: str) -> None:
    """422 naming ``timezone`` or ``cron`` unless the schedule's expression can fire."""
    cron_times.check(expression, timezone, seconds=True)


class Timing:
    """What decides a schedule's fire times (the columns of the same names)."""

    def __init__(
        self,
        *,
        cron: str | None,
        timezone: str,
        interval_seconds: int | None,
        start_at: datetime | None,
        end_at: datetime | None,
        anchor: datetime,
    ) -> None:
        self.cron = cron
        self.timezone = timezone
        self.interval_seconds = interval_seconds
        self.start_at = start_at
        self.end_at = end_at
        #: Interval schedules fire at ``start_at`` (else their creation) plus whole intervals.
        self.anchor = start_at or anchor

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``moment`` (and not before ``start_at``, not after
        ``end_at``), in UTC, in order."""
        if self.start_at is not None and moment < self.start_at:
            moment = self.start_at - timedelta(microseconds=1)
        for fire in self._raw_after(moment):
            if self.end_at is not None and fire > self.end_at:
                return
            yield fire

    def next_after(self, moment: datetime) -> datetime | None:
        return next(self.after(moment), None)

    def upcoming(self, moment: datetime, count: int = 5) -> list[datetime]:
        found = []
        for fire in self.after(moment):
            found.append(fire)
            if len(found) == count:
                break
        return found

    def _raw_after(self, moment: datetime) -> Iterator[datetime]:
        if self.interval_seconds is not None:
            step = timedelta(seconds=self.interval_seconds)
            n = 0 if moment < self.anchor else int((moment - self.anchor) / step) + 1
            while True:
                fire = self.anchor + n * step
                if fire > moment:
                    yield fire.astimezone(UTC)
                n += 1
        assert self.cron is not None
        yield from cron_times.fires(self.cron, self.timezone, moment)


__all__ = ["Timing", "check_cron", "zone"]
