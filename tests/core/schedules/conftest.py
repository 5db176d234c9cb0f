"""Schedules are tested on the test executor (kind ``test``): no SSH or cluster needed."""

from __future__ import annotations

from typing import Any

import pytest

from knm.testing.client import ApiClient
from knm.testing.executor import TestExecutorPlugin


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


@pytest.fixture(scope="module")
async def operator_headers(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "otto", "operator")


@pytest.fixture(scope="module")
async def other_operator_headers(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "ophelia", "operator")


@pytest.fixture(scope="module")
async def viewer_headers(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "vera", "viewer")
