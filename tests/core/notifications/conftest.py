"""Notification tests: a database of each test's own, subscriptions made through the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from knm.core import db
from knm.core.crypto import Keyring
from knm.core.notifications import store
from knm.wire.notifications import Subscription

KEYRING = Keyring("notification-tests-secret")


@pytest.fixture
async def pool(knm_fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(knm_fresh_database_url, min_size=1, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def keyring() -> Keyring:
    return KEYRING


Subscribe = Callable[..., Awaitable[Subscription]]


@pytest.fixture
def subscribe(pool: asyncpg.Pool) -> Subscribe:
    """A subscription stored as the API stores one (``target_type`` webhook unless told)."""
    made = 0

    async def make(**fields: Any) -> Subscription:
        nonlocal made
        made += 1
        values: dict[str, Any] = {
            "name": f"sub-{made}",
            "owner_id": None,
            "owner": "admin",
            "events": ["task.failed"],
            "kinds": [],
            "clusters": [],
            "statuses": [],
            "target_type": "webhook",
            "target": {"url": "http://127.0.0.1:9/hook"},
            "secret": "",
            "enabled": True,
        }
        values.update(fields)
        async with pool.acquire() as conn:
            return await store.insert(conn, KEYRING, **values)

    return make
