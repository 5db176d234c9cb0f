"""The task engine's tests run on the test executor (kind ``test``), no SSH needed."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from knm.testing.executor import TestExecutorPlugin


@pytest.fixture(scope="module")
def test_plugin() -> TestExecutorPlugin:
    return TestExecutorPlugin()


@pytest.fixture(scope="module")
def knm_extra_plugins(test_plugin: TestExecutorPlugin) -> list[Any]:
    return [test_plugin]


@pytest.fixture
def pool(knm_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The kit's pool of the module's database, on the test's own loop, by a shorter name."""
    return knm_pool
