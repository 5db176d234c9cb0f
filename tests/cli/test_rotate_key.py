"""``knm admin rotate-key``: every stored secret re-sealed under a new key, by the procedure."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from knm.cli import rotate_key
from knm.core import db, keys
from knm.core.config import KnmConfig
from knm.core.credentials import store
from knm.core.credentials.models import Secrets
from knm.core.crypto import DecryptionError, Keyring, key_id_of
from knm.testing.database import TEST_SECRET, data_dir_for_tests

OLD = TEST_SECRET
NEW = "the-new-secret-after-rotation"
NEWER = "an-even-newer-secret"


@pytest.fixture
async def pool(knm_fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Each test's own database, set up under ``OLD`` (no test relies on another's rotation)."""
    pool = await db.connect(knm_fresh_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def knm_env(monkeypatch: pytest.MonkeyPatch, knm_fresh_database_url: str) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("KNM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KNM_DATABASE_URL", knm_fresh_database_url)
    monkeypatch.setenv("KNM_DATA_DIR", data_dir_for_tests())
    monkeypatch.setenv("KNM_LOAD_ENTRYPOINTS", "false")
    monkeypatch.setenv("KNM_DB_POOL_MIN", "1")
    monkeypatch.setenv("KNM_DB_POOL_MAX", "4")
    return monkeypatch


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="knm")
    admin = top.add_subparsers(dest="command").add_parser("admin")
    rotate_key.register(admin.add_subparsers(dest="admin_command"))
    return top


async def run_cli(*argv: str) -> int:
    args = parser().parse_args(["admin", "rotate-key", *argv])
    # The command runs its own event loop, as it does from a terminal.
    return await asyncio.to_thread(args.func, args)


def secret_file(tmp_path: Path, value: str) -> str:
    path = tmp_path / "new-secret"
    path.write_text(value + "\n")
    return str(path)


async def add_credential(pool: asyncpg.Pool, keyring: Keyring, name: str, password: str) -> int:
    async with pool.acquire() as conn:
        created = await store.insert(
            conn,
            keyring,
            name=name,
            description="",
            username="root",
            auth_type="password",
            port=22,
            secrets=Secrets(password=password),
        )
    return created.id


async def restart_a_server(pool: asyncpg.Pool, current: str, previous: list[str]) -> None:
    """What a process started with ``current`` and ``previous`` secrets does to the fingerprint."""
    async with pool.acquire() as conn:
        await keys.check_fingerprint(conn, current, previous)


async def rotated_to(pool: asyncpg.Pool, secret: str) -> None:
    """The deployment as it is once its processes restarted with ``secret`` (``OLD`` as the
    previous one), before the command ran."""
    await restart_a_server(pool, secret, [OLD])


async def key_ids(pool: asyncpg.Pool) -> set[str]:
    return {r["key_id"] for r in await pool.fetch("SELECT key_id FROM credentials")}


def test_rotate_key_is_an_admin_command_that_takes_no_secret_in_argv() -> None:
    args = parser().parse_args(["admin", "rotate-key", "--new-secret-file", "f"])
    assert args.func.__wrapped__ is rotate_key.rotate_key and args.new_secret_file == "f"
    with pytest.raises(SystemExit):
        parser().parse_args(["admin", "rotate-key", "some-secret"])


async def test_the_documented_procedure_reseals_every_credential_under_the_new_key(
    pool: asyncpg.Pool,
    knm_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = [await add_credential(pool, Keyring(OLD), f"rot-{n}", f"password-{n}") for n in range(3)]
    only_new = Keyring(NEW)
    with pytest.raises(DecryptionError) as caught:
        await store.load(pool, only_new, ids[0])
    assert key_id_of(OLD) in caught.value.error and "KNM_PREVIOUS_SECRET_KEYS" in caught.value.error

    # 1. Every process restarts with the new secret, the old one as previous.
    await restart_a_server(pool, NEW, [OLD])
    assert (await store.load(pool, Keyring(NEW, [OLD]), ids[1])).password == "password-1"
    # 2. The command re-seals everything.
    knm_env.setenv("KNM_SECRET_KEY", NEW)
    knm_env.setenv("KNM_PREVIOUS_SECRET_KEYS", OLD)
    assert await run_cli("--new-secret-file", secret_file(tmp_path, NEW)) == 0
    assert "re-encrypted 3 secret(s)" in capsys.readouterr().out
    # 3. The old secret can go.
    assert await key_ids(pool) == {key_id_of(NEW)}
    assert [(await store.load(pool, only_new, i)).password for i in ids] == [
        "password-0",
        "password-1",
        "password-2",
    ]
    with pytest.raises(DecryptionError, match=key_id_of(NEW)):
        await store.load(pool, Keyring(OLD), ids[0])
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'secret.rotate'")
    assert entry["target"] == key_id_of(NEW) and entry["detail"] == {"rotated": 3, "failed": 0}


async def test_a_second_run_finds_nothing_left_to_do(
    pool: asyncpg.Pool,
    knm_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await add_credential(pool, Keyring(NEW), "already-new", "resealed")
    await rotated_to(pool, NEW)
    knm_env.setenv("KNM_SECRET_KEY", NEW)
    assert await run_cli("--new-secret-file", secret_file(tmp_path, NEW)) == 0
    assert "re-encrypted 0 secret(s)" in capsys.readouterr().out


async def test_the_command_also_works_from_the_old_environment_with_the_secret_on_stdin(
    pool: asyncpg.Pool, knm_env: pytest.MonkeyPatch
) -> None:
    cid = await add_credential(pool, Keyring(NEW), "stdin-rot", "via-stdin")
    await rotated_to(pool, NEW)
    await restart_a_server(pool, NEWER, [NEW])
    knm_env.setenv("KNM_SECRET_KEY", NEW)
    knm_env.setattr("sys.stdin", io.StringIO(NEWER + "\n"))
    assert await run_cli() == 0
    assert await key_ids(pool) == {key_id_of(NEWER)}
    assert (await store.load(pool, Keyring(NEWER), cid)).password == "via-stdin"


async def test_a_secret_under_a_key_nobody_configured_fails_the_command_clearly(
    pool: asyncpg.Pool,
    knm_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lost = await add_credential(pool, Keyring("forgotten-secret"), "lost", "gone")
    await rotated_to(pool, NEWER)
    knm_env.setenv("KNM_SECRET_KEY", NEWER)
    assert await run_cli("--new-secret-file", secret_file(tmp_path, NEWER)) == 1
    err = capsys.readouterr().err
    assert f"credentials {lost}:" in err and key_id_of("forgotten-secret") in err
    assert "KNM_PREVIOUS_SECRET_KEYS" in err and "gone" not in err


@pytest.mark.parametrize("value", ["", "   "])
async def test_an_empty_new_secret_is_refused_before_anything_changes(
    pool: asyncpg.Pool,
    knm_env: pytest.MonkeyPatch,
    tmp_path: Path,
    value: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = await key_ids(pool)
    knm_env.setenv("KNM_SECRET_KEY", NEWER)
    assert await run_cli("--new-secret-file", secret_file(tmp_path, value)) == 2
    assert "empty" in capsys.readouterr().err
    assert await key_ids(pool) == before


async def test_a_missing_secret_file_is_an_error_not_a_traceback(
    knm_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    knm_env.setenv("KNM_SECRET_KEY", NEWER)
    assert await run_cli("--new-secret-file", str(tmp_path / "absent")) == 2
    assert "Traceback" not in capsys.readouterr().err


async def test_a_stopped_deployment_rotates_without_restarting_servers_first(
    pool: asyncpg.Pool, knm_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    final = "the-final-secret"
    cid = await add_credential(pool, Keyring(NEWER), "stopped", "offline")
    await rotated_to(pool, NEWER)
    knm_env.setenv("KNM_SECRET_KEY", NEWER)
    assert await run_cli("--new-secret-file", secret_file(tmp_path, final)) == 0
    assert (await store.load(pool, Keyring(final), cid)).password == "offline"
    stored = await pool.fetchval(
        "SELECT value #>> '{}' FROM knm_settings WHERE key = 'secret_fingerprint'"
    )
    assert stored == keys.fingerprint(final)


# --- settings and the data dir's secret file -------------------------------------------------


def test_the_secret_in_use_and_the_previous_ones_all_become_previous() -> None:
    config = KnmConfig(
        database_url="postgresql://x/y", secret_key="b", previous_secret_keys=["a", "n"]
    )
    rotated, secret_path = rotate_key.rotation_config(config, "n")
    assert rotated.secret_key == "n" and rotated.previous_secret_keys == ["b", "a"]
    assert secret_path is None


def test_an_external_database_without_the_secret_in_use_is_refused() -> None:
    with pytest.raises(rotate_key.RotationError, match="KNM_SECRET_KEY is required"):
        rotate_key.rotation_config(KnmConfig(database_url="postgresql://x/y"), "n")


def test_with_the_embedded_database_the_data_dir_secret_is_replaced_and_kept_as_previous(
    tmp_path: Path,
) -> None:
    old = keys.load_or_create_secret(tmp_path)
    rotated, path = rotate_key.rotation_config(KnmConfig(data_dir=str(tmp_path)), "brand-new")
    assert rotated.secret_key == "brand-new" and rotated.previous_secret_keys == [old]
    assert path == tmp_path / keys.SECRET_FILE
    rotate_key._replace_secret_file(path, "brand-new")
    assert keys.load_or_create_secret(tmp_path) == "brand-new"
    previous = tmp_path / f"{keys.SECRET_FILE}.previous"
    assert previous.read_text().strip() == old
    for written in (path, previous):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_the_new_secret_is_read_from_a_file_or_stdin(tmp_path: Path) -> None:
    assert rotate_key.read_new_secret(secret_file(tmp_path, " s1 ")) == "s1"
    assert rotate_key.read_new_secret(None, io.StringIO("s2\nignored\n")) == "s2"
    assert rotate_key.read_new_secret("-", io.StringIO("s3\n")) == "s3"
