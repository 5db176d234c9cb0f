"""Firing schedules exactly once, whatever the number of knm processes.

Every process that runs tasks runs a ``Firing`` loop. A fire is one transaction:

1. claim the most overdue enabled schedule with ``FOR UPDATE SKIP LOCKED`` (another process
   takes the next one, never the same);
2. record its run — ``INSERT … ON CONFLICT DO NOTHING`` on the unique (schedule, fire time)
   key: a fire time recorded before is never fired again;
3. check the owner as of now (exists, not disabled, still an operator), the schedule's limit
   of unfinished tasks and its stored request (``stored.validate``: the execute route's checks,
   policy and credential use rules included) — a refusal is recorded on the run, ``failed``
   or ``skipped`` with the reason, and the schedule stays enabled;
4. insert the task (pending) and the audit entry, and move ``next_fire_at`` on.

A process that dies anywhere before the commit leaves nothing: its transaction rolls back,
PostgreSQL releases the row lock, and another process fires the same time. After the commit
the task is an ordinary pending task, which any runner claims (the ``knm_tasks`` NOTIFY is
sent with the commit). So each fire time makes one task: neither lost nor doubled.

Late fires: a fire time less than ``MISFIRE_GRACE`` seconds late fires as usual (each one, in
order, when a loop catches up). Older ones were missed — no process ran, or the database was
down — and ``misfire_policy`` decides: ``skip`` records one ``skipped`` run (at the last
missed time, its reason counting them) and waits for the next fire time; ``run_once`` starts
one catch-up task, recorded at the last missed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from knm.core.db import UNAVAILABLE
from knm.core.errors import KnmError
from knm.core.schedules import store, stored
from knm.core.schedules.store import ScheduleRow
from knm.core.tasks import service
from knm.core.tasks.schemas import TaskRow
from knm.core.tasks.targets import Prepared

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.schedules")

#: Seconds a fire time may be late and still fire as usual; older ones are misfires.
MISFIRE_GRACE = 60.0
#: Seconds the loop sleeps at most without a change announced (a missed NOTIFY costs this).
POLL = 30.0
#: Seconds before looking again at a due schedule another process holds.
BUSY_RETRY = 0.2
#: Fires one process makes at once (each holds one schedule's row lock and a connection).
CONCURRENCY = 4
#: Missed fire times counted one by one at most (a reason says "at least" beyond).
MAX_COUNTED = 100_000


class Firing:
    """The loop of one process: sleeps until the next due fire time or a change, then fires
    everything due."""

    def __init__(self, knm: Knm) -> None:
        self.knm = knm
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Fired tasks being handed to this process's runner, off the firing lanes.
        self._handovers: set[asyncio.Task[None]] = set()
        self.fired = 0

    async def start(self) -> None:
        listener = self.knm.listener
        assert listener is not None, "the engine starts its listener before the firing loop"
        await listener.subscribe(store.CHANNEL, lambda _payload: self._wake.set())
        listener.on_reset(self._wake.set)
        self._task = asyncio.create_task(self._loop(), name="knm-schedules")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._task, 15)
        self._task = None
        if self._handovers:
            # Each is a committed pending task: unclaimed here, any runner takes it.
            await asyncio.wait(self._handovers, timeout=15)

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                fired = await fire_due(self.knm, self._handovers)
                self.fired += fired
                wait = await _seconds_to_next(self.knm.pool)
                if not fired and wait == 0:
                    # Due, but held by another process's fire (or a change being saved):
                    # look again shortly rather than spin.
                    wait = BUSY_RETRY
            except UNAVAILABLE as exc:
                log.warning("schedules: the database is unavailable (%s)", exc)
                wait = 2.0
            except Exception:
                log.exception("schedules: the firing loop failed; trying again")
                wait = 2.0
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)


async def _seconds_to_next(pool: asyncpg.Pool) -> float:
    seconds = await pool.fetchval(
        "SELECT extract(epoch FROM min(next_fire_at) - now()) FROM schedules WHERE enabled"
    )
    if seconds is None:
        return POLL
    return min(max(float(seconds), 0.0), POLL)


async def fire_due(knm: Knm, handovers: set[asyncio.Task[None]] | None = None) -> int:
    """Fire every schedule due now (``CONCURRENCY`` at once); how many fire times were
    handled. With ``handovers``, started tasks go to the runner in tasks kept there, so a
    lane moves on to the next fire at once (the next one's lateness is this one's claim)."""

    async def worker() -> int:
        handled = 0
        while await fire_one(knm, handovers):
            handled += 1
        return handled

    # Each fire holds a pooled connection while its checks take another: never so many that
    # the fires alone could empty a small pool.
    lanes = max(1, min(CONCURRENCY, knm.config.db_pool_max // 4))
    return sum(await asyncio.gather(*(worker() for _ in range(lanes))))


async def fire_one(knm: Knm, handovers: set[asyncio.Task[None]] | None = None) -> bool:
    """Handle the most overdue fire time no other process holds; False when none is due.
    The task it started is handed to the runner before it returns, or (``handovers``) in a
    task added there."""
    started: tuple[TaskRow, Prepared] | None = None
    async with knm.pool.acquire() as conn, conn.transaction():
        row = await store.claim_due(conn)
        if row is None:
            return False
        now: datetime = await conn.fetchval("SELECT now()")
        started = await _fire(knm, conn, row, now)
    if started is not None:
        if handovers is None:
            await _hand_over(knm, *started)
        else:
            job = asyncio.create_task(_hand_over(knm, *started))
            handovers.add(job)
            job.add_done_callback(handovers.discard)
    return True


async def _hand_over(knm: Knm, task: TaskRow, prepared: Prepared) -> None:
    try:
        await service.hand_over(knm, task, prepared)
    except Exception as exc:
        # Committed, it is a pending task: any runner claims it (it heard the NOTIFY).
        log.warning("schedules: handing over %s failed: %s", task.task_id, exc)


async def _fire(
    knm: Knm, conn: asyncpg.Connection, row: ScheduleRow, now: datetime
) -> tuple[TaskRow, Prepared] | None:
    assert row.next_fire_at is not None
    timing = row.timing
    fire_time = row.next_fire_at
    reason = ""
    grace = timedelta(seconds=MISFIRE_GRACE)
    if now - fire_time > grace:
        last, count, following = _missed(row, now - grace)
        first = fire_time
        fire_time = last
        span = f"{count} fire time(s) from {first.isoformat()} to {last.isoformat()}"
        if row.misfire_policy == "skip":
            if await store.insert_run(conn, row.id, fire_time, "skipped", ""):
                await fire_not_started(
                    conn, row, fire_time, "skipped",
                    f"misfire: {span} passed while no knm process could fire them "
                    "(misfire_policy skip)",
                )  # fmt: skip
            await store.moved_on(conn, row.id, following, row.last_fired_at)
            return None
        reason = f"catch-up run for {span} missed (misfire_policy run_once)"
    else:
        following = timing.next_after(fire_time)
    await store.moved_on(conn, row.id, following, fire_time)
    # The unique key: a fire time recorded before (by anyone) is never fired again.
    if not await store.insert_run(conn, row.id, fire_time, "started", reason):
        return None
    owner = await stored.owner(conn, row.owner_id)
    if isinstance(owner, str):
        await fire_not_started(conn, row, fire_time, "failed", owner)
        return None
    running = await store.unfinished_runs(conn, row.id, fire_time)
    if running >= row.max_concurrent_runs:
        await fire_not_started(
            conn, row, fire_time, "skipped",
            f"{running} task(s) of this schedule still unfinished "
            f"(max_concurrent_runs {row.max_concurrent_runs})",
        )  # fmt: skip
        return None
    try:
        executor = stored.executor_of(knm, row.kind)
        request, prepared = await stored.validate(knm, executor, stored.body_of(knm, row), owner)
    except KnmError as exc:
        await fire_not_started(conn, row, fire_time, "failed", exc.error or str(exc))
        return None
    except UNAVAILABLE:
        raise  # the database: the whole fire rolls back and is made again
    except Exception as exc:
        # A plugin's prepare that breaks fails this fire only, never the loop (or the
        # schedules due after it).
        log.exception("schedule %s (%d): checking its request failed", row.name, row.id)
        await fire_not_started(
            conn, row, fire_time, "failed", f"internal error: {type(exc).__name__}: {exc}"
        )
        return None
    task = await service.record(conn, knm, executor, request, prepared, owner)
    await conn.execute(
        "UPDATE schedule_runs SET task_id = $3 WHERE schedule_id = $1 AND fire_time = $2",
        row.id,
        fire_time,
        task.task_id,
    )
    await knm.audit_record(
        conn,
        principal=owner,
        action="task.start",
        target=task.task_id,
        client="schedule",
        detail={"kind": executor.kind, "schedule_id": row.id, "schedule": row.name},
    )
    # Delivered with the commit: whichever runner hears it first claims the task.
    await conn.execute("SELECT pg_notify('knm_tasks', $1)", task.task_id)
    return task, prepared


def _missed(row: ScheduleRow, before: datetime) -> tuple[datetime, int, datetime | None]:
    """From ``next_fire_at``: the last fire time not after ``before``, how many there were,
    and the first one after it (None when the schedule has none left)."""
    assert row.next_fire_at is not None
    last, count = row.next_fire_at, 1
    for fire in row.timing.after(row.next_fire_at):
        if fire > before:
            return last, count, fire
        last, count = fire, count + 1
        if count >= MAX_COUNTED:
            return last, count, row.timing.next_after(before)
    return last, count, None


async def fire_not_started(
    conn: asyncpg.Connection, row: ScheduleRow, fire_time: datetime, status: str, reason: str
) -> None:
    """The one place a fire time that started no task is recorded (``skipped``: too many of
    its tasks unfinished, or missed under ``skip``; ``failed``: the owner may no longer start
    it, or its stored request no longer holds), inside the fire's transaction.

    Whatever must hear of it (a notification outbox written on ``conn``) belongs here."""
    await conn.execute(
        "UPDATE schedule_runs SET status = $3, reason = $4, settled = true "
        "WHERE schedule_id = $1 AND fire_time = $2",
        row.id,
        fire_time,
        status,
        reason,
    )
    log.info("schedule %s (%d): fire time %s %s: %s", row.name, row.id, fire_time, status, reason)
