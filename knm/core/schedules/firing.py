"""Firing schedules exactly once, whatever the number of knm processes.

Every process that runs tasks runs a ``Firing`` loop. Fires are made in batches, a batch
one transaction:

1. claim up to ``BATCH`` of the most overdue enabled schedules with ``FOR UPDATE SKIP
   LOCKED`` (another process, or another lane of this one, takes the next ones, never the
   same), one fire time each;
2. record their runs — one ``INSERT … ON CONFLICT DO NOTHING`` on the unique (schedule,
   fire time) key: a fire time recorded before is never fired again — and move each
   ``next_fire_at`` on;
3. check, for each fire, the owner as of now (exists, not disabled, still an operator: read
   once per owner in the batch), the schedule's limit of unfinished tasks and its stored
   request (``stored.validate``: the execute route's checks, policy and credential use rules
   included) — a refusal is recorded on its run, ``failed`` or ``skipped`` with the reason,
   the schedule stays enabled, and the batch's other fires go on;
4. insert the tasks (pending), the runs' task ids, the audit entries and the NOTIFYs: a
   statement (pipelined) each for the whole batch.

A process that dies anywhere before the commit leaves nothing: its transaction rolls back,
PostgreSQL releases the row locks, and another process fires the same times. After the
commit the tasks are ordinary pending tasks, which any runner claims (the ``knm_tasks``
NOTIFYs are sent with the commit); this process's runner claims the batch's in one go. So
each fire time makes one task: neither lost nor doubled. A statement the database refuses
rolls the whole batch back; its schedules are then fired one transaction each, so one that
breaks fails alone.

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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from knm.core import audit
from knm.core.db import UNAVAILABLE
from knm.core.errors import KnmError
from knm.core.notifications import emit
from knm.core.schedules import store, stored
from knm.core.schedules.store import ScheduleRow
from knm.core.tasks import service
from knm.core.tasks import store as tasks_store
from knm.core.tasks.targets import Prepared

if TYPE_CHECKING:
    from knm.core.auth.principal import Principal
    from knm.core.state import Knm
    from knm.core.tasks.executor import Executor
    from knm.core.tasks.schemas import ExecRequest

log = logging.getLogger("knm.schedules")

#: Seconds a fire time may be late and still fire as usual; older ones are misfires.
MISFIRE_GRACE = 60.0
#: Seconds the loop sleeps at most without a change announced (a missed NOTIFY costs this).
POLL = 30.0
#: Seconds before looking again at a due schedule another process holds.
BUSY_RETRY = 0.2
#: Batches of fires one process makes at once (each holds a connection and its schedules'
#: row locks).
CONCURRENCY = 4
#: Fire times one transaction handles at most. Larger batches cost fewer round trips per
#: fire, but every task of a batch becomes visible only when the batch commits, and a batch
#: that fails is made again one fire at a time.
BATCH = 25
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
    """Fire every schedule due now (``CONCURRENCY`` batches at once); how many fire times
    were handled. With ``handovers``, started tasks go to the runner in tasks kept there, so
    a lane moves on to its next batch at once."""

    async def worker() -> int:
        handled = 0
        while fired := await fire_batch(knm, handovers):
            handled += fired
        return handled

    # Each batch holds a pooled connection while its checks take another: never so many
    # that the fires alone could empty a small pool.
    lanes = max(1, min(CONCURRENCY, knm.config.db_pool_max // 4))
    return sum(await asyncio.gather(*(worker() for _ in range(lanes))))


async def fire_one(knm: Knm, handovers: set[asyncio.Task[None]] | None = None) -> bool:
    """Handle the most overdue fire time no other process holds; False when none is due."""
    return await fire_batch(knm, handovers, limit=1) > 0


async def fire_batch(
    knm: Knm, handovers: set[asyncio.Task[None]] | None = None, *, limit: int = BATCH
) -> int:
    """Handle up to ``limit`` due fire times (one per schedule) in one transaction; how
    many (0: none is due). The tasks it started are handed to the runner before it returns,
    or (``handovers``) in a task added there.

    A fire refused by its checks is recorded in the batch and the others go on. A statement
    that fails (the database refuses a fire's writes) rolls the whole batch back: its
    schedules are then fired one transaction each, so the one that breaks fails alone."""
    claimed: list[int] = []
    try:
        return await _claim_and_fire(knm, handovers, limit, None, claimed)
    except UNAVAILABLE:
        raise
    except asyncpg.PostgresError:
        if len(claimed) <= 1:
            raise
        log.exception("schedules: a batch of %d fires failed; firing them one by one", len(claimed))
    handled, failure = 0, None
    for schedule_id in claimed:
        try:
            handled += await _claim_and_fire(knm, handovers, 1, [schedule_id], [])
        except UNAVAILABLE:
            raise
        except asyncpg.PostgresError as exc:
            log.exception("schedules: firing schedule %d failed", schedule_id)
            failure = exc
    if failure is not None:
        # The loop waits before it looks again, rather than retry the broken fire at once.
        raise failure
    return handled


async def _claim_and_fire(
    knm: Knm,
    handovers: set[asyncio.Task[None]] | None,
    limit: int,
    ids: list[int] | None,
    claimed: list[int],
) -> int:
    async with knm.pool.acquire() as conn, conn.transaction():
        rows, now = await store.claim_due_batch(conn, limit, ids)
        if not rows:
            return 0
        assert now is not None
        claimed.extend(row.id for row in rows)
        with service.default_credentials_read_once():
            started = await _fire_batch(knm, conn, rows, now)
    if started:
        if handovers is None:
            await _hand_over(knm, started)
        else:
            job = asyncio.create_task(_hand_over(knm, started))
            handovers.add(job)
            job.add_done_callback(handovers.discard)
    return len(rows)


async def _hand_over(knm: Knm, started: list[tuple[str, Prepared]]) -> None:
    """The batch's committed tasks to this process's runner, claimed in one go; those it
    does not take (behind a limit, no runner here) any runner claims: it heard the NOTIFY
    sent with the commit."""
    try:
        if knm.runner is not None:
            await knm.runner.try_claim_many(started)
    except Exception as exc:
        log.warning("schedules: handing over %d task(s) failed: %s", len(started), exc)


class _Fire(msgspec.Struct):
    """One schedule's fire time in a batch, as planned from its row."""

    row: ScheduleRow
    fire_time: datetime
    following: datetime | None
    #: ``skip``: a misfire under ``misfire_policy`` skip (recorded, no task).
    skip: bool = False
    reason: str = ""


def _plan(row: ScheduleRow, now: datetime) -> _Fire:
    """Which fire time of ``row`` this fire handles, and the one after it."""
    assert row.next_fire_at is not None
    fire_time = row.next_fire_at
    grace = timedelta(seconds=MISFIRE_GRACE)
    if now - fire_time <= grace:
        return _Fire(row, fire_time, row.timing.next_after(fire_time))
    last, count, following = _missed(row, now - grace)
    span = f"{count} fire time(s) from {fire_time.isoformat()} to {last.isoformat()}"
    if row.misfire_policy == "skip":
        reason = (
            f"misfire: {span} passed while no knm process could fire them (misfire_policy skip)"
        )
        return _Fire(row, last, following, skip=True, reason=reason)
    return _Fire(
        row, last, following, reason=f"catch-up run for {span} missed (misfire_policy run_once)"
    )


async def _fire_batch(
    knm: Knm, conn: asyncpg.Connection, rows: list[ScheduleRow], now: datetime
) -> list[tuple[str, Prepared]]:
    """Fire each of ``rows`` (claimed and locked by the caller's transaction) once, at its
    due fire time; the tasks started. The database work is a few statements for the whole
    batch; what a fire checks (owner, limit, stored request) is checked for each fire."""
    fires = [_plan(row, now) for row in rows]
    await store.moved_on_many(
        conn,
        [(f.row.id, f.following, f.row.last_fired_at if f.skip else f.fire_time) for f in fires],
    )
    # The unique key: a fire time recorded before (by anyone) is never fired again.
    recorded = await store.insert_runs(
        conn,
        [
            (f.row.id, f.fire_time, "skipped" if f.skip else "started", "" if f.skip else f.reason)
            for f in fires
        ],
    )
    fires = [f for f in fires if f.row.id in recorded]
    for fire in fires:
        if fire.skip:
            await fire_not_started(conn, fire.row, fire.fire_time, "skipped", fire.reason)
    fires = [f for f in fires if not f.skip]
    if not fires:
        return []
    # As of now, once per owner however many of their schedules fire in the batch.
    owners = await stored.owners(conn, {f.row.owner_id for f in fires})
    checked = []
    for fire in fires:
        owner = owners[fire.row.owner_id]
        if isinstance(owner, str):
            await fire_not_started(conn, fire.row, fire.fire_time, "failed", owner)
        else:
            checked.append((fire, owner))
    if not checked:
        return []
    running = await store.unfinished_runs_many(
        conn, [(fire.row.id, fire.fire_time) for fire, _ in checked]
    )
    started: list[tuple[str, Prepared]] = []
    tasks: list[tasks_store.NewTask] = []
    audit_entries: list[tuple[Any, ...]] = []
    runs: list[tuple[int, datetime, str]] = []
    for fire, owner in checked:
        row = fire.row
        unfinished = running.get(row.id, 0)
        if unfinished >= row.max_concurrent_runs:
            await fire_not_started(
                conn, row, fire.fire_time, "skipped",
                f"{unfinished} task(s) of this schedule still unfinished "
                f"(max_concurrent_runs {row.max_concurrent_runs})",
            )  # fmt: skip
            continue
        checked_request = await _validated(knm, conn, fire, owner)
        if checked_request is None:
            continue
        executor, request, prepared = checked_request
        task = service.new_task(knm, executor, request, prepared, owner)
        tasks.append(task)
        started.append((task.task_id, prepared))
        runs.append((row.id, fire.fire_time, task.task_id))
        audit_entries.append(
            (
                owner.user_id, owner.username, owner.role, "task.start", task.task_id, "ok",
                "schedule", {"kind": executor.kind, "schedule_id": row.id, "schedule": row.name},
            )
        )  # fmt: skip
    if started:
        await tasks_store.insert_tasks(conn, tasks)
        await store.set_run_tasks(conn, runs)
        await audit.record_many(conn, audit_entries)
        # Delivered with the commit: whichever runner hears first claims each task.
        await conn.execute(
            "SELECT pg_notify('knm_tasks', t) FROM unnest($1::text[]) AS t",
            [task_id for task_id, _ in started],
        )
    return started


async def _validated(
    knm: Knm, conn: asyncpg.Connection, fire: _Fire, owner: Principal
) -> tuple[Executor, ExecRequest, Prepared] | None:
    """The fire's stored request checked as its execute route would, for ``owner`` as of
    now; None when refused (recorded as the fire's ``failed`` run)."""
    row = fire.row
    try:
        executor = stored.executor_of(knm, row.kind)
        request, prepared = await stored.validate(knm, executor, stored.body_of(knm, row), owner)
    except KnmError as exc:
        await fire_not_started(conn, row, fire.fire_time, "failed", exc.error or str(exc))
        return None
    except UNAVAILABLE:
        raise  # the database: the whole batch rolls back and is made again
    except Exception as exc:
        # A plugin's prepare that breaks fails this fire only, never the loop (or the
        # schedules due after it).
        log.exception("schedule %s (%d): checking its request failed", row.name, row.id)
        await fire_not_started(
            conn, row, fire.fire_time, "failed", f"internal error: {type(exc).__name__}: {exc}"
        )
        return None
    return executor, request, prepared


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
    cluster = row.request.get("cluster_name")
    cluster = cluster if isinstance(cluster, str) else None
    await emit(
        conn,
        "schedule.misfired",
        {
            "schedule_id": row.id,
            "schedule": row.name,
            "owner": row.owner_name,
            "kind": row.kind,
            "cluster_name": cluster,
            "fire_time": fire_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "status": status,
            "reason": reason,
        },
        kind=row.kind,
        cluster=cluster,
        status=status,
    )
