"""The audit log: who did what to which target, from where, and how it went.

Only names and ids go in; secrets never reach this table (callers pass targets, not bodies).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Request, get

from knm.core.auth.guards import ADMIN
from knm.core.envelope import Envelope, PageNo, PageSize, ok
from knm.core.errors import BadRequest


class AuditEntry(msgspec.Struct):
    id: int
    at: datetime
    user_id: int | None
    username: str | None
    role: str | None
    action: str
    target: str
    outcome: str
    client: str
    detail: dict[str, Any]


class AuditList(msgspec.Struct):
    total: int
    entries: list[AuditEntry]


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    action: str,
    target: str = "",
    outcome: str = "ok",
    client: str = "",
    user_id: int | None = None,
    username: str | None = None,
    role: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (user_id, username, role, action, target, outcome, client, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        user_id,
        username,
        role,
        action,
        target,
        outcome,
        client,
        detail or {},
    )


async def record_many(
    conn: asyncpg.Connection,
    entries: list[tuple[int | None, str | None, str | None, str, str, str, str, dict[str, Any]]],
) -> None:
    """``record`` for several entries in one pipelined round trip: (user id, username, role,
    action, target, outcome, client, detail)."""
    await conn.executemany(
        "INSERT INTO audit_log (user_id, username, role, action, target, outcome, client, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        entries,
    )


@get("/audit", guards=[ADMIN], summary="The audit log, newest first")
async def list_audit(
    request: Request[Any, Any, Any],
    user: str | None = None,
    action: str | None = None,
    target: str | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[AuditList]:
    if start_date and end_date and end_date < start_date:
        raise BadRequest("end_date is before start_date")
    conditions, args = [], []

    def add(sql: str, value: object) -> None:
        args.append(value)
        conditions.append(sql.replace("?", f"${len(args)}"))

    if user:
        add("username = ?", user)
    if action:
        # An action family: "user" matches "user.create" and "user.update".
        args.append(action)
        conditions.append(f"(action = ${len(args)} OR action LIKE ${len(args)} || '.%')")
    if target:
        add("target = ?", target)
    # Day arithmetic in SQL: PostgreSQL's dates reach far past Python's (9999-12-31 + 1 day).
    if start_date:
        add("at >= ?::date", start_date)
    if end_date:
        add("at < ?::date + 1", end_date)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    pool = request.app.state["knm"].pool
    total = await pool.fetchval(f"SELECT count(*) FROM audit_log {where}", *args)
    rows = await pool.fetch(
        f"SELECT * FROM audit_log {where} ORDER BY at DESC, id DESC "
        f"LIMIT {page_size} OFFSET {(page - 1) * page_size}",
        *args,
    )
    return ok(AuditList(total, [AuditEntry(**dict(r)) for r in rows]))


ROUTES = [list_audit]
