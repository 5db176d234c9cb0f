"""The asyncpg pool and the migrations of core and of every plugin.

Migrations are numbered ``.sql`` files (``0001_users.sql``) in a folder per namespace (``core``,
then one per plugin through the ``knm_migrations`` hook). They are applied in order, each in its
own transaction, under a PostgreSQL advisory lock so that replicas starting together do not race.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

log = logging.getLogger("knm.db")

CORE_MIGRATIONS = Path(__file__).with_name("migrations")
#: Any constant works, as long as every knm process uses the same one.
MIGRATION_LOCK_KEY = 0x6B6E6D  # "knm"
#: What a query meets while the database is down or restarting (not a query's own error).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)
_MIGRATION_FILE = re.compile(r"^(\d{4})_[\w-]+\.sql$")


class MigrationSet(msgspec.Struct, frozen=True):
    """A plugin's migrations: a namespace and the folder holding its numbered ``.sql`` files."""

    namespace: str
    path: Path


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INFINITY = 0x7FFFFFFFFFFFFFFF


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + msgspec.json.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


def _encode_timestamptz(value: datetime) -> tuple[int]:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _PG_EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds,)


def _decode_timestamptz(value: tuple[int]) -> datetime:
    # The API speaks whole seconds in UTC; truncating here keeps every layer above consistent.
    micros = value[0]
    if micros >= _INFINITY:
        return datetime.max.replace(tzinfo=UTC)
    if micros <= -_INFINITY:
        return datetime.min.replace(tzinfo=UTC)
    return _PG_EPOCH + timedelta(seconds=micros // 1_000_000)


async def init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that COPY (which speaks only binary) works with these types too.
    await conn.set_type_codec(
        "timestamptz",
        encoder=_encode_timestamptz,
        decoder=_decode_timestamptz,
        schema="pg_catalog",
        format="tuple",
    )
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json",
        encoder=msgspec.json.encode,
        decoder=msgspec.json.decode,
        schema="pg_catalog",
        format="binary",
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset (RESET ALL, UNLISTEN, advisory unlock …) costs ~80 µs per release;
    # knm keeps no session state on pooled connections (LISTEN has connections of its own, and
    # advisory locks on pooled connections are transaction-scoped), and asyncpg still rolls back
    # an open transaction before release.
    return None


async def connect(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        reset=_no_reset,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        command_timeout=60,
        server_settings={"timezone": "UTC", "application_name": "knm"},
    )
    assert pool is not None
    return pool


async def connect_one(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        url, server_settings={"timezone": "UTC", "application_name": "knm"}
    )
    await init_connection(conn)
    return conn


def _files(migration_set: MigrationSet) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(Path(migration_set.path).iterdir()):
        match = _MIGRATION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return found


async def migrate(conn: asyncpg.Connection, sets: Iterable[MigrationSet]) -> list[str]:
    """Apply every pending migration; return the names of those applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS knm_migrations (
                   namespace text NOT NULL,
                   version integer NOT NULL,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (namespace, version))"""
        )
        for migration_set in sets:
            done = {
                r["version"]
                for r in await conn.fetch(
                    "SELECT version FROM knm_migrations WHERE namespace = $1",
                    migration_set.namespace,
                )
            }
            for version, path in _files(migration_set):
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "INSERT INTO knm_migrations (namespace, version, name) VALUES ($1, $2, $3)",
                        migration_set.namespace,
                        version,
                        path.name,
                    )
                applied.append(f"{migration_set.namespace}/{path.name}")
                log.info("applied migration %s/%s", migration_set.namespace, path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied


async def pending_migrations(
    conn: asyncpg.Connection, sets: Iterable[MigrationSet], *, timeout: float | None = None
) -> list[str]:
    """The declared migrations (``namespace/file``) not applied yet; reads, never writes."""
    try:
        rows = await conn.fetch("SELECT namespace, version FROM knm_migrations", timeout=timeout)
    except asyncpg.UndefinedTableError:
        rows = []
    applied = {(row["namespace"], row["version"]) for row in rows}
    return [
        f"{migration_set.namespace}/{path.name}"
        for migration_set in sets
        for version, path in _files(migration_set)
        if (migration_set.namespace, version) not in applied
    ]
