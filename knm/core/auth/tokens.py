"""Login tokens (JWT, HS256) and long-lived API tokens (opaque, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt
import msgspec

from knm.core.auth import cache
from knm.core.auth.principal import ROLES, Principal
from knm.core.errors import NotFound, Unauthorized

API_TOKEN_PREFIX = "knm_"
ALGORITHM = "HS256"


class Session(msgspec.Struct, frozen=True):
    """One login: its id and when it happened (Unix seconds)."""

    id: str
    auth_time: int

    @classmethod
    def new(cls) -> Session:
        return cls(uuid.uuid4().hex, int(datetime.now(UTC).timestamp()))


def issue_jwt(
    key: bytes, *, user_id: int, role: str, epoch: int, ttl: int, session: Session, max_age: int
) -> tuple[str, datetime]:
    """A JWT of ``session``: valid ``ttl`` seconds, but never past the session's login plus
    ``max_age`` (refreshing cannot extend a session forever)."""
    now = datetime.now(UTC)
    end = datetime.fromtimestamp(session.auth_time + max_age, UTC)
    if end <= now:
        raise Unauthorized("session expired; log in again")
    expires = min(now + timedelta(seconds=ttl), end)
    claims = {
        "sub": str(user_id),
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
        "ep": epoch,
        "sid": session.id,
        "auth_time": session.auth_time,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), datetime.fromtimestamp(
        int(expires.timestamp()), UTC
    )


def decode_jwt(key: bytes, token: str) -> dict[str, object]:
    try:
        return jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "iat", "jti"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("invalid token signature") from None
    except jwt.DecodeError:
        raise Unauthorized("malformed token") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(msgspec.Struct):
    id: int
    name: str
    user_id: int
    role: str
    prefix: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class NewApiToken(msgspec.Struct):
    """Returned once at creation: ``token`` is never shown again."""

    id: int
    name: str
    role: str
    token: str
    expires_at: datetime | None
    created_at: datetime


_COLUMNS = "id, name, user_id, role, prefix, expires_at, revoked_at, last_used_at, created_at"


async def create_api_token(
    conn: asyncpg.Connection,
    *,
    name: str,
    user_id: int,
    role: str,
    expires_at: datetime | None,
    parent_id: int | None = None,
) -> NewApiToken:
    """A new token. With ``parent_id`` (minted with another API token) it expires no later than
    its parent — a later or missing ``expires_at`` is clamped to the parent's — and is revoked
    with it."""
    if parent_id is not None:
        parent = await conn.fetchrow(
            "SELECT expires_at, revoked_at FROM api_tokens WHERE id = $1", parent_id
        )
        if parent is None or parent["revoked_at"] is not None:
            raise Unauthorized("token revoked")
        limit = parent["expires_at"]
        if limit is not None and (expires_at is None or expires_at > limit):
            expires_at = limit
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO api_tokens (name, user_id, role, token_hash, prefix, expires_at, parent_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at",
        name,
        user_id,
        role,
        hash_api_token(token),
        token[:12],
        expires_at,
        parent_id,
    )
    return NewApiToken(
        id=row["id"],
        name=name,
        role=role,
        token=token,
        expires_at=expires_at,
        created_at=row["created_at"],
    )


async def list_api_tokens(
    conn: asyncpg.Connection, user_id: int | None, limit: int, offset: int
) -> tuple[int, list[ApiToken]]:
    where = "" if user_id is None else "WHERE user_id = $3"
    args: list[object] = [limit, offset] + ([] if user_id is None else [user_id])
    total = await conn.fetchval(
        f"SELECT count(*) FROM api_tokens {where.replace('$3', '$1')}", *args[2:]
    )
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_tokens {where} ORDER BY id DESC LIMIT $1 OFFSET $2", *args
    )
    return total, [ApiToken(**dict(r)) for r in rows]


async def revoke_api_token(conn: asyncpg.Connection, token_id: int, user_id: int | None) -> int:
    """Revoke the token (of ``user_id`` unless None) and every token minted from it, at any
    depth; answers its owner's user id."""
    async with conn.transaction():
        owner = await conn.fetchval(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
            "WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2) RETURNING user_id",
            token_id,
            user_id,
        )
        if owner is None:
            raise NotFound(f"Token ID {token_id} not found")
        await conn.execute(
            """WITH RECURSIVE descendants AS (
                   SELECT id FROM api_tokens WHERE parent_id = $1
                   UNION SELECT t.id FROM api_tokens t JOIN descendants d ON t.parent_id = d.id)
               UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
               WHERE id IN (SELECT id FROM descendants)""",
            token_id,
        )
        await cache.announce(conn, owner)
    return int(owner)


async def principal_for_api_token(
    conn: asyncpg.Connection, token: str
) -> tuple[Principal, float | None]:
    """The token's principal and when the token expires (``time.time()``, or None).

    ``last_used_at`` is written here, so with the authentication cache it is exact to within
    ``auth_cache_seconds``."""
    row = await conn.fetchrow(
        """UPDATE api_tokens t SET last_used_at = now()
           FROM users u
           WHERE t.token_hash = $1 AND u.id = t.user_id
           RETURNING t.id, t.role, t.expires_at, t.revoked_at, u.id AS user_id, u.username,
                     u.role AS user_role, u.disabled""",
        hash_api_token(token),
    )
    if row is None:
        raise Unauthorized("invalid API token")
    if row["revoked_at"] is not None:
        raise Unauthorized("token revoked")
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        raise Unauthorized("token expired")
    if row["disabled"]:
        raise Unauthorized("user disabled")
    # A token never grants more than its owner has now, even after the owner was demoted.
    role = min(row["role"], row["user_role"], key=ROLES.index)
    principal = Principal(
        user_id=row["user_id"], username=row["username"], role=role, via="api", token_id=row["id"]
    )
    expires_at = row["expires_at"]
    return principal, expires_at.timestamp() if expires_at is not None else None
