"""Migrations: numbered files per namespace, applied once, safe when replicas start together."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg

from knm.core import db
from knm.testing.database import drop_database, with_database


async def test_concurrent_migrations_apply_each_file_once(
    knm_server_url: str, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "0001_widgets.sql").write_text("CREATE TABLE widgets (id int);")
    (plugin / "0002_more.sql").write_text("ALTER TABLE widgets ADD COLUMN name text;")
    (plugin / "notes.txt").write_text("not a migration")
    name = f"knm_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(knm_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(knm_server_url, name)
    sets = [db.MigrationSet("core", db.CORE_MIGRATIONS), db.MigrationSet("widgets", plugin)]
    try:
        conns = [await db.connect_one(url) for _ in range(3)]
        results = await asyncio.gather(*(db.migrate(c, sets) for c in conns))
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(set(applied))
        assert "widgets/0002_more.sql" in applied
        assert (
            await conns[0].fetchval(
                "SELECT count(*) FROM knm_migrations WHERE namespace = 'widgets'"
            )
            == 2
        )
        assert await db.migrate(conns[0], sets) == []
        for conn in conns:
            await conn.close()
    finally:
        await drop_database(knm_server_url, name)


async def test_timestamps_come_back_in_utc_whole_seconds(knm_database_url: str) -> None:
    conn = await db.connect_one(knm_database_url)
    try:
        value = await conn.fetchval("SELECT '2025-10-29 16:30:00.789+02'::timestamptz")
        assert value.isoformat() == "2025-10-29T14:30:00+00:00"
        assert await conn.fetchval("SELECT $1::jsonb", {"a": [1, "b"]}) == {"a": [1, "b"]}
    finally:
        await conn.close()
