"""Secrets at rest: the keyring, associated data, the rotation loop and the secret fingerprint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import asyncpg
import pytest

from knm.core import db, keys
from knm.core.config import KnmConfig
from knm.core.crypto import (
    ENCRYPTED_COLUMNS,
    DecryptionError,
    EncryptedColumn,
    Keyring,
    Sealed,
    key_id_of,
    keyring_of,
    register_encrypted_column,
    rotate,
)

OLD, NEW = "old-secret-for-crypto-tests", "new-secret-for-crypto-tests"
AAD = b"knm:test:purpose:1"


def test_a_sealed_value_opens_with_the_same_keyring_and_associated_data() -> None:
    ring = Keyring(NEW)
    sealed = ring.encrypt("p@ss word ünïcode", AAD)
    assert sealed.key_id == key_id_of(NEW) == keys.fingerprint(NEW)
    assert len(sealed.nonce) == 12
    assert b"p@ss" not in sealed.ciphertext
    assert ring.decrypt(sealed, AAD) == "p@ss word ünïcode"


def test_each_seal_uses_a_fresh_nonce() -> None:
    ring = Keyring(NEW)
    first, second = ring.encrypt("same", AAD), ring.encrypt("same", AAD)
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext


def test_other_associated_data_does_not_open_it() -> None:
    ring = Keyring(NEW)
    sealed = ring.encrypt("secret", AAD)
    with pytest.raises(DecryptionError, match="copied from another row"):
        ring.decrypt(sealed, b"knm:test:purpose:2")


def test_a_tampered_ciphertext_does_not_open() -> None:
    ring = Keyring(NEW)
    sealed = ring.encrypt("secret", AAD)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(DecryptionError):
        ring.decrypt(Sealed(sealed.key_id, sealed.nonce, flipped), AAD)


def test_previous_secrets_open_what_they_sealed_and_the_current_one_seals() -> None:
    old_sealed = Keyring(OLD).encrypt("from before", AAD)
    ring = Keyring(NEW, [OLD])
    assert ring.decrypt(old_sealed, AAD) == "from before"
    assert ring.encrypt("now", AAD).key_id == key_id_of(NEW)
    assert ring.key_ids == [key_id_of(NEW), key_id_of(OLD)]


def test_an_unknown_key_id_says_which_key_and_how_to_fix_it() -> None:
    sealed = Keyring(OLD).encrypt("plaintext-xyz", AAD)
    with pytest.raises(DecryptionError) as caught:
        Keyring(NEW).decrypt(sealed, AAD)
    assert key_id_of(OLD) in caught.value.error
    assert "KNM_PREVIOUS_SECRET_KEYS" in caught.value.error
    assert "plaintext-xyz" not in caught.value.error and OLD not in caught.value.error


def test_the_keyring_and_sealed_values_do_not_show_key_material() -> None:
    ring = Keyring(NEW, [OLD])
    sealed = ring.encrypt("plain", AAD)
    assert NEW not in repr(ring) and OLD not in repr(ring)
    assert "plain" not in repr(sealed) and sealed.ciphertext.hex() not in repr(sealed)


def test_an_empty_current_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Keyring("")


def test_keyring_of_is_built_once_from_the_runtime_secret_and_previous_ones() -> None:
    knm = SimpleNamespace(_secret=NEW, config=KnmConfig(previous_secret_keys=[OLD]))
    ring = keyring_of(knm)
    assert keyring_of(knm) is ring
    assert ring.current_id == key_id_of(NEW) and key_id_of(OLD) in ring.key_ids
    knm._secret = "yet-another-secret"
    assert keyring_of(knm).current_id == key_id_of("yet-another-secret")


def test_associated_data_names_table_purpose_and_row() -> None:
    a = EncryptedColumn(table="t", purpose="p")
    assert a.aad(1) != a.aad(2)
    assert a.aad(1) != EncryptedColumn(table="t", purpose="q").aad(1)
    assert a.aad(1) != EncryptedColumn(table="u", purpose="p").aad(1)


def test_registering_a_column_twice_keeps_one_entry() -> None:
    column = EncryptedColumn(table="registry_test", purpose="p")
    register_encrypted_column(column)
    register_encrypted_column(column)
    assert ENCRYPTED_COLUMNS.count(column) == 1
    ENCRYPTED_COLUMNS.remove(column)


# --- with a database -------------------------------------------------------------------------

VAULT = EncryptedColumn(
    table="crypto_vault",
    purpose="blob",
    key_id_column="kid",
    nonce_column="n",
    ciphertext_column="c",
)


@pytest.fixture(scope="module")
async def pool(knm_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(knm_database_url, min_size=1, max_size=4)
    await pool.execute(
        "CREATE TABLE crypto_vault (id bigserial PRIMARY KEY, kid text, n bytea, c bytea)"
    )
    yield pool
    await pool.close()


async def _store(pool: asyncpg.Pool, ring: Keyring, plaintext: str | None) -> int:
    row_id = await pool.fetchval("INSERT INTO crypto_vault DEFAULT VALUES RETURNING id")
    if plaintext is not None:
        sealed = VAULT.seal(ring, plaintext, row_id)
        await pool.execute(
            "UPDATE crypto_vault SET kid = $2, n = $3, c = $4 WHERE id = $1",
            row_id,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
    return row_id


async def _open(pool: asyncpg.Pool, ring: Keyring, row_id: int) -> str:
    row = await pool.fetchrow("SELECT kid, n, c FROM crypto_vault WHERE id = $1", row_id)
    return VAULT.open(ring, Sealed(row["kid"], bytes(row["n"]), bytes(row["c"])), row_id)


async def test_rotation_reseals_every_row_under_the_current_key(pool: asyncpg.Pool) -> None:
    old_ids = [await _store(pool, Keyring(OLD), f"value {n}") for n in range(3)]
    new_id = await _store(pool, Keyring(NEW), "already new")
    empty_id = await _store(pool, Keyring(OLD), None)
    report = await rotate(pool, Keyring(NEW, [OLD]), [VAULT])
    assert (report.rotated, report.already_current, report.failed) == (3, 1, [])
    only_new = Keyring(NEW)
    assert [await _open(pool, only_new, i) for i in old_ids] == ["value 0", "value 1", "value 2"]
    assert await _open(pool, only_new, new_id) == "already new"
    assert await pool.fetchval("SELECT c FROM crypto_vault WHERE id = $1", empty_id) is None
    again = await rotate(pool, Keyring(NEW, [OLD]), [VAULT])
    assert (again.rotated, again.already_current) == (0, 4)
    await pool.execute("DELETE FROM crypto_vault")


async def test_rotation_reports_rows_it_cannot_open_and_rotates_the_rest(
    pool: asyncpg.Pool,
) -> None:
    lost = await _store(pool, Keyring("a-secret-nobody-kept"), "lost")
    fine = await _store(pool, Keyring(OLD), "fine")
    report = await rotate(pool, Keyring(NEW, [OLD]), [VAULT])
    assert report.rotated == 1
    assert len(report.failed) == 1 and report.failed[0].startswith(f"crypto_vault {lost}:")
    assert "KNM_PREVIOUS_SECRET_KEYS" in report.failed[0]
    assert await _open(pool, Keyring(NEW), fine) == "fine"
    await pool.execute("DELETE FROM crypto_vault")


async def test_rotation_skips_registered_tables_that_do_not_exist(pool: asyncpg.Pool) -> None:
    missing = EncryptedColumn(table="no_such_table", purpose="p")
    assert (await rotate(pool, Keyring(NEW), [missing])).rotated == 0


async def test_the_fingerprint_moves_to_a_new_secret_only_when_the_old_one_is_previous(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM knm_settings WHERE key = 'secret_fingerprint'")
        await keys.check_fingerprint(conn, OLD)
        with pytest.raises(keys.WrongSecret, match="KNM_PREVIOUS_SECRET_KEYS"):
            await keys.check_fingerprint(conn, NEW)
        await keys.check_fingerprint(conn, NEW, [OLD])
        stored = await conn.fetchval(
            "SELECT value #>> '{}' FROM knm_settings WHERE key = 'secret_fingerprint'"
        )
        assert stored == keys.fingerprint(NEW)
        await keys.check_fingerprint(conn, NEW, [OLD])
        with pytest.raises(keys.WrongSecret):
            await keys.check_fingerprint(conn, OLD)
