"""Subscriptions' secrets: sealed to their row, opened only there, re-sealed by key rotation."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from knm.core import crypto
from knm.core.crypto import DecryptionError, Keyring
from knm.core.notifications import store


async def test_a_secret_is_sealed_to_its_row_and_opens_only_there(
    pool: asyncpg.Pool, subscribe: Any, keyring: Keyring
) -> None:
    first = await subscribe(secret="first-secret-1")
    second = await subscribe(secret="second-secret-2")
    rows = {r["id"]: r for r in await pool.fetch("SELECT * FROM notification_subscriptions")}
    assert store.unseal(keyring, rows[first.id]) == "first-secret-1"
    assert b"first-secret-1" not in bytes(rows[first.id]["ciphertext"])
    # The first row's ciphertext moved into the second's row does not open there.
    moved = {
        **dict(rows[second.id]),
        **{k: rows[first.id][k] for k in ("key_id", "nonce", "ciphertext")},
    }
    with pytest.raises(DecryptionError):
        store.unseal(keyring, moved)


async def test_a_subscription_without_a_secret_stores_none(
    pool: asyncpg.Pool, subscribe: Any, keyring: Keyring
) -> None:
    sub = await subscribe()
    assert sub.has_secret is False
    row = await pool.fetchrow("SELECT * FROM notification_subscriptions WHERE id = $1", sub.id)
    assert row["ciphertext"] is None and store.unseal(keyring, row) == ""


async def test_key_rotation_reseals_subscription_secrets_under_the_new_key(
    pool: asyncpg.Pool, subscribe: Any, keyring: Keyring
) -> None:
    sub = await subscribe(secret="rotate-me-3")
    rotated = Keyring("the-next-secret-key", previous=["notification-tests-secret"])
    report = await crypto.rotate(pool, rotated, columns=[store.SECRET])
    assert report.rotated == 1 and report.failed == []
    row = await pool.fetchrow("SELECT * FROM notification_subscriptions WHERE id = $1", sub.id)
    assert store.unseal(Keyring("the-next-secret-key"), row) == "rotate-me-3"
    assert store.SECRET in crypto.ENCRYPTED_COLUMNS
