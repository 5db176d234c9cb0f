"""SQL of ``notification_subscriptions``: plain columns for what the API shows, one sealed
JSON for the target's secret (sealed like credentials, bound to the row's id)."""

from __future__ import annotations

from typing import Any

import asyncpg

from knm.core.crypto import EncryptedColumn, Keyring, Sealed, register_encrypted_column
from knm.core.errors import Conflict, NotFound
from knm.wire.notifications import Subscription

SECRET = register_encrypted_column(
    EncryptedColumn(table="notification_subscriptions", purpose="notification-secret")
)

_SHOWN = (
    "id, name, owner, events, kinds, clusters, statuses, target_type, target, has_secret, "
    "enabled, created_at, updated_at"
)
_COLUMNS = tuple(_SHOWN.split(", "))


def not_found(subscription_id: int) -> NotFound:
    return NotFound(f"Subscription ID {subscription_id} not found")


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(**{k: row[k] for k in _COLUMNS})


def seal(keyring: Keyring, subscription_id: int, secret: str) -> Sealed:
    return SECRET.seal(keyring, secret, subscription_id)


def unseal(keyring: Keyring, row: asyncpg.Record | dict[str, Any]) -> str:
    """The row's secret ("" when it holds none)."""
    if row["ciphertext"] is None:
        return ""
    sealed = Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))
    return SECRET.open(keyring, sealed, row["id"])


async def insert(
    conn: asyncpg.Connection,
    keyring: Keyring,
    *,
    name: str,
    owner_id: int | None,
    owner: str,
    events: list[str],
    kinds: list[str],
    clusters: list[str],
    statuses: list[str],
    target_type: str,
    target: dict[str, Any],
    secret: str,
    enabled: bool,
) -> Subscription:
    # The id first, so the seal is bound to the row from its first write.
    subscription_id = await conn.fetchval(
        "SELECT nextval(pg_get_serial_sequence('notification_subscriptions', 'id'))"
    )
    sealed = seal(keyring, subscription_id, secret) if secret else None
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO notification_subscriptions (id, name, owner_id, owner, events, kinds,
                    clusters, statuses, target_type, target, has_secret, key_id, nonce,
                    ciphertext, enabled)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                RETURNING {_SHOWN}""",
            subscription_id,
            name,
            owner_id,
            owner,
            events,
            kinds,
            clusters,
            statuses,
            target_type,
            target,
            sealed is not None,
            sealed.key_id if sealed else None,
            sealed.nonce if sealed else None,
            sealed.ciphertext if sealed else None,
            enabled,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a subscription named {name!r} already exists") from None
    return _subscription(row)


async def get(conn: asyncpg.Connection | asyncpg.Pool, subscription_id: int) -> Subscription:
    row = await conn.fetchrow(
        f"SELECT {_SHOWN} FROM notification_subscriptions WHERE id = $1", subscription_id
    )
    if row is None:
        raise not_found(subscription_id)
    return _subscription(row)


async def list_subscriptions(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, offset: int
) -> tuple[int, list[Subscription]]:
    total = await conn.fetchval("SELECT count(*) FROM notification_subscriptions")
    rows = await conn.fetch(
        f"SELECT {_SHOWN} FROM notification_subscriptions ORDER BY id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return total, [_subscription(r) for r in rows]


async def row_for_update(conn: asyncpg.Connection, subscription_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM notification_subscriptions WHERE id = $1 FOR UPDATE", subscription_id
    )
    if row is None:
        raise not_found(subscription_id)
    return row


async def owner_of(conn: asyncpg.Connection | asyncpg.Pool, subscription_id: int) -> int | None:
    row = await conn.fetchrow(
        "SELECT owner_id FROM notification_subscriptions WHERE id = $1", subscription_id
    )
    if row is None:
        raise not_found(subscription_id)
    return row["owner_id"]


async def update(
    conn: asyncpg.Connection,
    keyring: Keyring,
    subscription_id: int,
    *,
    fields: dict[str, Any],
    secret: str | None,
) -> Subscription:
    """Set ``fields``; ``secret`` None keeps the stored one, "" removes it."""
    values = dict(fields)
    if secret is not None:
        sealed = seal(keyring, subscription_id, secret) if secret else None
        values.update(
            has_secret=sealed is not None,
            key_id=sealed.key_id if sealed else None,
            nonce=sealed.nonce if sealed else None,
            ciphertext=sealed.ciphertext if sealed else None,
        )
    # Names come from code (the update struct's fields), never from the request's keys.
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, 2))
    try:
        row = await conn.fetchrow(
            f"""UPDATE notification_subscriptions SET {sets}{", " if sets else ""}updated_at = now()
                WHERE id = $1 RETURNING {_SHOWN}""",
            subscription_id,
            *values.values(),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a subscription named {fields.get('name')!r} already exists") from None
    if row is None:
        raise not_found(subscription_id)
    return _subscription(row)


async def delete(conn: asyncpg.Connection, subscription_id: int) -> str:
    name = await conn.fetchval(
        "DELETE FROM notification_subscriptions WHERE id = $1 RETURNING name", subscription_id
    )
    if name is None:
        raise not_found(subscription_id)
    return name
