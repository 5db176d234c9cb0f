"""The ``schedules`` and ``schedule_runs`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from knm.core.crypto import EncryptedColumn, Sealed, register_encrypted_column
from knm.core.errors import Conflict, NotFound
from knm.core.schedules.cron import Timing
from knm.wire.schedules import Schedule, ScheduleRun

#: The request as sent, when its executor marked some of its values secret.
REQUEST = register_encrypted_column(EncryptedColumn(table="schedules", purpose="schedule-request"))

#: Who announces changes, so every firing loop looks again at once.
CHANNEL = "knm_schedules"

_SHOWN = (
    "id, name, description, owner_id, owner_name, kind, request, cron, timezone, "
    "interval_seconds, enabled, misfire_policy, max_concurrent_runs, start_at, end_at, "
    "next_fire_at, last_fired_at, created_at, updated_at"
)
#: The columns a change may set (``update``).
EDITABLE = frozenset(
    {
        "name", "description", "kind", "request", "cron", "timezone", "interval_seconds",
        "enabled", "misfire_policy", "max_concurrent_runs", "start_at", "end_at",
        "next_fire_at",
    }
)  # fmt: skip


class ScheduleRow(msgspec.Struct, kw_only=True):
    """A schedule as stored, sealed request included."""

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
    misfire_policy: str
    max_concurrent_runs: int
    start_at: datetime | None
    end_at: datetime | None
    next_fire_at: datetime | None
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime
    key_id: str | None = None
    nonce: bytes | None = None
    ciphertext: bytes | None = None

    @property
    def timing(self) -> Timing:
        return Timing(
            cron=self.cron,
            timezone=self.timezone,
            interval_seconds=self.interval_seconds,
            start_at=self.start_at,
            end_at=self.end_at,
            anchor=self.created_at,
        )

    @property
    def sealed(self) -> Sealed | None:
        if self.ciphertext is None or self.key_id is None or self.nonce is None:
            return None
        return Sealed(self.key_id, self.nonce, self.ciphertext)

    def shown(self, next_fire_times: list[datetime] | None = None) -> Schedule:
        fields = {f: getattr(self, f) for f in _SHOWN.split(", ")}
        return Schedule(**fields, next_fire_times=next_fire_times or [])  # type: ignore[arg-type]


def _row(record: asyncpg.Record) -> ScheduleRow:
    return ScheduleRow(**dict(record))


def _run(record: asyncpg.Record) -> ScheduleRun:
    return ScheduleRun(
        **{
            k: record[k]
            for k in ("id", "schedule_id", "fire_time", "status", "reason", "task_id", "created_at")
        }
    )


async def insert(conn: asyncpg.Connection, **fields: Any) -> ScheduleRow:
    columns = list(fields)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    try:
        record = await conn.fetchrow(
            f"INSERT INTO schedules ({', '.join(columns)}) VALUES ({placeholders}) RETURNING *",
            *fields.values(),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"schedule {fields['name']!r} already exists") from None
    return _row(record)


async def set_sealed(conn: asyncpg.Connection, schedule_id: int, sealed: Sealed | None) -> None:
    await conn.execute(
        "UPDATE schedules SET key_id = $2, nonce = $3, ciphertext = $4 WHERE id = $1",
        schedule_id,
        sealed.key_id if sealed else None,
        sealed.nonce if sealed else None,
        sealed.ciphertext if sealed else None,
    )


async def get(conn: asyncpg.Connection | asyncpg.Pool, schedule_id: int) -> ScheduleRow:
    record = await conn.fetchrow("SELECT * FROM schedules WHERE id = $1", schedule_id)
    if record is None:
        raise NotFound(f"Schedule ID {schedule_id} not found")
    return _row(record)


async def for_update(conn: asyncpg.Connection, schedule_id: int) -> ScheduleRow:
    record = await conn.fetchrow("SELECT * FROM schedules WHERE id = $1 FOR UPDATE", schedule_id)
    if record is None:
        raise NotFound(f"Schedule ID {schedule_id} not found")
    return _row(record)


async def update(conn: asyncpg.Connection, schedule_id: int, fields: dict[str, Any]) -> ScheduleRow:
    assert set(fields) <= EDITABLE, set(fields) - EDITABLE
    sets = [f"{name} = ${i}" for i, name in enumerate(fields, start=2)]
    sets.append("updated_at = now()")
    try:
        record = await conn.fetchrow(
            f"UPDATE schedules SET {', '.join(sets)} WHERE id = $1 RETURNING *",
            schedule_id,
            *fields.values(),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"schedule {fields.get('name')!r} already exists") from None
    if record is None:
        raise NotFound(f"Schedule ID {schedule_id} not found")
    return _row(record)


async def delete(conn: asyncpg.Connection, schedule_id: int) -> None:
    await conn.execute("DELETE FROM schedules WHERE id = $1", schedule_id)


async def list_schedules(
    conn: asyncpg.Connection | asyncpg.Pool, owner_id: int | None, limit: int, offset: int
) -> tuple[int, list[ScheduleRow]]:
    """A page of schedules by id; ``owner_id`` limits it to one owner's."""
    where = "" if owner_id is None else "WHERE owner_id = $3"
    args: list[Any] = [limit, offset] + ([] if owner_id is None else [owner_id])
    total = await conn.fetchval(
        f"SELECT count(*) FROM schedules {where.replace('$3', '$1')}", *args[2:]
    )
    rows = await conn.fetch(
        f"SELECT * FROM schedules {where} ORDER BY id LIMIT $1 OFFSET $2", *args
    )
    return total, [_row(r) for r in rows]


async def runs(
    conn: asyncpg.Connection | asyncpg.Pool, schedule_id: int, limit: int, offset: int
) -> tuple[int, list[ScheduleRun]]:
    """A page of a schedule's runs, newest fire time first."""
    total = await conn.fetchval(
        "SELECT count(*) FROM schedule_runs WHERE schedule_id = $1", schedule_id
    )
    rows = await conn.fetch(
        "SELECT * FROM schedule_runs WHERE schedule_id = $1 "
        "ORDER BY fire_time DESC LIMIT $2 OFFSET $3",
        schedule_id,
        limit,
        offset,
    )
    return total, [_run(r) for r in rows]


async def announce(conn: asyncpg.Connection | asyncpg.Pool, schedule_id: int) -> None:
    """Tell every firing loop (all processes) that a schedule changed; sent on commit."""
    await conn.execute(f"SELECT pg_notify('{CHANNEL}', $1)", str(schedule_id))


# --- firing ------------------------------------------------------------------------------


async def claim_due(conn: asyncpg.Connection) -> ScheduleRow | None:
    """The most overdue enabled schedule no other process is firing, locked until the
    caller's transaction ends (``SKIP LOCKED``: the others take the next one)."""
    rows, _ = await claim_due_batch(conn, 1)
    return rows[0] if rows else None


async def claim_due_batch(
    conn: asyncpg.Connection, limit: int, ids: Sequence[int] | None = None
) -> tuple[list[ScheduleRow], datetime | None]:
    """Up to ``limit`` enabled schedules due now, most overdue first, that no other process
    is firing (``SKIP LOCKED``: they take the next ones), locked until the caller's
    transaction ends; with ``ids``, only those. Also the transaction's ``now()``."""
    records = await conn.fetch(
        "SELECT *, now() AS claimed_at FROM schedules WHERE enabled AND next_fire_at <= now() "
        "AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[])) "
        "ORDER BY next_fire_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
        None if ids is None else list(ids),
    )
    if not records:
        return [], None
    now = records[0]["claimed_at"]
    rows = []
    for record in records:
        fields = dict(record)
        del fields["claimed_at"]
        rows.append(ScheduleRow(**fields))
    return rows, now


async def next_due(conn: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
    return await conn.fetchval("SELECT min(next_fire_at) FROM schedules WHERE enabled")


async def moved_on(
    conn: asyncpg.Connection,
    schedule_id: int,
    next_fire_at: datetime | None,
    fired: datetime | None,
) -> None:
    await conn.execute(
        "UPDATE schedules SET next_fire_at = $2, last_fired_at = $3 WHERE id = $1",
        schedule_id,
        next_fire_at,
        fired,
    )


async def moved_on_many(
    conn: asyncpg.Connection, moves: Sequence[tuple[int, datetime | None, datetime | None]]
) -> None:
    """``moved_on`` for several schedules in one statement: (id, next_fire_at, fired)."""
    await conn.execute(
        "UPDATE schedules s SET next_fire_at = m.next_fire_at, last_fired_at = m.fired "
        "FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[]) "
        "AS m(id, next_fire_at, fired) WHERE s.id = m.id",
        [m[0] for m in moves],
        [m[1] for m in moves],
        [m[2] for m in moves],
    )


async def insert_runs(
    conn: asyncpg.Connection, runs: Sequence[tuple[int, datetime, str, str]]
) -> set[int]:
    """``insert_run`` for several schedules' fire times in one statement: (schedule id, fire
    time, status, reason). The ids of the schedules whose run was recorded now — not those
    whose fire time was recorded before (the unique key)."""
    records = await conn.fetch(
        "INSERT INTO schedule_runs (schedule_id, fire_time, status, reason, settled) "
        "SELECT r.schedule_id, r.fire_time, r.status, r.reason, r.status <> 'started' "
        "FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[]) "
        "AS r(schedule_id, fire_time, status, reason) "
        "ON CONFLICT (schedule_id, fire_time) DO NOTHING RETURNING schedule_id",
        [r[0] for r in runs],
        [r[1] for r in runs],
        [r[2] for r in runs],
        [r[3] for r in runs],
    )
    return {r["schedule_id"] for r in records}


async def set_run_tasks(
    conn: asyncpg.Connection, started: Sequence[tuple[int, datetime, str]]
) -> None:
    """Name the task each run started: (schedule id, fire time, task id)."""
    await conn.execute(
        "UPDATE schedule_runs r SET task_id = u.task_id "
        "FROM unnest($1::bigint[], $2::timestamptz[], $3::text[]) "
        "AS u(schedule_id, fire_time, task_id) "
        "WHERE r.schedule_id = u.schedule_id AND r.fire_time = u.fire_time",
        [s[0] for s in started],
        [s[1] for s in started],
        [s[2] for s in started],
    )


async def insert_run(
    conn: asyncpg.Connection,
    schedule_id: int,
    fire_time: datetime,
    status: str,
    reason: str,
    task_id: str | None = None,
) -> bool:
    """Record the fire time's run; False when it was recorded before (the unique key)."""
    inserted = await conn.fetchval(
        "INSERT INTO schedule_runs (schedule_id, fire_time, task_id, status, reason, settled) "
        "VALUES ($1, $2, $3, $4, $5, $4 <> 'started') "
        "ON CONFLICT (schedule_id, fire_time) DO NOTHING RETURNING id",
        schedule_id,
        fire_time,
        task_id,
        status,
        reason,
    )
    return inserted is not None


async def run_exists(conn: asyncpg.Connection, schedule_id: int, fire_time: datetime) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM schedule_runs WHERE schedule_id = $1 AND fire_time = $2)",
            schedule_id,
            fire_time,
        )
    )


async def unfinished_runs(conn: asyncpg.Connection, schedule_id: int, besides: datetime) -> int:
    """Tasks the schedule started (at fire times other than ``besides``, the one being fired)
    that have not finished. Runs whose task is seen finished (or pruned) are marked settled
    first, so this reads only the few still open."""
    await conn.execute(
        "UPDATE schedule_runs r SET settled = true WHERE r.schedule_id = $1 AND NOT r.settled "
        "AND r.fire_time <> $2 AND NOT EXISTS (SELECT 1 FROM tasks t "
        "WHERE t.task_id = r.task_id AND t.status IN ('pending', 'running'))",
        schedule_id,
        besides,
    )
    return await conn.fetchval(
        "SELECT count(*) FROM schedule_runs WHERE schedule_id = $1 AND NOT settled "
        "AND fire_time <> $2",
        schedule_id,
        besides,
    )


async def unfinished_runs_many(
    conn: asyncpg.Connection, fires: Sequence[tuple[int, datetime]]
) -> dict[int, int]:
    """``unfinished_runs`` for several schedules in one statement: (schedule id, the fire
    time being fired) → its unfinished tasks. Runs whose task finished are settled on the
    way; the count leaves them out (the statement's snapshot still sees them unsettled)."""
    records = await conn.fetch(
        """WITH f(schedule_id, fire_time) AS (
               SELECT * FROM unnest($1::bigint[], $2::timestamptz[])),
           settled AS (
               UPDATE schedule_runs r SET settled = true FROM f
               WHERE r.schedule_id = f.schedule_id AND NOT r.settled
                 AND r.fire_time <> f.fire_time AND NOT EXISTS (SELECT 1 FROM tasks t
                     WHERE t.task_id = r.task_id AND t.status IN ('pending', 'running'))
               RETURNING r.id)
           SELECT f.schedule_id, count(r.id) AS n FROM f
           LEFT JOIN schedule_runs r ON r.schedule_id = f.schedule_id AND NOT r.settled
                AND r.fire_time <> f.fire_time AND r.id NOT IN (SELECT id FROM settled)
           GROUP BY f.schedule_id""",
        [f[0] for f in fires],
        [f[1] for f in fires],
    )
    return {r["schedule_id"]: r["n"] for r in records}


#: For retention (``knm.core.tasks.retention``): settled runs older than the tasks kept, a
#: batch at a time (``$1`` days, ``$2`` rows). A run whose task is still unfinished stays.
PRUNE_RUNS = """DELETE FROM schedule_runs WHERE id IN (
    SELECT id FROM schedule_runs WHERE settled
      AND fire_time < now() - make_interval(days => $1) LIMIT $2)"""
