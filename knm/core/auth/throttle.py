"""Throttling of failed logins per (username, client address), kept in PostgreSQL so that every
replica counts the same failures."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import asyncpg

from knm.core.errors import RateLimited


async def attempt(
    conn: asyncpg.Connection, username: str, client: str, *, max_failures: int, window: int
) -> None:
    """Count a login attempt before its password is evaluated, or refuse it (429).

    Every attempt counts as a failure until it succeeds (``clear``), and the count and the
    check are one statement — the row's lock orders concurrent attempts — so however many
    arrive at once, at most ``max_failures`` passwords are evaluated per window."""
    row = await conn.fetchrow(
        """INSERT INTO login_failures (username, client, failures, window_start)
           VALUES (lower($1), $2, 1, now())
           ON CONFLICT (username, client) DO UPDATE SET
               failures = CASE WHEN login_failures.window_start < now() - make_interval(secs => $3)
                               THEN 1 ELSE login_failures.failures + 1 END,
               window_start = CASE WHEN login_failures.window_start < now() - make_interval(secs => $3)
                                   THEN now() ELSE login_failures.window_start END
           RETURNING failures, window_start""",
        username,
        client,
        float(window),
    )
    if row["failures"] <= max_failures:
        return
    elapsed = (datetime.now(UTC) - row["window_start"]).total_seconds()
    raise RateLimited(
        f"too many failed logins for {username!r}; try again later",
        retry_after=max(1, math.ceil(window - elapsed)),
    )


async def clear(conn: asyncpg.Connection, username: str, client: str) -> None:
    await conn.execute(
        "DELETE FROM login_failures WHERE username = lower($1) AND client = $2", username, client
    )
