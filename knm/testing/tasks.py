"""Helpers for tests that start tasks and wait for them to finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from knm.testing.client import ApiClient, assert_envelope
from knm.wire import TERMINAL


async def start_task(
    client: ApiClient,
    headers: dict[str, str],
    route: str = "test",
    path: str = "execute",
    **body: Any,
) -> dict[str, Any]:
    """POST an execute request and return the answer's ``data``."""
    response = await client.post(f"/automation/{route}/{path}", json=body, headers=headers)
    return assert_envelope(response, 200)["data"]


async def wait_for_task(
    client: ApiClient, headers: dict[str, str], task_id: str, deadline: float = 60.0
) -> dict[str, Any]:
    """The task's status once it is finished (a generous deadline; never asserts on time)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        data = (await client.get(f"/tasks/{task_id}", headers=headers)).json()["data"]
        if data["status"] in TERMINAL:
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish within {deadline} s")


async def eventually(predicate: Callable[[], Awaitable[bool]], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")
