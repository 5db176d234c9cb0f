"""SQL of ``notification_outbox`` and ``notification_attempts``: what is to be sent, claims
under a lease, and the log of every attempt.

:func:`emit` is how code outside the task tables announces an event (an approval requested, a
schedule misfired, a roll paused): called on the connection of the transaction that records
the event, so both commit or neither does. Task and node events come from triggers
(migration 0017), which call the same SQL function.
"""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import msgspec

from knm.core.errors import Invalid, NotFound
from knm.wire.notifications import EVENT_NAMES, Attempt, Delivery

#: NOTIFY channel ``knm_notify()`` announces new outbox rows on.
CHANNEL = "knm_notifications"

_DELIVERY = (
    "id, subscription_id, event, idempotency_key, state, attempts, "
    "CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at, last_error, "
    "created_at, delivered_at, payload"
)


def check_event(event: str) -> None:
    if event not in EVENT_NAMES:
        raise Invalid(f"event: unknown event {event!r}; valid events: {', '.join(EVENT_NAMES)}")


async def emit(
    conn: asyncpg.Connection,
    event: str,
    data: dict[str, Any],
    *,
    kind: str | None = None,
    cluster: str | None = None,
    status: str | None = None,
) -> int:
    """Queue ``event`` for every enabled subscription it matches, in ``conn``'s transaction;
    returns how many deliveries were queued. ``kind``, ``cluster`` and ``status`` are what the
    subscriptions' filters compare (None: the event says nothing of it, and passes that
    filter)."""
    check_event(event)
    return await conn.fetchval(
        "SELECT knm_notify($1, $2, $3, $4, $5::jsonb)", event, kind, cluster, status, data
    )


async def enqueue_test(conn: asyncpg.Connection, subscription_id: int, data: dict[str, Any]) -> int:
    """A ``notification.test`` delivery for one subscription (enabled or not); its id."""
    return await conn.fetchval(
        """WITH e AS (SELECT gen_random_uuid()::text || '.' || $1::bigint AS key)
           INSERT INTO notification_outbox (subscription_id, event, idempotency_key, payload)
           SELECT s.id, 'notification.test', e.key, jsonb_build_object(
                   'id', e.key, 'event', 'notification.test',
                   'occurred_at', to_char(now() AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                   'subscription', jsonb_build_object('id', s.id, 'name', s.name),
                   'data', $2::jsonb)
           FROM notification_subscriptions s, e WHERE s.id = $1::bigint
           RETURNING id""",
        subscription_id,
        data,
    )


async def announce(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    await conn.execute(f"NOTIFY {CHANNEL}")


class Claimed(msgspec.Struct, kw_only=True):
    """A due delivery and what it takes to send it."""

    id: int
    subscription_id: int
    event: str
    idempotency_key: str
    payload: dict[str, Any]
    #: This attempt's number, from 1.
    attempt: int
    target_type: str
    target: dict[str, Any]
    #: The subscription's row fields ``store.unseal`` opens the secret from.
    sealed: dict[str, Any]


async def claim(
    conn: asyncpg.Connection | asyncpg.Pool, *, worker_id: str, lease: float, limit: int
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries, oldest due first, for ``lease`` seconds: until
    then no other worker sees them; a worker that dies holding them leaves them due again
    once the lease runs out. The attempt is counted here, so a delivery that keeps killing
    its sender still reaches the dead-letter state."""
    records = await conn.fetch(
        """UPDATE notification_outbox o
           SET next_attempt_at = now() + make_interval(secs => $2), claimed_by = $1,
               attempts = o.attempts + 1
           FROM notification_subscriptions s
           WHERE s.id = o.subscription_id AND o.id IN (
               SELECT id FROM notification_outbox
               WHERE state = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
           RETURNING o.id, o.subscription_id, o.event, o.idempotency_key, o.payload,
                     o.attempts, s.target_type, s.target, s.key_id, s.nonce, s.ciphertext""",
        worker_id,
        lease,
        limit,
    )
    return [
        Claimed(
            id=r["id"],
            subscription_id=r["subscription_id"],
            event=r["event"],
            idempotency_key=r["idempotency_key"],
            payload=r["payload"],
            attempt=r["attempts"],
            target_type=r["target_type"],
            target=r["target"],
            sealed={
                "id": r["subscription_id"],
                "key_id": r["key_id"],
                "nonce": r["nonce"],
                "ciphertext": r["ciphertext"],
            },
        )
        for r in records
    ]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempt`` failed ones: exponential, capped, with
    "equal jitter" (half fixed, half random) so receivers that came back are not hit by every
    sender at once."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


async def record_attempt(
    pool: asyncpg.Pool,
    item: Claimed,
    *,
    worker_id: str,
    ok: bool,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
    retry_in: float | None,
) -> str:
    """Log the attempt and move the delivery on: ``delivered``, again in ``retry_in`` seconds,
    or ``dead`` (``retry_in`` None). Returns the state written; a delivery another worker
    claimed meanwhile (this one's lease ran out) keeps that worker's claim, only the log
    gains this attempt (at-least-once: both sent it)."""
    async with pool.acquire() as conn, conn.transaction():
        # A subscription deleted meanwhile took its deliveries along: nothing left to log.
        await conn.execute(
            """INSERT INTO notification_attempts (outbox_id, attempt, worker_id, ok, status_code,
                   latency_ms, error)
               SELECT id, $2, $3, $4, $5, $6, $7 FROM notification_outbox WHERE id = $1
               FOR SHARE""",
            item.id,
            item.attempt,
            worker_id,
            ok,
            status_code,
            latency_ms,
            error,
        )
        if ok:
            state = "delivered"
            await conn.execute(
                """UPDATE notification_outbox SET state = 'delivered', delivered_at = now(),
                          last_error = NULL, claimed_by = NULL
                   WHERE id = $1 AND state = 'pending'""",
                item.id,
            )
        else:
            state = "pending" if retry_in is not None else "dead"
            await conn.execute(
                """UPDATE notification_outbox SET state = $3, last_error = $4, claimed_by = NULL,
                          next_attempt_at = now() + make_interval(secs => $5)
                   WHERE id = $1 AND state = 'pending' AND claimed_by = $2""",
                item.id,
                worker_id,
                state,
                error,
                retry_in or 0.0,
            )
    return state


async def prune(conn: asyncpg.Connection | asyncpg.Pool, days: int) -> int:
    """Delete finished deliveries (and their attempts) older than ``days``."""
    status = await conn.execute(
        """DELETE FROM notification_outbox WHERE state IN ('delivered', 'dead')
           AND created_at < now() - make_interval(days => $1)""",
        days,
    )
    return int(status.split()[-1])


# --- what the API shows --------------------------------------------------------------------


async def _attempts(
    conn: asyncpg.Connection | asyncpg.Pool, ids: list[int]
) -> dict[int, list[Attempt]]:
    rows = await conn.fetch(
        """SELECT outbox_id, attempt, at, ok, status_code, latency_ms, error
           FROM notification_attempts WHERE outbox_id = ANY($1::bigint[]) ORDER BY id""",
        ids,
    )
    found: dict[int, list[Attempt]] = {}
    for r in rows:
        found.setdefault(r["outbox_id"], []).append(
            Attempt(
                **{k: r[k] for k in ("attempt", "at", "ok", "status_code", "latency_ms", "error")}
            )
        )
    return found


def _delivery(row: asyncpg.Record, attempts: dict[int, list[Attempt]]) -> Delivery:
    return Delivery(**dict(row), attempt_log=attempts.get(row["id"], []))


async def list_deliveries(
    conn: asyncpg.Connection | asyncpg.Pool,
    subscription_id: int,
    *,
    state: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Delivery]]:
    """One subscription's deliveries, newest first, each with its attempts."""
    total = await conn.fetchval(
        """SELECT count(*) FROM notification_outbox
           WHERE subscription_id = $1 AND ($2::text IS NULL OR state = $2)""",
        subscription_id,
        state,
    )
    rows = await conn.fetch(
        f"""SELECT {_DELIVERY} FROM notification_outbox
            WHERE subscription_id = $1 AND ($2::text IS NULL OR state = $2)
            ORDER BY id DESC LIMIT $3 OFFSET $4""",
        subscription_id,
        state,
        limit,
        offset,
    )
    attempts = await _attempts(conn, [r["id"] for r in rows])
    return total, [_delivery(r, attempts) for r in rows]


async def get_delivery(conn: asyncpg.Connection | asyncpg.Pool, delivery_id: int) -> Delivery:
    row = await conn.fetchrow(
        f"SELECT {_DELIVERY} FROM notification_outbox WHERE id = $1", delivery_id
    )
    if row is None:
        raise NotFound(f"Delivery ID {delivery_id} not found")
    return _delivery(row, await _attempts(conn, [delivery_id]))


async def redeliver(conn: asyncpg.Connection, delivery_id: int) -> Delivery:
    """Send a delivery again, with the same idempotency key and a fresh budget of attempts; a
    pending one is made due at once."""
    row = await conn.fetchrow(
        """UPDATE notification_outbox SET state = 'pending', attempts = 0, claimed_by = NULL,
                  next_attempt_at = now(), delivered_at = NULL
           WHERE id = $1 RETURNING id""",
        delivery_id,
    )
    if row is None:
        raise NotFound(f"Delivery ID {delivery_id} not found")
    await announce(conn)
    return await get_delivery(conn, delivery_id)
