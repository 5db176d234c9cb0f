"""Resuming rolls stopped at a window's end (``window_resumes``), once, at the next opening.

A roll that stops at its window's end writes a pending row before its task ends. Every process
runs :func:`resume_loop`; a due row is claimed ``FOR UPDATE SKIP LOCKED`` and held while its
resume starts, so one process starts it, and the start carries an idempotency key
(``window-resume:<task id>``) for the original's user, so a process that dies between starting
the task and marking the row leaves the next claimer the same task, not a second one. The
resume goes through the executor's own path (``service.start_task`` with ``resumed_from``),
found in the core's executor registry, as the original task's user with that user's role now.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.db import UNAVAILABLE
from knm.core.errors import Conflict, KnmError, NotFound
from knm.core.tasks import store as task_store
from knm.core.windows.check import Requirement, by_names, rfc3339
from knm.wire.windows import Resume

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.windows")

#: Seconds between looks for due resumes.
POLL = 1.0
#: Due rows one look starts at most (the rest wait for the next look).
BATCH = 20
_COLUMNS = (
    "task_id, windows, due_at, state, resume_task_id, error, cancelled_by, created_at, updated_at"
)


def idempotency_key(task_id: str) -> str:
    return f"window-resume:{task_id}"


async def schedule(conn: Any, task_id: str, required: Requirement, due_at: datetime) -> None:
    """A pending resume of ``task_id`` at ``due_at`` (written once per task)."""
    await conn.execute(
        """INSERT INTO window_resumes (task_id, windows, due_at) VALUES ($1, $2, $3)
           ON CONFLICT (task_id) DO NOTHING""",
        task_id,
        required.names,
        due_at,
    )


async def paused(
    knm: Knm,
    task: Any,
    required: Requirement,
    stopped_at: datetime,
    resume_at: datetime | None,
) -> None:
    """A roll stopped at its windows' end: its resume (when they open again) and the
    ``roll.paused`` notification, in one transaction, so a subscriber hears of every pause
    that will resume and of none that did not happen."""
    from knm.core.notifications import emit

    async with knm.pool.acquire() as conn, conn.transaction():
        if resume_at is not None:
            await schedule(conn, task.task_id, required, resume_at)
        await emit(
            conn,
            "roll.paused",
            {
                "task_id": task.task_id,
                "kind": task.kind,
                "cluster_name": task.cluster_name,
                "windows": required.names,
                "stopped_at": rfc3339(stopped_at),
                "resume_at": rfc3339(resume_at) if resume_at else None,
            },
            kind=task.kind,
            cluster=task.cluster_name,
        )


async def list_resumes(
    conn: Any, state: str | None, limit: int, offset: int
) -> tuple[int, list[Resume]]:
    total = await conn.fetchval(
        "SELECT count(*) FROM window_resumes WHERE $1::text IS NULL OR state = $1", state
    )
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM window_resumes WHERE $1::text IS NULL OR state = $1
            ORDER BY due_at, task_id LIMIT $2 OFFSET $3""",
        state,
        limit,
        offset,
    )
    return total, [Resume(**dict(r)) for r in rows]


async def get(conn: Any, task_id: str) -> Resume:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM window_resumes WHERE task_id = $1", task_id)
    if row is None:
        raise NotFound(f"no automatic resume of task {task_id}")
    return Resume(**dict(row))


async def cancel(conn: Any, task_id: str, by: str) -> Resume:
    """The pending resume of ``task_id`` will not start (409 once it started or ended)."""
    row = await conn.fetchrow(
        f"""UPDATE window_resumes SET state = 'cancelled', cancelled_by = $2, updated_at = now()
            WHERE task_id = $1 AND state = 'pending' RETURNING {_COLUMNS}""",
        task_id,
        by,
    )
    if row is None:
        found = await get(conn, task_id)
        raise Conflict(f"the automatic resume of task {task_id} is already {found.state}")
    return Resume(**dict(row))


async def superseded(conn: Any, task_id: str, resume_task_id: str) -> None:
    """Someone resumed ``task_id`` by hand: the automatic resume is that one."""
    await conn.execute(
        """UPDATE window_resumes SET state = 'started', resume_task_id = $2, updated_at = now()
           WHERE task_id = $1 AND state = 'pending'""",
        task_id,
        resume_task_id,
    )


async def _principal(knm: Knm, user_id: int | None) -> Any:
    """The original's user as they are now; a user gone or disabled starts nothing."""
    from knm.core.auth.principal import Principal
    from knm.core.auth.users import auth_row

    if user_id is None:
        return None
    async with knm.pool.acquire() as conn:
        row = await auth_row(conn, user_id)
    if row is None:
        raise KnmError(f"user {user_id} no longer exists")
    if row.disabled:
        raise KnmError(f"user {row.username} is disabled")
    return Principal(user_id=row.id, username=row.username, role=row.role)


async def start_resume(knm: Knm, task_id: str) -> str:
    """Start the resume of finished task ``task_id`` through its executor; its id."""
    from knm.core.tasks import service

    original = await task_store.get_task(knm.pool, task_id)
    if original is None:
        raise KnmError(f"task {task_id} no longer exists")
    executor = knm.executors.get(original.kind)
    if executor is None:
        raise KnmError(f"no executor of kind {original.kind}")
    fields = {f.name for f in msgspec.structs.fields(executor.request_type)}
    body = {**original.request, "resumed_from": task_id}
    if "wait_for_window" in fields:
        # Started at the opening: should the clocks disagree by a moment, it waits.
        body["wait_for_window"] = True
    request = msgspec.convert(body, executor.request_type, strict=False)
    principal = await _principal(knm, original.user_id)
    task = await service.start_task(
        knm, executor, request, principal, idempotency_key=idempotency_key(task_id)
    )
    return task.task_id


async def start_due(knm: Knm, at: datetime | None = None) -> list[str]:
    """Start the resumes due at ``at`` (now) whose originals have ended and whose windows are
    open; the started tasks' ids. A row whose windows are not open (one was disabled or
    changed since) moves to their next opening."""
    started: list[str] = []
    at = at or datetime.now(UTC)
    async with knm.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT {", ".join("r." + c.strip() for c in _COLUMNS.split(","))}
                FROM window_resumes r JOIN tasks t ON t.task_id = r.task_id
                WHERE r.state = 'pending' AND r.due_at <= $1 AND t.end_time IS NOT NULL
                ORDER BY r.due_at LIMIT {BATCH} FOR UPDATE OF r SKIP LOCKED""",
            at,
        )
        for row in rows:
            resume = Resume(**dict(row))
            required = await by_names(knm, resume.windows)
            if required and not required.is_open(at):
                later = required.next_opening(at)
                await conn.execute(
                    """UPDATE window_resumes SET due_at = $2, updated_at = now()
                       WHERE task_id = $1""",
                    resume.task_id,
                    # A disabled window: look again in an hour.
                    later or datetime.fromtimestamp(at.timestamp() + 3600, UTC),
                )
                continue
            try:
                new_id = await start_resume(knm, resume.task_id)
            except KnmError as exc:
                log.warning("resume of %s not started: %s", resume.task_id, exc)
                await conn.execute(
                    """UPDATE window_resumes SET state = 'failed', error = $2, updated_at = now()
                       WHERE task_id = $1""",
                    resume.task_id,
                    exc.error or exc.message,
                )
                continue
            await conn.execute(
                """UPDATE window_resumes SET state = 'started', resume_task_id = $2,
                          updated_at = now() WHERE task_id = $1""",
                resume.task_id,
                new_id,
            )
            await knm.audit_record(
                conn,
                principal=None,
                action="window.resume_start",
                target=resume.task_id,
                username="knm",
                detail={"resume_task_id": new_id, "windows": resume.windows},
            )
            started.append(new_id)
    return started


async def resume_loop(knm: Knm, poll: float = POLL) -> None:
    """Every process: start due resumes, one process each."""
    while True:
        await asyncio.sleep(poll)
        try:
            await start_due(knm)
        except UNAVAILABLE as exc:
            log.warning("starting due resumes: the database is unavailable (%s)", exc)
        except Exception:
            log.exception("starting due resumes failed")
