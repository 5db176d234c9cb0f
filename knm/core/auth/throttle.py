"""Throttling of failed logins per (username, client address), kept in PostgreSQL so that every
replica counts the same failures."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import asyncpg

from knm.core.errors import RateLimited


async def check(
    conn: asyncpg.Connection, username: str, client: str, *, max_failures: int, window: int
) -> None:
    row = await conn.fetchrow(
        "SELECT failures, window_start FROM login_failures WHERE username = lower($1) AND client = $2",
        username,
        client,
    )
    if row is None or row["failures"] < max_failures:
        return
    elapsed = (datetime.now(UTC) - row["window_start"]).total_seconds()
    if elapsed >= window:
        return
    raise RateLimited(
        f"too many failed logins for {username!r}; try again later",
        retry_after=max(1, math.ceil(window - elapsed)),
    )


async def record_failure(
    conn: asyncpg.Connection, username: str, client: str, *, window: int
) -> None:
    await conn.execute(
        """INSERT INTO login_failures (username, client, failures, window_start)
           VALUES (lower($1), $2, 1, now())
           ON CONFLICT (username, client) DO UPDATE SET
               failures = CASE WHEN login_failures.window_start < now() - make_interval(secs => $3)
                               THEN 1 ELSE login_failures.failures + 1 END,
               window_start = CASE WHEN login_failures.window_start < now() - make_interval(secs => $3)
                                   THEN now() ELSE login_failures.window_start END""",
        username,
        client,
        float(window),
    )


async def clear(conn: asyncpg.Connection, username: str, client: str) -> None:
    await conn.execute(
        "DELETE FROM login_failures WHERE username = lower($1) AND client = $2", username, client
    )
