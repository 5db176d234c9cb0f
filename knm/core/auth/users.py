"""The ``users`` table."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from knm.core.auth import cache
from knm.core.errors import Conflict, NotFound

#: Held (transaction-scoped) by every change that could leave fewer active admins, so two such
#: changes at the same moment see each other's result: never zero admins.
ADMINS_LOCK_KEY = 0x6B6E6D + 2


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
    #: The session a self-service password change kept (its JWTs' ``sid``), if any.
    kept_session: str | None


_COLUMNS = "id, username, role, disabled, created_at, updated_at"
_AUTH_COLUMNS = "id, username, role, disabled, password_hash, session_epoch, kept_session"


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
        f"SELECT {_AUTH_COLUMNS} FROM users WHERE lower(username) = lower($1)",
        username,
    )
    return None if row is None else UserRow(**dict(row))


async def auth_row(conn: asyncpg.Connection, user_id: int) -> UserRow | None:
    row = await conn.fetchrow(
        f"SELECT {_AUTH_COLUMNS} FROM users WHERE id = $1",
        user_id,
    )
    return None if row is None else UserRow(**dict(row))


async def auth_rows(conn: asyncpg.Connection, user_ids: list[int]) -> dict[int, UserRow]:
    """``auth_row`` for several users in one statement; the missing ones are left out."""
    rows = await conn.fetch(f"SELECT {_AUTH_COLUMNS} FROM users WHERE id = ANY($1)", user_ids)
    return {row["id"]: UserRow(**dict(row)) for row in rows}


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
    keep_session: str | None = None,
) -> User:
    """Change a user; refuses (409) to leave no active admin.

    A new password or a disable ends the user's sessions — every JWT issued before, except the
    session ``keep_session`` names (the one a user changed their own password from) — and
    revokes every API token of theirs. Re-enabling revives none of them."""
    revoke = password_hash is not None or disabled is True
    async with conn.transaction():
        if (role is not None and role != "admin") or disabled is True:
            await _keep_an_admin(conn, user_id)
        row = await conn.fetchrow(
            f"""UPDATE users SET
                   role = coalesce($2, role),
                   disabled = coalesce($3, disabled),
                   password_hash = coalesce($4, password_hash),
                   session_epoch = session_epoch + CASE WHEN $5 THEN 1 ELSE 0 END,
                   kept_session = CASE WHEN $5 THEN $6 ELSE kept_session END,
                   updated_at = now()
               WHERE id = $1 RETURNING {_COLUMNS}""",
            user_id,
            role,
            disabled,
            password_hash,
            revoke,
            keep_session,
        )
        if row is None:
            raise NotFound(f"User ID {user_id} not found")
        if revoke:
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() "
                "WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
            )
        await cache.announce(conn, user_id)
    return _user(row)


async def _keep_an_admin(conn: asyncpg.Connection, user_id: int) -> None:
    """Refuse to demote or disable the last active admin. The lock makes the count and the
    change one step: a second demotion waits, then counts what the first left."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", ADMINS_LOCK_KEY)
    others = await conn.fetchval(
        "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1", user_id
    )
    is_active_admin = await conn.fetchval(
        "SELECT role = 'admin' AND NOT disabled FROM users WHERE id = $1", user_id
    )
    if is_active_admin and others == 0:
        raise Conflict("the last active admin cannot be demoted or disabled")


async def count_admins(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled")


async def exists_any(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"))
