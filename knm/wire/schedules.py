"""Schedules as the API takes and shows them: a stored execute request that knm starts as its
owner at cron times (in a time zone) or every so many seconds, and the record of each fire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from knm.wire.base import page_of

#: After downtime: ``skip`` records the fire times missed and waits for the next one;
#: ``run_once`` starts one catch-up task for all of them.
MisfirePolicy = Literal["skip", "run_once"]
#: How a fire time ended: a task ``started``; ``skipped`` (too many of its tasks still
#: running, or missed under ``skip``); ``failed`` (the owner may no longer start it, or its
#: stored request is no longer valid) with the reason.
RunStatus = Literal["started", "skipped", "failed"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Description = Annotated[str, msgspec.Meta(max_length=1024)]
Cron = Annotated[str, msgspec.Meta(max_length=256)]
TimeZone = Annotated[str, msgspec.Meta(max_length=64)]
Kind = Annotated[str, msgspec.Meta(max_length=64)]
#: From one second to a year.
Interval = Annotated[int, msgspec.Meta(ge=1, le=366 * 86_400)]
MaxRuns = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class ScheduleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /schedules``: ``cron`` (5 fields, or 6 with seconds first) with ``timezone``, or
    ``interval_seconds``; ``request`` is the body the ``kind``'s execute route takes."""

    name: Name
    kind: Kind
    request: dict[str, Any]
    cron: Cron | None = None
    timezone: TimeZone = "UTC"
    interval_seconds: Interval | None = None
    description: Description = ""
    enabled: bool = True
    misfire_policy: MisfirePolicy = "skip"
    max_concurrent_runs: MaxRuns = 1
    start_at: datetime | None = None
    end_at: datetime | None = None


class ScheduleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PATCH``/``PUT /schedules/{id}``: absent fields keep their value. Setting ``cron``
    clears ``interval_seconds`` and the other way round; ``start_at``/``end_at`` null lift
    the bound."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    kind: Kind | msgspec.UnsetType = msgspec.UNSET
    request: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    cron: Cron | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    interval_seconds: Interval | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    misfire_policy: MisfirePolicy | msgspec.UnsetType = msgspec.UNSET
    max_concurrent_runs: MaxRuns | msgspec.UnsetType = msgspec.UNSET
    start_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    end_at: datetime | msgspec.UnsetType | None = msgspec.UNSET


class Schedule(msgspec.Struct, kw_only=True):
    """A schedule as the API shows it. ``request`` shows values its executor marks secret
    blanked (they are kept sealed). ``next_fire_times``: the next five, in UTC."""

    id: int
    name: str
    description: str
    owner_id: int
    owner_name: str
    kind: str
    request: dict[str, Any]
    cron: str | None
    timezone: str
    interval_seconds: int | None
    enabled: bool
    misfire_policy: MisfirePolicy
    max_concurrent_runs: int
    start_at: datetime | None
    end_at: datetime | None
    next_fire_at: datetime | None
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime
    next_fire_times: list[datetime] = []


class ScheduleRun(msgspec.Struct, kw_only=True):
    """One fire time of a schedule and what came of it; ``task_id`` when a task started."""

    id: int
    schedule_id: int
    fire_time: datetime
    status: RunStatus
    reason: str
    task_id: str | None
    created_at: datetime


ScheduleList = page_of("schedules", Schedule)
ScheduleRunList = page_of("runs", ScheduleRun)
