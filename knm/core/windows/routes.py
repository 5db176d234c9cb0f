"""``/windows``: admins manage maintenance windows (and which clusters require them), every
role reads them; operators cancel a stopped roll's automatic resume."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post, put
from litestar.params import Parameter

from knm.core.auth.guards import ADMIN, OPERATOR, VIEWER, principal_of
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, offset, ok
from knm.core.errors import Invalid
from knm.core.windows import cron, resumes, store
from knm.core.windows.check import now
from knm.core.windows.store import Window
from knm.wire.windows import Resume, ResumeList, WindowDetail, WindowList

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
MAX_DESCRIPTION = 1024
#: Openings ``GET /windows/{id}`` shows.
SHOWN_OPENINGS = 5


class WindowBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A window: ``cron`` (five fields) read in ``timezone`` (IANA) opens it at each fire time
    for ``duration`` seconds; ``clusters`` require it."""

    name: str
    cron: str
    timezone: str
    duration: int
    enabled: bool = True
    description: str = ""
    clusters: list[str] = msgspec.field(default_factory=list)


class WindowChanges(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A PUT: fields left out keep their value; ``clusters`` replaces the list."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    cron: str | msgspec.UnsetType = msgspec.UNSET
    timezone: str | msgspec.UnsetType = msgspec.UNSET
    duration: int | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    clusters: list[str] | msgspec.UnsetType = msgspec.UNSET


def _problems(window: Window) -> list[str]:
    found = []
    if not _NAME.fullmatch(window.name):
        found.append(
            f"name: {window.name!r} must be 1-64 letters, digits, '.', '_' or '-', starting and "
            "ending with a letter or digit"
        )
    if len(window.description) > MAX_DESCRIPTION or "\x00" in window.description:
        found.append(f"description: at most {MAX_DESCRIPTION} characters, no NUL")
    found.extend(cron.problems(window.cron, window.timezone, window.duration))
    return found


def _refuse(found: list[str]) -> None:
    if found:
        raise Invalid("; ".join(found), message="window validation failed")


def _detail(window: Window) -> WindowDetail:
    at = now()
    schedule = window.schedule
    current = schedule.opening_at(at) if window.enabled else None
    return WindowDetail(
        **msgspec.structs.asdict(window),
        open_now=current is not None,
        current=current,
        # A disabled window does not open: it has no openings to show until it is enabled.
        next_openings=schedule.next_openings(at, SHOWN_OPENINGS) if window.enabled else [],
    )


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


@get("/windows", guards=[VIEWER], summary="List maintenance windows")
async def list_windows(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[WindowList]:
    async with _knm(request).pool.acquire() as conn:
        total, windows = await store.list_windows(conn, page_size, offset(page, page_size))
    return ok(WindowList(total, windows))


@post("/windows", guards=[ADMIN], summary="Create a maintenance window")
async def create_window(
    request: Request[Any, Any, Any], data: WindowBody
) -> Envelope[WindowDetail]:
    knm = _knm(request)
    window = Window(
        id=0, name=data.name, cron=data.cron, timezone=data.timezone, duration=data.duration,
        enabled=data.enabled, description=data.description,
    )  # fmt: skip
    _refuse(_problems(window))
    async with knm.pool.acquire() as conn, conn.transaction():
        window_id = await store.insert(conn, window)
        await store.set_clusters(conn, window_id, data.clusters)
        saved = await store.get(conn, window_id)
        await knm.audit(
            request,
            "window.create",
            saved.name,
            conn=conn,
            detail={"id": window_id, "clusters": saved.clusters},
        )
    return created(_detail(saved), "maintenance window created")


@get("/windows/{window_id:int}", guards=[VIEWER], summary="One maintenance window")
async def get_window(request: Request[Any, Any, Any], window_id: int) -> Envelope[WindowDetail]:
    async with _knm(request).pool.acquire() as conn:
        return ok(_detail(await store.get(conn, window_id)))


@put("/windows/{window_id:int}", guards=[ADMIN], summary="Change a maintenance window")
async def update_window(
    request: Request[Any, Any, Any], window_id: int, data: WindowChanges
) -> Envelope[WindowDetail]:
    knm = _knm(request)
    changes = {
        k: v
        for k, v in msgspec.structs.asdict(data).items()
        if v is not msgspec.UNSET and k != "clusters"
    }
    async with knm.pool.acquire() as conn, conn.transaction():
        window = await store.get(conn, window_id, lock=True)
        changed = msgspec.structs.replace(window, **changes)
        _refuse(_problems(changed))
        await store.update(conn, changed)
        if data.clusters is not msgspec.UNSET:
            await store.set_clusters(conn, window_id, data.clusters)
        saved = await store.get(conn, window_id)
        fields = sorted(
            k for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET
        )
        await knm.audit(
            request,
            "window.update",
            window.name,
            conn=conn,
            detail={"id": window_id, "fields": fields, "clusters": saved.clusters},
        )
    return ok(_detail(saved), "maintenance window updated")


@delete(
    "/windows/{window_id:int}",
    guards=[ADMIN],
    status_code=200,
    summary="Remove a maintenance window (409 while a cluster requires it)",
)
async def delete_window(request: Request[Any, Any, Any], window_id: int) -> Done:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        name = await store.delete(conn, window_id)
        await knm.audit(request, "window.delete", name, conn=conn, detail={"id": window_id})
    return ok(message="maintenance window deleted")


@get(
    "/windows/resumes",
    guards=[VIEWER],
    summary="Rolls stopped at a window's end and their automatic resumes",
)
async def list_resumes(
    request: Request[Any, Any, Any],
    only: Annotated[
        Literal["pending", "started", "cancelled", "failed"] | None,
        Parameter(query="state", description="only resumes in this state"),
    ] = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[ResumeList]:
    async with _knm(request).pool.acquire() as conn:
        total, found = await resumes.list_resumes(conn, only, page_size, offset(page, page_size))
    return ok(ResumeList(total, found))


@post(
    "/windows/resumes/{task_id:str}/cancel",
    guards=[OPERATOR],
    status_code=200,
    summary="Cancel a stopped roll's automatic resume",
)
async def cancel_resume(request: Request[Any, Any, Any], task_id: str) -> Envelope[Resume]:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        cancelled = await resumes.cancel(conn, task_id, principal_of(request).username)
        await knm.audit(request, "window.resume_cancel", task_id, conn=conn)
    return ok(cancelled, "automatic resume cancelled")


ROUTES = [
    list_windows,
    create_window,
    get_window,
    update_window,
    delete_window,
    list_resumes,
    cancel_resume,
]
