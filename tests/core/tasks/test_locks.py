"""Node locks moved from the k8s plugin into the core; the table stays where installs have it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import asyncpg

from knm.core import db
from knm.testing.database import drop_database, with_database

K8S_MIGRATIONS = Path(db.__file__).parent.parent / "plugins" / "k8s" / "migrations"
#: The k8s plugin's migration as existing installs applied it (before the core owned locks).
ORIGINAL_K8S = """CREATE TABLE k8s_node_locks (
    cluster_name text NOT NULL,
    node text NOT NULL,
    holder text NOT NULL,
    task_id text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_name, node)
);
CREATE INDEX k8s_node_locks_holder ON k8s_node_locks (holder);
"""


async def test_the_core_locks_migration_is_a_no_op_on_an_install_the_k8s_one_reached_first(
    knm_server_url: str, tmp_path: Path
) -> None:
    before = tmp_path / "core-before"
    before.mkdir()
    for path in sorted(db.CORE_MIGRATIONS.glob("*.sql")):
        if path.name < "0007":
            shutil.copy(path, before / path.name)
    old_k8s = tmp_path / "k8s-before"
    old_k8s.mkdir()
    (old_k8s / "0001_node_locks.sql").write_text(ORIGINAL_K8S)
    name = f"knm_locks_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(knm_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        conn = await db.connect_one(with_database(knm_server_url, name))
        try:
            old = [db.MigrationSet("core", before), db.MigrationSet("k8s", old_k8s)]
            assert "k8s/0001_node_locks.sql" in await db.migrate(conn, old)
            await conn.execute(
                "INSERT INTO k8s_node_locks (cluster_name, node, holder, task_id) "
                "VALUES ('lab', 'n1', 'wf-1', 'wf-1')"
            )
            now = [
                db.MigrationSet("core", db.CORE_MIGRATIONS),
                db.MigrationSet("k8s", K8S_MIGRATIONS),
            ]
            applied = await db.migrate(conn, now)
            # Later core migrations follow; the k8s plugin's has nothing left to do.
            assert applied[0] == "core/0007_node_locks.sql"
            assert not any(name.startswith("k8s/") for name in applied)
            assert await conn.fetchval("SELECT holder FROM k8s_node_locks") == "wf-1"
        finally:
            await conn.close()
    finally:
        await drop_database(knm_server_url, name)


async def test_a_fresh_install_gets_the_locks_table_from_the_core_and_the_k8s_migration_passes(
    knm_server_url: str,
) -> None:
    name = f"knm_locks_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(knm_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        conn = await db.connect_one(with_database(knm_server_url, name))
        try:
            sets = [db.MigrationSet("core", db.CORE_MIGRATIONS)]
            assert "core/0007_node_locks.sql" in await db.migrate(conn, sets)
            assert await conn.fetchval("SELECT to_regclass('k8s_node_locks') IS NOT NULL")
            k8s = [db.MigrationSet("k8s", K8S_MIGRATIONS)]
            assert await db.migrate(conn, k8s) == ["k8s/0001_node_locks.sql"]
        finally:
            await conn.close()
    finally:
        await drop_database(knm_server_url, name)
