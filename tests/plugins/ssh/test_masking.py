"""Secrets a command prints on real sshd nodes are masked in stored and streamed output, however
the output ends and however it is encoded."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from knm.testing.client import ApiClient
from knm.testing.fleet import FleetCluster

Runner = Callable[..., Awaitable[dict[str, Any]]]


async def stored_output(database_url: str, task_id: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT coalesce(string_agg(data, '' ORDER BY seq), '') FROM task_output "
            "WHERE task_id = $1",
            task_id,
        )
    finally:
        await conn.close()


async def test_a_secret_printed_without_a_trailing_newline_is_masked_everywhere(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str],
    knm_database_url: str,
) -> None:  # fmt: skip
    password = fleet.fleet.password
    status = await run_ssh(
        command=f"SECRET='{password}'; printf %s \"$SECRET\"", target_nodes=["node1"]
    )
    (result,) = status["results"]
    assert result["status"] == "success", result
    assert result["stdout"] == "********"
    events = await knm_client.get(f"/tasks/{status['task_id']}/events", headers=admin_headers)
    assert password not in events.text
    assert await stored_output(knm_database_url, status["task_id"]) == "********"


async def test_a_secret_printed_in_base64_or_hex_is_masked(
    run_ssh: Runner, fleet: FleetCluster, knm_database_url: str
) -> None:
    password = fleet.fleet.password
    status = await run_ssh(
        command=(
            f'SECRET=\'{password}\'; printf %s "$SECRET" | base64; echo "$SECRET" | base64; '
            "printf %s \"$SECRET\" | od -An -tx1 | tr -d ' \\n'"
        ),
        target_nodes=["node1"],
    )
    (result,) = status["results"]
    assert result["status"] == "success", result
    stored = await stored_output(knm_database_url, status["task_id"])
    for encoded in (
        base64.b64encode(password.encode()).decode(),
        base64.b64encode((password + "\n").encode()).decode(),
        password.encode().hex(),
    ):
        assert encoded not in stored and encoded not in result["stdout"]
    assert result["stdout"].count("********") == 3, result["stdout"]
