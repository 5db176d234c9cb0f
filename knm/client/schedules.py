"""The schedules' endpoints (``/schedules``): a mixin of both clients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from knm.client import models as m
from knm.client.calls import Call, Doer, body, nothing, one, paged, query


class ScheduleCalls(Doer):
    def schedules(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.Schedule]:
        """Schedules by id (an operator gets their own)."""
        params = query(page=page, page_size=page_size)
        return self._do(Call("GET", "/schedules", paged(m.Schedule, "schedules"), params=params))

    def schedule(self, schedule_id: int) -> m.Schedule:
        """One schedule, with its next five fire times."""
        return self._do(Call("GET", f"/schedules/{schedule_id}", one(m.Schedule)))

    def create_schedule(
        self,
        name: str,
        kind: str,
        request: dict[str, Any],
        *,
        cron: str | None = None,
        timezone: str | None = None,
        interval_seconds: int | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        misfire_policy: str | None = None,
        max_concurrent_runs: int | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> m.Schedule:
        """A schedule firing ``request`` (the body ``kind``'s execute route takes) as you, at
        ``cron`` times in ``timezone`` or every ``interval_seconds``."""
        payload = body(
            name=name,
            kind=kind,
            request=request,
            cron=cron,
            timezone=timezone,
            interval_seconds=interval_seconds,
            description=description,
            enabled=enabled,
            misfire_policy=misfire_policy,
            max_concurrent_runs=max_concurrent_runs,
            start_at=start_at and start_at.isoformat(),
            end_at=end_at and end_at.isoformat(),
        )
        return self._do(Call("POST", "/schedules", one(m.Schedule), json=payload))

    def update_schedule(self, schedule_id: int, **fields: Any) -> m.Schedule:
        """Change what is given (None lifts ``start_at``/``end_at``); a new ``cron`` clears
        ``interval_seconds`` and the other way round."""
        payload = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}
        return self._do(Call("PATCH", f"/schedules/{schedule_id}", one(m.Schedule), json=payload))

    def pause_schedule(self, schedule_id: int) -> m.Schedule:
        return self._do(Call("POST", f"/schedules/{schedule_id}/pause", one(m.Schedule)))

    def resume_schedule(self, schedule_id: int) -> m.Schedule:
        """Fires again from the next fire time after now (paused ones are not made up)."""
        return self._do(Call("POST", f"/schedules/{schedule_id}/resume", one(m.Schedule)))

    def delete_schedule(self, schedule_id: int) -> None:
        return self._do(Call("DELETE", f"/schedules/{schedule_id}", nothing))

    def schedule_runs(
        self, schedule_id: int, *, page: int = 1, page_size: int = 20
    ) -> m.Page[m.ScheduleRun]:
        """Its fire times and what came of each, newest first (``task_id`` when one started)."""
        params = query(page=page, page_size=page_size)
        return self._do(
            Call(
                "GET",
                f"/schedules/{schedule_id}/runs",
                paged(m.ScheduleRun, "runs"),
                params=params,
            )
        )
