"""The ``credentials`` table: plain columns for what the API shows, one sealed JSON for secrets.

The secrets of a row (password, private key, passphrase) are sealed together with AES-256-GCM
(``knm.core.crypto``) under associated data naming this table and the row's id; the row id is
drawn from its sequence before the insert so the first seal is already bound to it.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from knm.core.counters import row_read
from knm.core.credentials.models import Credential, DecryptedCredential, Secrets
from knm.core.crypto import EncryptedColumn, Keyring, Sealed, register_encrypted_column
from knm.core.errors import Conflict, NotFound

SECRETS = register_encrypted_column(EncryptedColumn(table="credentials", purpose="secrets"))

_SHOWN = (
    "id, name, description, username, auth_type, port, has_password, has_private_key, "
    "has_passphrase, allowed_roles, allowed_users, allowed_clusters, created_at, updated_at"
)
#: Who may use a credential and where (``use.py``): plain columns, null for no limit.
USE_FIELDS = ("allowed_roles", "allowed_users", "allowed_clusters")
_decode_secrets = msgspec.json.Decoder(Secrets).decode


def not_found(credential_id: int) -> NotFound:
    return NotFound(f"Credential ID {credential_id} not found")


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(**{k: row[k] for k in _SHOWN.split(", ")})


def seal(keyring: Keyring, credential_id: int, secrets: Secrets) -> Sealed:
    return SECRETS.seal(keyring, msgspec.json.encode(secrets).decode(), credential_id)


def unseal(keyring: Keyring, row: asyncpg.Record) -> Secrets:
    sealed = Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))
    return _decode_secrets(SECRETS.open(keyring, sealed, row["id"]))


def _flags(secrets: Secrets) -> tuple[bool, bool, bool]:
    return bool(secrets.password), bool(secrets.private_key), bool(secrets.passphrase)


async def insert(
    conn: asyncpg.Connection,
    keyring: Keyring,
    *,
    name: str,
    description: str,
    username: str,
    auth_type: str,
    port: int,
    secrets: Secrets,
    limits: dict[str, list[str] | None] | None = None,
) -> Credential:
    credential_id = await conn.fetchval(
        "SELECT nextval(pg_get_serial_sequence('credentials', 'id'))"
    )
    sealed = seal(keyring, credential_id, secrets)
    try:
        row = await conn.fetchrow(
            "INSERT INTO credentials (id, name, description, username, auth_type, port, "
            "has_password, has_private_key, has_passphrase, key_id, nonce, ciphertext, "
            "allowed_roles, allowed_users, allowed_clusters) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
            f"RETURNING {_SHOWN}",
            credential_id,
            name,
            description,
            username,
            auth_type,
            port,
            *_flags(secrets),
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
            *((limits or {}).get(field) for field in USE_FIELDS),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a credential named {name!r} already exists") from None
    return _credential(row)


async def get(conn: asyncpg.Connection | asyncpg.Pool, credential_id: int) -> Credential:
    row = await conn.fetchrow(f"SELECT {_SHOWN} FROM credentials WHERE id = $1", credential_id)
    if row is None:
        raise not_found(credential_id)
    return _credential(row)


async def list_credentials(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, offset: int
) -> tuple[int, list[Credential]]:
    total = await conn.fetchval("SELECT count(*) FROM credentials")
    rows = await conn.fetch(
        f"SELECT {_SHOWN} FROM credentials ORDER BY id LIMIT $1 OFFSET $2", limit, offset
    )
    return total, [_credential(r) for r in rows]


async def row_for_update(conn: asyncpg.Connection, credential_id: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM credentials WHERE id = $1 FOR UPDATE", credential_id)
    if row is None:
        raise not_found(credential_id)
    return row


async def update(
    conn: asyncpg.Connection,
    keyring: Keyring,
    credential_id: int,
    *,
    fields: dict[str, Any],
    secrets: Secrets | None,
) -> Credential:
    """Set the plain ``fields``; with ``secrets``, re-seal them too (else the sealed ones stay)."""
    values = dict(fields)
    if secrets is not None:
        sealed = seal(keyring, credential_id, secrets)
        has_password, has_private_key, has_passphrase = _flags(secrets)
        values.update(
            has_password=has_password,
            has_private_key=has_private_key,
            has_passphrase=has_passphrase,
            key_id=sealed.key_id,
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
        )
    # Column names come from this module's own keys, never from the request.
    assignments = [f"{column} = ${n}" for n, column in enumerate(values, start=2)]
    assignments.append("updated_at = now()")
    try:
        row = await conn.fetchrow(
            f"UPDATE credentials SET {', '.join(assignments)} WHERE id = $1 RETURNING {_SHOWN}",
            credential_id,
            *values.values(),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a credential named {fields.get('name')!r} already exists") from None
    if row is None:
        raise not_found(credential_id)
    return _credential(row)


async def in_use(conn: asyncpg.Connection, credential_id: int) -> int:
    """How many pending or running tasks use the credential."""
    # The tasks engine owns the ``tasks`` table (``credential_id bigint``, ``status text``); a
    # build without it has no task that could use a credential.
    if not await conn.fetchval("SELECT to_regclass('tasks') IS NOT NULL"):
        return 0
    return await conn.fetchval(
        "SELECT count(*) FROM tasks WHERE credential_id = $1 AND status IN ('pending', 'running')",
        credential_id,
    )


async def delete(conn: asyncpg.Connection, credential_id: int) -> str:
    """Delete the credential unless a pending or running task uses it; returns its name."""
    async with conn.transaction():
        # The row lock makes a task being created with this credential (which takes a share
        # lock on it) either finish first, and be counted below, or wait for the delete.
        row = await conn.fetchrow(
            "SELECT name FROM credentials WHERE id = $1 FOR UPDATE", credential_id
        )
        if row is None:
            raise not_found(credential_id)
        busy = await in_use(conn, credential_id)
        if busy:
            raise Conflict(
                f"credential {row['name']!r} is used by {busy} pending or running task(s); "
                "delete it once they finish"
            )
        try:
            async with conn.transaction():
                await conn.execute("DELETE FROM credentials WHERE id = $1", credential_id)
        except asyncpg.ForeignKeyViolationError:
            clusters = await conn.fetch(
                "SELECT name FROM clusters WHERE default_credential_id = $1 ORDER BY name",
                credential_id,
            )
            names = ", ".join(r["name"] for r in clusters) or "a cluster"
            raise Conflict(
                f"credential {row['name']!r} is the default_credential_id of {names}; "
                "change that first"
            ) from None
    return row["name"]


async def load(
    conn: asyncpg.Connection | asyncpg.Pool,
    keyring: Keyring,
    credential_id: int,
    *,
    lock: bool = False,
) -> DecryptedCredential:
    row_read(f"credentials:{credential_id}")
    lock_clause = " FOR KEY SHARE" if lock else ""
    row = await conn.fetchrow(
        f"SELECT * FROM credentials WHERE id = $1{lock_clause}", credential_id
    )
    if row is None:
        raise not_found(credential_id)
    secrets = unseal(keyring, row)
    return DecryptedCredential(
        id=row["id"],
        name=row["name"],
        username=row["username"],
        auth_type=row["auth_type"],
        port=row["port"],
        password=secrets.password or None,
        private_key=secrets.private_key or None,
        passphrase=secrets.passphrase or None,
        allowed_roles=row["allowed_roles"],
        allowed_users=row["allowed_users"],
        allowed_clusters=row["allowed_clusters"],
    )
