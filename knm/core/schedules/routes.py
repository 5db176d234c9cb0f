"""``/schedules``: create, list, read, change, pause, resume and delete schedules, and their runs.

Who may do what: operators create schedules that fire as themselves, for what they may run
(the stored request is checked as its execute route checks it, for them); they see and
change their own. Admins see and change every schedule; viewers read them all. Every change is
in the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post, put

from knm.core.auth.guards import OPERATOR, VIEWER, principal_of
from knm.core.auth.principal import Principal
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, offset, ok
from knm.core.errors import Forbidden, Invalid, NotFound
from knm.core.schedules import cron, store, stored
from knm.core.schedules.store import ScheduleRow
from knm.wire.schedules import (
    Schedule,
    ScheduleCreate,
    ScheduleList,
    ScheduleRunList,
    ScheduleUpdate,
)

_TIMING = ("cron", "timezone", "interval_seconds", "start_at", "end_at")


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


def _sees_all(principal: Principal) -> bool:
    return principal.role in ("admin", "viewer")


def _visible(principal: Principal, row: ScheduleRow) -> ScheduleRow:
    if _sees_all(principal) or row.owner_id == principal.user_id:
        return row
    raise NotFound(f"Schedule ID {row.id} not found")


def _changeable(principal: Principal, row: ScheduleRow) -> ScheduleRow:
    _visible(principal, row)
    if principal.role != "admin" and row.owner_id != principal.user_id:
        raise Forbidden(f"schedule {row.name!r} is {row.owner_name}'s; only they or an admin")
    return row


def _whole_seconds(fields: dict[str, Any]) -> None:
    """``start_at``/``end_at`` as the API speaks times: UTC, whole seconds (so the fire times
    counted from them are whole seconds too)."""
    for name in ("start_at", "end_at"):
        value = fields.get(name)
        if isinstance(value, datetime) and value.tzinfo is not None:
            fields[name] = value.astimezone(UTC).replace(microsecond=0)


def _timing(fields: dict[str, Any], anchor: datetime) -> cron.Timing:
    """The fields' fire times, after checking them: 422 naming the field."""
    expression, interval = fields["cron"], fields["interval_seconds"]
    if (expression is None) == (interval is None):
        raise Invalid("cron: give either cron (with timezone) or interval_seconds")
    cron.zone(fields["timezone"])
    if expression is not None:
        cron.check_cron(expression, fields["timezone"])
    for name in ("start_at", "end_at"):
        value = fields[name]
        if value is not None and value.tzinfo is None:
            raise Invalid(f"{name}: needs a UTC offset (RFC 3339, such as 2026-01-01T00:00:00Z)")
    if fields["start_at"] and fields["end_at"] and fields["end_at"] <= fields["start_at"]:
        raise Invalid("end_at: must be after start_at")
    return cron.Timing(
        cron=expression,
        timezone=fields["timezone"],
        interval_seconds=interval,
        start_at=fields["start_at"],
        end_at=fields["end_at"],
        anchor=anchor,
    )


def _shown(row: ScheduleRow) -> Schedule:
    upcoming = row.timing.upcoming(datetime.now(UTC)) if row.enabled else []
    return row.shown(upcoming)


@post("/schedules", guards=[OPERATOR], summary="Create a schedule (it fires as you)")
async def create_schedule(
    request: Request[Any, Any, Any], data: ScheduleCreate
) -> Envelope[Schedule]:
    knm = _knm(request)
    principal = principal_of(request)
    now = datetime.now(UTC).replace(microsecond=0)
    fields = {f: getattr(data, f) for f in _TIMING}
    _whole_seconds(fields)
    timing = _timing(fields, now)
    executor = stored.executor_of(knm, data.kind)
    exec_request, prepared = await stored.validate(knm, executor, data.request, principal)
    async with knm.pool.acquire() as conn, conn.transaction():
        row = await store.insert(
            conn,
            name=data.name,
            description=data.description,
            owner_id=principal.user_id,
            owner_name=principal.username,
            kind=executor.kind,
            request=stored.shown_request(executor, exec_request, prepared, data.request),
            enabled=data.enabled,
            misfire_policy=data.misfire_policy,
            max_concurrent_runs=data.max_concurrent_runs,
            next_fire_at=timing.next_after(now),
            created_at=now,
            updated_at=now,
            **fields,
        )
        await store.set_sealed(conn, row.id, stored.seal(knm, data.request, row.id))
        await knm.audit(
            request, "schedule.create", row.name, conn=conn,
            detail={"id": row.id, "kind": row.kind},
        )  # fmt: skip
        await store.announce(conn, row.id)
    return created(_shown(row), "schedule created")


@get("/schedules", guards=[VIEWER], summary="List schedules (operators: their own)")
async def list_schedules(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[ScheduleList]:  # type: ignore[valid-type]
    principal = principal_of(request)
    owner = None if _sees_all(principal) else principal.user_id
    total, rows = await store.list_schedules(
        _knm(request).pool, owner, page_size, offset(page, page_size)
    )
    return ok(ScheduleList(total, [_shown(row) for row in rows]))


@get("/schedules/{schedule_id:int}", guards=[VIEWER], summary="A schedule and its next 5 fires")
async def get_schedule(request: Request[Any, Any, Any], schedule_id: int) -> Envelope[Schedule]:
    row = await store.get(_knm(request).pool, _id(schedule_id))
    return ok(_shown(_visible(principal_of(request), row)))


async def _update(
    request: Request[Any, Any, Any], schedule_id: int, data: ScheduleUpdate
) -> Envelope[Schedule]:
    knm = _knm(request)
    principal = principal_of(request)
    names = (field.name for field in msgspec.structs.fields(ScheduleUpdate))
    sent = {f: getattr(data, f) for f in names if getattr(data, f) is not msgspec.UNSET}
    if sent.get("cron") is not None and sent.get("interval_seconds") is not None:
        raise Invalid("cron: give either cron (with timezone) or interval_seconds")
    if sent.get("cron") is not None:
        sent.setdefault("interval_seconds", None)
    if sent.get("interval_seconds") is not None:
        sent.setdefault("cron", None)
    _whole_seconds(sent)
    now = datetime.now(UTC)
    async with knm.pool.acquire() as conn, conn.transaction():
        row = _changeable(principal, await store.for_update(conn, _id(schedule_id)))
        changes = {f: v for f, v in sent.items() if f != "request"}
        timing_fields = {f: sent.get(f, getattr(row, f)) for f in _TIMING}
        timing = _timing(timing_fields, row.created_at)
        body: dict[str, Any] | None = sent.get("request")
        if body is not None or "kind" in sent:
            owner = await stored.owner(conn, row.owner_id)
            if isinstance(owner, str):
                raise Invalid(f"owner: {owner}")
            executor = stored.executor_of(knm, sent.get("kind", row.kind))
            if body is None:
                body = stored.body_of(knm, row)
            exec_request, prepared = await stored.validate(knm, executor, body, owner)
            changes["kind"] = executor.kind
            changes["request"] = stored.shown_request(executor, exec_request, prepared, body)
        resumed = sent.get("enabled") is True and not row.enabled
        if resumed or any(f in sent for f in _TIMING):
            # From now: fire times that passed while paused are not owed.
            changes["next_fire_at"] = timing.next_after(now)
        row = await store.update(conn, row.id, changes)
        if body is not None:
            await store.set_sealed(conn, row.id, stored.seal(knm, body, row.id))
        action = "schedule.update"
        if set(sent) == {"enabled"}:
            action = "schedule.resume" if sent["enabled"] else "schedule.pause"
        await knm.audit(
            request, action, row.name, conn=conn, detail={"id": row.id, "fields": sorted(sent)}
        )
        await store.announce(conn, row.id)
    return ok(_shown(row), "schedule updated")


@patch("/schedules/{schedule_id:int}", guards=[OPERATOR], summary="Change a schedule (partial)")
async def patch_schedule(
    request: Request[Any, Any, Any], schedule_id: int, data: ScheduleUpdate
) -> Envelope[Schedule]:
    return await _update(request, schedule_id, data)


@put("/schedules/{schedule_id:int}", guards=[OPERATOR], summary="Change a schedule (partial)")
async def put_schedule(
    request: Request[Any, Any, Any], schedule_id: int, data: ScheduleUpdate
) -> Envelope[Schedule]:
    return await _update(request, schedule_id, data)


@post(
    "/schedules/{schedule_id:int}/pause",
    guards=[OPERATOR],
    status_code=200,
    summary="Pause a schedule (no fires until resumed)",
)
async def pause_schedule(request: Request[Any, Any, Any], schedule_id: int) -> Envelope[Schedule]:
    return await _update(request, schedule_id, ScheduleUpdate(enabled=False))


@post(
    "/schedules/{schedule_id:int}/resume",
    guards=[OPERATOR],
    status_code=200,
    summary="Resume a schedule (from its next fire time; paused ones are not made up)",
)
async def resume_schedule(request: Request[Any, Any, Any], schedule_id: int) -> Envelope[Schedule]:
    return await _update(request, schedule_id, ScheduleUpdate(enabled=True))


@delete(
    "/schedules/{schedule_id:int}",
    guards=[OPERATOR],
    status_code=200,
    summary="Delete a schedule and its runs (tasks it started stay)",
)
async def delete_schedule(request: Request[Any, Any, Any], schedule_id: int) -> Done:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        row = _changeable(principal_of(request), await store.for_update(conn, _id(schedule_id)))
        await store.delete(conn, row.id)
        await knm.audit(request, "schedule.delete", row.name, conn=conn, detail={"id": row.id})
        await store.announce(conn, row.id)
    return ok(message="schedule deleted")


@get(
    "/schedules/{schedule_id:int}/runs",
    guards=[VIEWER],
    summary="A schedule's runs, newest fire time first, with the tasks they started",
)
async def list_runs(
    request: Request[Any, Any, Any],
    schedule_id: int,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[ScheduleRunList]:  # type: ignore[valid-type]
    pool = _knm(request).pool
    row = _visible(principal_of(request), await store.get(pool, _id(schedule_id)))
    total, runs = await store.runs(pool, row.id, page_size, offset(page, page_size))
    return ok(ScheduleRunList(total, runs))


def _id(schedule_id: int) -> int:
    from knm.core.bounds import fits_bigint

    if not fits_bigint(schedule_id):
        raise NotFound(f"Schedule ID {schedule_id} not found")
    return schedule_id


ROUTES = [
    create_schedule,
    list_schedules,
    get_schedule,
    patch_schedule,
    put_schedule,
    pause_schedule,
    resume_schedule,
    delete_schedule,
    list_runs,
]
