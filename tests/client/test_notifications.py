"""The SDK's notification calls against a real server and a real webhook receiver on loopback:
subscriptions made, read, changed and deleted, a test-send delivered with a valid signature,
deliveries listed by state, a dead one redelivered, and the server's 422 raised as ``Invalid``
(the sync and async clients alike)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from knm.client import AsyncClient, Client
from knm.client import models as m
from knm.client.errors import BadRequest, Invalid, NotFound
from knm.testing.plugin import TEST_EXECUTOR
from knm.testing.process import KnmProcess
from knm.testing.receivers import WebhookReceiver

SECRET = "sdk-webhook-secret"
T = TypeVar("T")


@pytest.fixture(scope="module")
def knm_server_env() -> dict[str, str]:
    # Retries come quickly and give up after two attempts, so a dead delivery is seconds away.
    return {
        "KNM_PLUGINS": TEST_EXECUTOR,
        "KNM_NOTIFY_POLL": "0.2",
        "KNM_NOTIFY_BACKOFF_BASE": "0.1",
        "KNM_NOTIFY_BACKOFF_CAP": "0.2",
        "KNM_NOTIFY_MAX_ATTEMPTS": "2",
    }


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


def eventually(probe: Callable[[], T | None], timeout: float = 60) -> T:
    end = time.monotonic() + timeout
    while (found := probe()) is None:
        assert time.monotonic() < end, "gave up waiting"
        time.sleep(0.1)
    return found


def settled(client: Client, delivery_id: int) -> m.Delivery:
    def probe() -> m.Delivery | None:
        delivery = client.delivery(delivery_id)
        return None if delivery.state == "pending" else delivery

    return eventually(probe)


def test_a_subscription_lives_through_create_read_update_and_delete(
    admin: Client, receiver: WebhookReceiver
) -> None:
    target = m.WebhookTarget(url=receiver.url, secret=SECRET)
    made = admin.create_subscription(
        "sdk-failures", ["task.failed", "node.failed"], target, kinds=["test"], clusters=["lab"]
    )
    assert isinstance(made, m.Subscription)
    assert made.target_type == "webhook" and made.target == {"url": receiver.url}
    assert made.has_secret is True and made.kinds == ["test"] and made.enabled is True
    assert SECRET not in repr(made)
    assert admin.subscription(made.id).name == "sdk-failures"
    assert made.id in {s.id for s in admin.subscriptions(page_size=100).items}
    changed = admin.update_subscription(made.id, enabled=False, statuses=["failed"])
    assert changed.enabled is False and changed.statuses == ["failed"] and changed.has_secret
    # A target without its secret keeps the stored one; "" removes it.
    kept = admin.update_subscription(made.id, target=m.WebhookTarget(url=receiver.url + "2"))
    assert kept.has_secret is True and kept.target["url"].endswith("/hook2")
    removed = admin.update_subscription(
        made.id, target=m.WebhookTarget(url=receiver.url, secret="")
    )
    assert removed.has_secret is False
    admin.delete_subscription(made.id)
    with pytest.raises(NotFound):
        admin.subscription(made.id)


def test_a_test_send_is_delivered_signed_and_listed_by_state(
    admin: Client, receiver: WebhookReceiver
) -> None:
    made = admin.create_subscription(
        "sdk-test-send",
        ["task.completed"],
        {"type": "webhook", "url": receiver.url, "secret": SECRET},
    )
    queued = admin.test_subscription(made.id)
    assert queued.event == "notification.test" and queued.subscription_id == made.id
    delivery = settled(admin, queued.id)
    assert delivery.state == "delivered" and delivery.attempts == 1
    assert delivery.attempt_log[0].ok and delivery.attempt_log[0].status_code == 200
    seen = eventually(lambda: receiver.snapshot() or None)
    assert seen[0].signature_ok is True
    assert seen[0].headers["idempotency-key"] == delivery.idempotency_key
    assert seen[0].json()["data"]["by"] == "admin"
    delivered = admin.deliveries(made.id, state="delivered")
    assert [d.id for d in delivered.items] == [delivery.id] and delivered.total == 1
    assert admin.deliveries(made.id, state="dead").total == 0


def test_a_dead_delivery_is_redelivered_with_the_same_idempotency_key(admin: Client) -> None:
    with WebhookReceiver(secret=SECRET, plan=[500, 500], then=200) as flaky:
        made = admin.create_subscription(
            "sdk-flaky", ["task.failed"], m.WebhookTarget(url=flaky.url, secret=SECRET)
        )
        dead = settled(admin, admin.test_subscription(made.id).id)
        assert dead.state == "dead" and dead.attempts == 2
        assert [a.status_code for a in dead.attempt_log] == [500, 500]
        assert [d.id for d in admin.deliveries(made.id, state="dead").items] == [dead.id]
        again = admin.redeliver(dead.id)
        assert again.id == dead.id and again.state == "pending"
        delivered = settled(admin, dead.id)
        assert delivered.state == "delivered"
        keys = {seen.headers["idempotency-key"] for seen in flaky.snapshot()}
        assert keys == {dead.idempotency_key} and len(flaky.snapshot()) == 3


def test_events_list_what_a_subscription_may_name(admin: Client) -> None:
    events = admin.notification_events()
    assert "task.failed" in events and "approval.requested" in events
    assert "notification.test" not in events


def test_bad_input_raises_invalid_naming_the_field(admin: Client) -> None:
    with pytest.raises(Invalid) as caught:
        admin.create_subscription("sdk-bad", ["task.exploded"], m.SlackTarget(url=None))
    assert str(caught.value).startswith("events: unknown event 'task.exploded'")
    with pytest.raises(Invalid) as slack:
        admin.create_subscription("sdk-bad", ["task.failed"], m.SlackTarget())
    assert "target.url" in str(slack.value)
    with pytest.raises(BadRequest) as state:
        admin.deliveries(1, state="lost")
    assert str(state.value).startswith("state: 'lost' is not a delivery state; valid: pending")


def test_the_async_client_makes_and_reads_subscriptions(
    server: KnmProcess, admin: Client, receiver: WebhookReceiver
) -> None:
    async def session() -> tuple[m.Subscription, m.Delivery, m.Page[m.Delivery], list[str]]:
        async with AsyncClient(server.base_url, admin.token) as client:
            made = await client.create_subscription(
                "sdk-async", ["task.cancelled"], m.WebhookTarget(url=receiver.url, secret=SECRET)
            )
            queued = await client.test_subscription(made.id)
            for _ in range(600):
                delivery = await client.delivery(queued.id)
                if delivery.state != "pending":
                    break
                await asyncio.sleep(0.1)
            listed = await client.deliveries(made.id)
            events = await client.notification_events()
            await client.delete_subscription(made.id)
            return made, delivery, listed, events

    made, delivery, listed, events = asyncio.run(session())
    assert made.name == "sdk-async" and made.has_secret
    assert delivery.state == "delivered" and [d.id for d in listed.items] == [delivery.id]
    assert "task.cancelled" in events
    assert receiver.snapshot()[0].signature_ok is True
