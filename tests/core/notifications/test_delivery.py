"""The delivery worker against real receivers on loopback: retries, dead letters, timeouts,
redelivery, a worker killed mid-send, Slack and SMTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from knm.core import db
from knm.core.listen import Listener
from knm.core.notifications import emit, outbox
from knm.core.notifications.delivery import DeliveryWorker, Settings
from knm.testing.receivers import SmtpReceiver, WebhookReceiver, self_signed

SECRET = "whsec-4f1c0ffee"
FAST = Settings(
    timeout=1.0, lease=4.0, poll=0.05, backoff_base=0.05, backoff_cap=0.2, max_attempts=4
)

MakeWorker = Callable[..., Any]


@pytest.fixture
async def workers(pool: asyncpg.Pool, keyring: Any) -> AsyncIterator[MakeWorker]:
    started: list[DeliveryWorker] = []

    async def make(settings: Settings = FAST, **options: Any) -> DeliveryWorker:
        worker = DeliveryWorker(pool, keyring, settings, **options)
        await worker.start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        await worker.stop(grace=0)


@pytest.fixture
def receiver() -> Any:
    receivers: list[WebhookReceiver] = []

    def make(**options: Any) -> WebhookReceiver:
        made = WebhookReceiver(**options).start()
        receivers.append(made)
        return made

    yield make
    for made in receivers:
        made.stop()


async def fire(pool: asyncpg.Pool, event: str = "task.failed", **data: Any) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await emit(
            conn,
            event,
            {"task_id": "t-1", "kind": "test", "cluster_name": "lab", "status": "failed", **data},
            kind="test",
            cluster="lab",
            status="failed",
        )


async def settled(pool: asyncpg.Pool, subscription_id: int, deadline: float = 30.0) -> Any:
    """The subscription's one delivery once it is delivered or dead, with its attempts."""
    for _ in range(int(deadline / 0.05)):
        total, found = await outbox.list_deliveries(
            pool, subscription_id, state=None, limit=10, offset=0
        )
        if total == 1 and found[0].state != "pending":
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError("the delivery never settled")


async def test_a_failing_receiver_gets_retries_until_it_takes_the_signed_body(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, receiver: Any
) -> None:
    hook = receiver(secret=SECRET, plan=[500, 503])
    sub = await subscribe(target={"url": hook.url}, secret=SECRET)
    await workers()
    await fire(pool)
    delivery = await settled(pool, sub.id)
    assert delivery.state == "delivered"
    assert [(a.attempt, a.ok, a.status_code) for a in delivery.attempt_log] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]
    assert delivery.attempt_log[0].error == "HTTP 500 Internal Server Error"
    seen = hook.snapshot()
    assert len(seen) == 3
    assert all(s.signature_ok for s in seen)
    assert {s.headers["idempotency-key"] for s in seen} == {delivery.idempotency_key}
    assert {s.body for s in seen} == {seen[0].body}
    assert seen[0].headers["x-knm-event"] == "task.failed"
    assert seen[0].headers["content-type"] == "application/json"
    body = seen[0].json()
    assert body["id"] == delivery.idempotency_key
    assert body["event"] == "task.failed"
    assert body["data"]["task_id"] == "t-1"


async def test_a_receiver_checking_signatures_refuses_a_body_signed_with_another_secret(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, receiver: Any
) -> None:
    hook = receiver(secret=SECRET)
    sub = await subscribe(target={"url": hook.url}, secret="not-the-receivers-secret")
    await workers(Settings(**{**_fields(FAST), "max_attempts": 1}))
    await fire(pool)
    delivery = await settled(pool, sub.id)
    assert delivery.state == "dead"
    assert [s.signature_ok for s in hook.snapshot()] == [False]
    assert delivery.attempt_log[0].status_code == 401


async def test_a_delivery_that_keeps_failing_is_dead_after_the_last_attempt(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, receiver: Any
) -> None:
    hook = receiver(then=500)
    sub = await subscribe(target={"url": hook.url})
    await workers(Settings(**{**_fields(FAST), "max_attempts": 3}))
    await fire(pool)
    delivery = await settled(pool, sub.id)
    assert delivery.state == "dead"
    assert delivery.attempts == 3
    assert [a.status_code for a in delivery.attempt_log] == [500, 500, 500]
    assert delivery.last_error == "HTTP 500 Internal Server Error"
    assert delivery.next_attempt_at is None
    await asyncio.sleep(0.5)
    assert len(hook.snapshot()) == 3


async def test_a_receiver_that_hangs_is_timed_out_and_tried_again(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, receiver: Any
) -> None:
    hook = receiver(plan=["hang"])
    sub = await subscribe(target={"url": hook.url})
    await workers(Settings(**{**_fields(FAST), "timeout": 0.5}))
    await fire(pool)
    delivery = await settled(pool, sub.id)
    assert delivery.state == "delivered"
    first, second = delivery.attempt_log
    assert (first.ok, first.status_code, first.error) == (
        False,
        None,
        "timed out waiting for the receiver",
    )
    assert (second.ok, second.status_code) == (True, 200)


async def test_redelivery_sends_a_delivered_notification_again_with_the_same_key(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, receiver: Any
) -> None:
    hook = receiver()
    sub = await subscribe(target={"url": hook.url})
    await workers()
    await fire(pool)
    delivery = await settled(pool, sub.id)
    async with pool.acquire() as conn:
        again = await outbox.redeliver(conn, delivery.id)
    assert again.state == "pending"
    for _ in range(600):
        if len(hook.snapshot()) == 2:
            break
        await asyncio.sleep(0.05)
    seen = hook.snapshot()
    assert [s.headers["idempotency-key"] for s in seen] == [delivery.idempotency_key] * 2
    final = await settled(pool, sub.id)
    assert final.state == "delivered"
    assert len(final.attempt_log) == 2


async def test_a_worker_killed_mid_delivery_leaves_the_row_to_another_with_the_same_key(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, receiver: Any
) -> None:
    hook = receiver(plan=["hang"])
    sub = await subscribe(target={"url": hook.url})
    settings = Settings(**{**_fields(FAST), "timeout": 1.0, "lease": 3.0})
    doomed = await workers(settings, worker_id="doomed")
    await fire(pool)
    for _ in range(600):
        if hook.snapshot():
            break
        await asyncio.sleep(0.05)
    # Gone without a word, as a killed process: nothing recorded, the claim left to expire.
    await doomed.stop(grace=0)
    row = await pool.fetchrow("SELECT state, claimed_by, attempts FROM notification_outbox")
    assert (row["state"], row["claimed_by"], row["attempts"]) == ("pending", "doomed", 1)
    await workers(settings, worker_id="heir")
    delivery = await settled(pool, sub.id)
    assert delivery.state == "delivered"
    seen = hook.snapshot()
    assert len(seen) == 2
    assert [s.headers["idempotency-key"] for s in seen] == [delivery.idempotency_key] * 2
    assert [(a.attempt, a.ok) for a in delivery.attempt_log] == [(2, True)]
    worker = await pool.fetchval("SELECT worker_id FROM notification_attempts")
    assert worker == "heir"


async def test_a_notify_wakes_the_worker_without_waiting_for_its_poll(
    pool: asyncpg.Pool,
    subscribe: Any,
    workers: MakeWorker,
    receiver: Any,
    knm_fresh_database_url: str,
) -> None:
    hook = receiver()
    sub = await subscribe(target={"url": hook.url})
    listener = Listener(lambda: db.connect_one(knm_fresh_database_url))
    await listener.start()
    try:
        # A poll far longer than the deadline below: only the NOTIFY can deliver in time.
        await workers(Settings(**{**_fields(FAST), "poll": 600.0}), listener=listener)
        await asyncio.sleep(0.2)
        await fire(pool)
        delivery = await settled(pool, sub.id, deadline=20.0)
    finally:
        await listener.stop()
    assert delivery.state == "delivered"


async def test_slack_gets_one_readable_line_and_its_url_stays_out_of_logs_and_attempts(
    pool: asyncpg.Pool,
    subscribe: Any,
    workers: MakeWorker,
    receiver: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = receiver(then=500)
    token = "T0KEN-b3e8a1f2c9"
    sub = await subscribe(target_type="slack", target={}, secret=f"{hook.url}/{token}")
    await workers(Settings(**{**_fields(FAST), "max_attempts": 2}))
    with caplog.at_level(logging.DEBUG):
        await fire(pool, message="exit 3 on n2", error="1 node failed")
        delivery = await settled(pool, sub.id)
    assert delivery.state == "dead"
    seen = hook.snapshot()
    assert seen[0].path == f"/hook/{token}"
    assert seen[0].json() == {"text": "knm: task t-1 (test) on lab failed: 1 node failed"}
    stored = await pool.fetch("SELECT * FROM notification_attempts")
    assert stored and all(token not in str(dict(r)) for r in stored)
    assert token not in caplog.text
    assert token not in str(await pool.fetch("SELECT target FROM notification_subscriptions"))


async def test_mail_goes_over_smtp_with_a_login_and_a_message_id_made_of_the_idempotency_key(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker
) -> None:
    with SmtpReceiver(username="knm", password="smtp-pass-77") as smtp:
        target = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "username": "knm",
            "from_addr": "knm@example.com",
            "to": ["ops@example.com", "oncall@example.com"],
        }
        sub = await subscribe(target_type="email", target=target, secret="smtp-pass-77")
        await workers()
        await fire(pool)
        delivery = await settled(pool, sub.id)
    assert delivery.state == "delivered"
    assert delivery.attempt_log[0].status_code == 250
    [mail] = smtp.mails
    assert smtp.logins == ["knm"]
    assert mail["Subject"] == "knm: task t-1 (test) on lab failed"
    assert mail["To"] == "ops@example.com, oncall@example.com"
    assert mail["Message-ID"] == f"<{delivery.idempotency_key}@knm>"
    assert mail["Idempotency-Key"] == delivery.idempotency_key
    assert '"task_id": "t-1"' in mail.get_payload()


async def test_a_wrong_smtp_password_is_a_failed_attempt_with_the_servers_answer(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker
) -> None:
    with SmtpReceiver(username="knm", password="right") as smtp:
        target = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "username": "knm",
            "from_addr": "knm@example.com",
            "to": ["ops@example.com"],
        }
        sub = await subscribe(target_type="email", target=target, secret="wrong-pass-31")
        await workers(Settings(**{**_fields(FAST), "max_attempts": 1}))
        await fire(pool)
        delivery = await settled(pool, sub.id)
    assert delivery.state == "dead"
    assert smtp.mails == []
    [attempt] = delivery.attempt_log
    assert attempt.status_code == 535
    assert "wrong-pass-31" not in (attempt.error or "")


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}


async def test_a_subscription_deleted_mid_delivery_ends_that_delivery_quietly(
    pool: asyncpg.Pool,
    subscribe: Any,
    workers: MakeWorker,
    receiver: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = receiver(plan=["hang"])
    sub = await subscribe(target={"url": hook.url})
    await workers(Settings(**{**_fields(FAST), "timeout": 0.5}))
    await fire(pool)
    for _ in range(600):
        if hook.snapshot():
            break
        await asyncio.sleep(0.05)
    await pool.execute("DELETE FROM notification_subscriptions WHERE id = $1", sub.id)
    # The hung attempt times out and finds nothing to record, without an error.
    for _ in range(100):
        await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT count(*) FROM notification_outbox") == 0
    assert await pool.fetchval("SELECT count(*) FROM notification_attempts") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_goes_over_starttls_or_implicit_tls_to_a_server_it_trusts(
    pool: asyncpg.Pool,
    subscribe: Any,
    workers: MakeWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    security: str,
) -> None:
    cert_file, context = self_signed(tmp_path)
    # The client trusts what the system trusts; the test's system trusts this receiver.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    with SmtpReceiver("knm", "tls-pass-5", tls=context, implicit_tls=security == "tls") as smtp:
        target = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": security,
            "username": "knm",
            "from_addr": "knm@example.com",
            "to": ["ops@example.com"],
        }
        sub = await subscribe(target_type="email", target=target, secret="tls-pass-5")
        await workers()
        await fire(pool)
        delivery = await settled(pool, sub.id)
    assert delivery.state == "delivered", delivery.attempt_log
    assert smtp.logins == ["knm"] and len(smtp.mails) == 1


async def test_mail_to_a_server_whose_certificate_is_not_trusted_is_refused(
    pool: asyncpg.Pool, subscribe: Any, workers: MakeWorker, tmp_path: Path
) -> None:
    _, context = self_signed(tmp_path)
    with SmtpReceiver("knm", "tls-pass-5", tls=context) as smtp:
        target = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "starttls",
            "username": "knm",
            "from_addr": "knm@example.com",
            "to": ["ops@example.com"],
        }
        sub = await subscribe(target_type="email", target=target, secret="tls-pass-5")
        await workers(Settings(**{**_fields(FAST), "max_attempts": 1}))
        await fire(pool)
        delivery = await settled(pool, sub.id)
    assert delivery.state == "dead"
    assert "CERTIFICATE_VERIFY_FAILED" in (delivery.attempt_log[0].error or "")
    assert smtp.mails == [] and smtp.logins == []
