"""The task engine's tests run on the test executor (kind ``test``), no SSH needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from knm.core import db
from knm.testing.executor import TestExecutorPlugin


@pytest.fixture(scope="module")
def test_plugin() -> TestExecutorPlugin:
    return TestExecutorPlugin()


@pytest.fixture(scope="module")
def knm_extra_plugins(test_plugin: TestExecutorPlugin) -> list[Any]:
    return [test_plugin]


@pytest.fixture
async def pool(knm_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of the module's database on the test's own loop (the app's runs on another)."""
    pool = await db.connect(knm_database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
