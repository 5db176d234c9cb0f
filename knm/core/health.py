"""``GET /healthz`` and ``GET /readyz`` beside ``/metrics``, and ``GET /api/v1/version``.

``/healthz`` answers from the event loop alone: if it answers, the process is alive. ``/readyz``
says whether this process can serve: a database round trip (which also reads which migrations are
applied), the LISTEN connection that keeps the caches honest, and the task runner's loops. Both
are open to anyone (probes carry no token), so they name what is wrong without any detail that
could leak: an exception's type, never its text (that may hold a host or a user name).

Readiness is bounded: the database part runs in a task of its own that is abandoned (cancelled,
not awaited) after ``READY_TIMEOUT`` seconds, so a hung server answers 503, never a hung probe,
and nothing here raises: a check that fails unexpectedly is reported as down.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from knm import __version__
from knm.core import db
from knm.core.auth.guards import VIEWER
from knm.core.envelope import Envelope, ok
from knm.core.manager import plugin_version

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.health")

#: Seconds the database part of a readiness check may take, pool acquire included.
READY_TIMEOUT = 2.0
#: The runner counts as stalled after this many of its heartbeat intervals without one.
STALE_BEATS = 5
#: Pending migrations named in a check before the rest are counted.
_NAMED = 3

OK = "ok"
_NO_STORE = {"Cache-Control": "no-store"}


class Health(msgspec.Struct):
    #: ``ok``, or (readiness only) ``unavailable``.
    status: str
    #: Readiness only: each check's ``ok``, or ``down: …`` / ``pending: …`` / ``unknown: …``.
    checks: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class NotReady(msgspec.Struct):
    """A 503 from ``/readyz``: the error envelope, with the checks in ``data``."""

    code: int
    message: str
    error: str
    data: Health


class PluginVersion(msgspec.Struct):
    name: str
    version: str


class Version(msgspec.Struct):
    version: str
    python: str
    plugins: list[PluginVersion]


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _forget(task: asyncio.Task[Any]) -> None:
    # An abandoned check's outcome is of no interest; reading it keeps asyncio from warning.
    if not task.cancelled():
        task.exception()


async def _read_migrations(knm: Knm) -> list[str]:
    async with knm.pool.acquire(timeout=READY_TIMEOUT) as conn:
        return await db.pending_migrations(conn, knm.migration_sets(), timeout=READY_TIMEOUT)


def _embedded_note(knm: Knm) -> str:
    # Set by the runtime's supervisor while the embedded PostgreSQL is down (loop.time()).
    since = knm.embedded_down_since
    if not isinstance(since, int | float):
        return ""
    return f" (embedded PostgreSQL down for {asyncio.get_running_loop().time() - since:.0f}s)"


async def _database_checks(knm: Knm) -> dict[str, str]:
    """``database`` (a round trip through the pool) and ``migrations`` (all declared applied)."""
    task = asyncio.get_running_loop().create_task(_read_migrations(knm))
    done, _ = await asyncio.wait({task}, timeout=READY_TIMEOUT)
    if not done:
        # Cancelled, not awaited: a hung server may hold its cleanup too.
        task.cancel()
        task.add_done_callback(_forget)
        return {
            "database": f"down: no answer within {READY_TIMEOUT:g}s{_embedded_note(knm)}",
            "migrations": "unknown: database down",
        }
    exc = task.exception()
    if exc is not None:
        log.warning("readiness: the database check failed: %r", exc)
        return {
            "database": f"down: {_kind(exc)}{_embedded_note(knm)}",
            "migrations": "unknown: database down",
        }
    pending = task.result()
    if not pending:
        return {"database": OK, "migrations": OK}
    named = ", ".join(pending[:_NAMED])
    more = f" and {len(pending) - _NAMED} more" if len(pending) > _NAMED else ""
    return {"database": OK, "migrations": f"pending: {named}{more}"}


def _listen_check(knm: Knm) -> str:
    listener = knm.listener
    if listener is None:
        return "down: not started"
    if not listener.live:
        return "down: reconnecting"
    # The progress hub's own connection, when it says whether it is up.
    if getattr(knm.progress, "live", True) is False:
        return "down: progress connection reconnecting"
    return OK


def _runner_check(runner: Any) -> str:
    problem = runner.stalled(STALE_BEATS)
    return f"down: {problem}" if problem else OK


def _guarded(name: str, check: Any, subject: Any) -> str:
    try:
        return str(check(subject))
    except Exception as exc:
        log.exception("readiness: the %s check failed", name)
        return f"down: {_kind(exc)}"


async def readiness(knm: Knm) -> dict[str, str]:
    """Every readiness check by name (``runner`` only where a runner runs); never raises."""
    try:
        checks = await _database_checks(knm)
    except Exception as exc:
        log.exception("readiness: the database checks failed")
        checks = {"database": f"down: {_kind(exc)}", "migrations": "unknown: database down"}
    checks["listen"] = _guarded("listen", _listen_check, knm)
    if knm.runner is not None:
        checks["runner"] = _guarded("runner", _runner_check, knm.runner)
    return checks


@get(
    "/healthz",
    opt={"public": True},
    summary="Liveness: the process answers",
    description="Never touches the database. No token needed.",
)
async def healthz() -> Response[Envelope[Health]]:
    return Response(ok(Health(status=OK), "alive"), headers=_NO_STORE)


@get(
    "/readyz",
    opt={"public": True},
    summary="Readiness: database, migrations, LISTEN connection, task runner",
    description=(
        "200 when every check is `ok`; 503 naming the failing checks in `error`, with all "
        "checks in `data.checks`. Answers within a few seconds even when the database hangs. "
        "No token needed."
    ),
    responses={503: ResponseSpec(data_container=NotReady, description="not ready")},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Envelope[Health]]:
    checks = await readiness(request.app.state["knm"])
    failing = {name: value for name, value in checks.items() if value != OK}
    if not failing:
        return Response(ok(Health(status=OK, checks=checks), "ready"), headers=_NO_STORE)
    error = "; ".join(f"{name}: {value}" for name, value in failing.items())
    log.warning("not ready: %s", error)
    body = NotReady(503, "not ready", error, Health(status="unavailable", checks=checks))
    return Response(body, status_code=503, headers=_NO_STORE, media_type="application/json")


@get("/version", guards=[VIEWER], summary="knm's version and its plugins'")
async def version(request: Request[Any, Any, Any]) -> Envelope[Version]:
    pm = request.app.state["knm"].pm
    plugins = [
        PluginVersion(name, plugin_version(pm, plugin))
        for name, plugin in sorted(pm.list_name_plugin(), key=lambda pair: pair[0])
    ]
    return ok(Version(__version__, platform.python_version(), plugins))
