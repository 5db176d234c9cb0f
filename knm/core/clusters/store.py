"""The ``clusters`` table, and sealing the secret part of a provider's config.

A row keeps the provider's config in two places: ``config`` (jsonb) holds the fields that may be
shown; the ``secrets_*`` columns hold the ``secret_fields`` as one sealed JSON document
(``knm.core.crypto``, bound to the cluster's id, covered by key rotation). Providers without
secrets leave them null.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from knm.core.clusters.provider import Bastion, Cluster, ClusterProvider
from knm.core.counters import row_read
from knm.core.crypto import EncryptedColumn, Sealed, keyring_of, register_encrypted_column
from knm.core.errors import Conflict, KnmError, NotFound

if TYPE_CHECKING:
    from knm.core.state import Knm


class ClusterRow(msgspec.Struct, kw_only=True):
    id: int
    name: str
    kind: str
    description: str
    config: dict[str, Any]
    secrets: Sealed | None
    bastion: dict[str, Any] | None
    default_credential_id: int | None = None
    #: Set by the database.
    created_at: datetime | None = None
    updated_at: datetime | None = None


class UnreadableConfig(KnmError):
    message = "cluster configuration unreadable"


SECRETS = register_encrypted_column(
    EncryptedColumn(
        table="clusters",
        purpose="config-secrets",
        key_id_column="secrets_key_id",
        nonce_column="secrets_nonce",
        ciphertext_column="secrets_ciphertext",
    )
)
_COLUMNS = (
    "id, name, kind, description, config, secrets_key_id, secrets_nonce, secrets_ciphertext, "
    "bastion, default_credential_id, created_at, updated_at"
)


def _row(record: asyncpg.Record) -> ClusterRow:
    values = dict(record)
    key_id, nonce, ciphertext = (
        values.pop("secrets_key_id"),
        values.pop("secrets_nonce"),
        values.pop("secrets_ciphertext"),
    )
    secrets = None if ciphertext is None else Sealed(key_id, bytes(nonce), bytes(ciphertext))
    return ClusterRow(**values, secrets=secrets)


def _sealed_parts(sealed: Sealed | None) -> tuple[str | None, bytes | None, bytes | None]:
    if sealed is None:
        return None, None, None
    return sealed.key_id, sealed.nonce, sealed.ciphertext


def not_found(name: str) -> NotFound:
    return NotFound(f"Cluster {name} not found")


async def get_row(conn: Any, name: str, *, lock: bool = False) -> ClusterRow:
    row_read(f"clusters:{name}")
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM clusters WHERE name = $1{' FOR UPDATE' if lock else ''}", name
    )
    if record is None:
        raise not_found(name)
    return _row(record)


async def default_credential_id(conn: Any, name: str) -> int | None:
    """The cluster's ``default_credential_id`` (None also when there is no such cluster)."""
    return await conn.fetchval("SELECT default_credential_id FROM clusters WHERE name = $1", name)


async def list_rows(conn: Any, limit: int, offset: int) -> tuple[int, list[ClusterRow]]:
    total = await conn.fetchval("SELECT count(*) FROM clusters")
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM clusters ORDER BY name LIMIT $1 OFFSET $2", limit, offset
    )
    return total, [_row(r) for r in records]


async def next_id(conn: Any) -> int:
    # Known before the insert, so the secrets can be sealed to the row they belong to.
    return await conn.fetchval("SELECT nextval(pg_get_serial_sequence('clusters', 'id'))")


async def insert(conn: Any, row: ClusterRow) -> ClusterRow:
    try:
        record = await conn.fetchrow(
            "INSERT INTO clusters (id, name, kind, description, config, secrets_key_id, "
            "secrets_nonce, secrets_ciphertext, bastion, default_credential_id) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}",
            row.id, row.name, row.kind, row.description, row.config,
            *_sealed_parts(row.secrets), row.bastion, row.default_credential_id,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise Conflict(f"cluster {row.name!r} already exists") from None
    return _row(record)


async def update(conn: Any, row: ClusterRow) -> ClusterRow:
    try:
        record = await conn.fetchrow(
            "UPDATE clusters SET name = $2, description = $3, config = $4, secrets_key_id = $5, "
            "secrets_nonce = $6, secrets_ciphertext = $7, bastion = $8, "
            "default_credential_id = $9, updated_at = now() "
            f"WHERE id = $1 RETURNING {_COLUMNS}",
            row.id, row.name, row.description, row.config,
            *_sealed_parts(row.secrets), row.bastion, row.default_credential_id,
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise Conflict(f"cluster {row.name!r} already exists") from None
    if record is None:
        raise not_found(row.name)
    return _row(record)


async def delete(conn: Any, name: str) -> None:
    if await conn.fetchval("DELETE FROM clusters WHERE name = $1 RETURNING id", name) is None:
        raise not_found(name)


async def credential_exists(conn: Any, credential_id: int) -> bool:
    """Whether the credential exists; True when no credential store is installed to ask."""
    if await conn.fetchval("SELECT to_regclass('credentials')") is None:
        return True
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE id = $1)", credential_id
        )
    )


# --- secrets -----------------------------------------------------------------------------------


def seal(knm: Knm, cluster_id: int, values: dict[str, Any]) -> Sealed | None:
    """The sealed form of the secret fields ``values`` (None when there are none)."""
    if not values:
        return None
    return SECRETS.seal(keyring_of(knm), msgspec.json.encode(values).decode(), cluster_id)


def unseal(knm: Knm, cluster_id: int, sealed: Sealed | None) -> dict[str, Any]:
    if sealed is None:
        return {}
    return msgspec.json.decode(SECRETS.open(keyring_of(knm), sealed, cluster_id))


def split_config(provider: ClusterProvider, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config`` as builtins, divided into (shown, secret) fields."""
    values: dict[str, Any] = msgspec.to_builtins(config)
    secret = {name: values.pop(name) for name in provider.secret_fields if name in values}
    return values, secret


def full_config(knm: Knm, provider: ClusterProvider, row: ClusterRow) -> Any:
    """The row's config decoded into the provider's ``config_type``, secrets included."""
    values = {**row.config, **unseal(knm, row.id, row.secrets)}
    try:
        return msgspec.convert(values, provider.config_type)
    except msgspec.ValidationError as exc:
        # Stored by another version of the provider's plugin; nothing the caller can fix.
        raise UnreadableConfig(
            f"cluster {row.name} has a {row.kind} configuration this version cannot read: {exc}"
        ) from None


def to_cluster(knm: Knm, provider: ClusterProvider, row: ClusterRow) -> Cluster:
    return Cluster(
        id=row.id,
        name=row.name,
        kind=row.kind,
        description=row.description,
        config=full_config(knm, provider, row),
        bastion=None if row.bastion is None else msgspec.convert(row.bastion, Bastion),
        default_credential_id=row.default_credential_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get_cluster(knm: Knm, name: str, *, conn: Any = None) -> Cluster:
    """The cluster ``name`` with its config decoded (404 when unknown, 422 when no loaded plugin
    serves its kind)."""
    row = await get_row(conn or knm.pool, name)
    return to_cluster(knm, knm.registry.provider_for(row.kind), row)
