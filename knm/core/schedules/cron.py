"""When a schedule fires: cron expressions in a time zone (``cronsim``) or fixed intervals.

Cron times follow Debian cron's rules for daylight saving time (cronsim implements them):
a job at a fixed time that falls in the hour skipped by a spring-forward change (02:30 on the
day clocks jump from 02:00 to 03:00) runs once, at 03:00, the first minute after the gap; a
job at a time that occurs twice on a fall-back day runs once, at the first occurrence.
Expressions with ``*`` in the minute or hour field, and 6-field ones (seconds first), simply
follow the real clock: nothing is run twice nor made up. Every time is returned in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from knm.core.errors import Invalid


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or 422 naming ``timezone``."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise Invalid(f"timezone: {name!r} is not an IANA time zone (such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid(
            f"timezone: {name!r} is not an IANA time zone (such as Europe/Berlin)"
        ) from None


def check_cron(expression: str, timezone: str) -> None:
    """422 naming ``cron`` (or ``timezone``) when the expression cannot fire."""
    tz = zone(timezone)
    try:
        next(CronSim(expression, datetime.now(tz)))
    except CronSimError as exc:
        raise Invalid(f"cron: {expression!r} is not a cron expression: {exc}") from None
    except StopIteration:
        raise Invalid(f"cron: {expression!r} never fires") from None
    except (ValueError, IndexError, KeyError) as exc:
        raise Invalid(f"cron: {expression!r} is not a cron expression: {exc}") from None


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
        tz = zone(self.timezone)
        # cronsim works in whole seconds and returns times after the one it starts from.
        start = moment.astimezone(tz).replace(microsecond=0)
        try:
            for fire in CronSim(self.cron, start):
                yield fire.astimezone(UTC)
        except StopIteration:
            return
