"""The ``users`` table."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from knm.core.auth import cache
from knm.core.errors import Conflict, NotFound


class User(msgspec.Struct):
    """A user as the API shows it (never the password hash)."""

    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserRow(msgspec.Struct):
    id: int
    username: str
    role: str
    disabled: bool
    password_hash: str
    session_epoch: int


_COLUMNS = "id, username, role, disabled, created_at, updated_at"


def _user(row: asyncpg.Record) -> User:
    return User(
        **{k: row[k] for k in ("id", "username", "role", "disabled", "created_at", "updated_at")}
    )


async def create(conn: asyncpg.Connection, username: str, password_hash: str, role: str) -> User:
    try:
        row = await conn.fetchrow(
            f"INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING {_COLUMNS}",
            username,
            password_hash,
            role,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"user {username!r} already exists") from None
    return _user(row)


async def get(conn: asyncpg.Connection, user_id: int) -> User:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise NotFound(f"User ID {user_id} not found")
    return _user(row)


async def auth_row_by_name(conn: asyncpg.Connection, username: str) -> UserRow | None:
    row = await conn.fetchrow(
        "SELECT id, username, role, disabled, password_hash, session_epoch FROM users "
        "WHERE lower(username) = lower($1)",
        username,
    )
    return None if row is None else UserRow(**dict(row))


async def auth_row(conn: asyncpg.Connection, user_id: int) -> UserRow | None:
    row = await conn.fetchrow(
        "SELECT id, username, role, disabled, password_hash, session_epoch FROM users WHERE id = $1",
        user_id,
    )
    return None if row is None else UserRow(**dict(row))


async def list_users(conn: asyncpg.Connection, limit: int, offset: int) -> tuple[int, list[User]]:
    total = await conn.fetchval("SELECT count(*) FROM users")
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2", limit, offset
    )
    return total, [_user(r) for r in rows]


async def update(
    conn: asyncpg.Connection,
    user_id: int,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    password_hash: str | None = None,
) -> User:
    row = await conn.fetchrow(
        f"""UPDATE users SET
               role = coalesce($2, role),
               disabled = coalesce($3, disabled),
               password_hash = coalesce($4, password_hash),
               session_epoch = session_epoch + CASE WHEN $4::text IS NULL THEN 0 ELSE 1 END,
               updated_at = now()
           WHERE id = $1 RETURNING {_COLUMNS}""",
        user_id,
        role,
        disabled,
        password_hash,
    )
    if row is None:
        raise NotFound(f"User ID {user_id} not found")
    await cache.announce(conn, user_id)
    return _user(row)


async def count_admins(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled")


async def exists_any(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"))
