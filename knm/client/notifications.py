"""The notifications' endpoints (``/notifications``): subscriptions, deliveries and the
event names; a mixin of both clients."""

from __future__ import annotations

from typing import Any

import msgspec

from knm.client import models as m
from knm.client.calls import Call, Doer, body, nothing, one, paged, query


class NotificationCalls(Doer):
    def notification_events(self) -> list[str]:
        """The event names a subscription may name."""

        def decode(data: Any) -> list[str]:
            return msgspec.convert(data, m.EventList).events

        return self._do(Call("GET", "/notifications/events", decode))

    def subscriptions(self, *, page: int = 1, page_size: int = 20) -> m.Page[m.Subscription]:
        """Notification subscriptions by id (never their secrets: ``has_secret``)."""
        params = query(page=page, page_size=page_size)
        return self._do(
            Call(
                "GET",
                "/notifications/subscriptions",
                paged(m.Subscription, "subscriptions"),
                params=params,
            )
        )

    def subscription(self, subscription_id: int) -> m.Subscription:
        path = f"/notifications/subscriptions/{subscription_id}"
        return self._do(Call("GET", path, one(m.Subscription)))

    def create_subscription(
        self,
        name: str,
        events: list[str],
        target: m.Target | dict[str, Any],
        *,
        kinds: list[str] | None = None,
        clusters: list[str] | None = None,
        statuses: list[str] | None = None,
        enabled: bool | None = None,
    ) -> m.Subscription:
        """Notify ``target`` (``WebhookTarget``, ``SlackTarget``, ``EmailTarget``, or the same
        as a dict tagged by ``type``) of ``events``; empty filters let every event through."""
        payload = body(
            name=name,
            events=events,
            target=target,
            kinds=kinds,
            clusters=clusters,
            statuses=statuses,
            enabled=enabled,
        )
        path = "/notifications/subscriptions"
        return self._do(Call("POST", path, one(m.Subscription), json=payload))

    def update_subscription(self, subscription_id: int, **fields: Any) -> m.Subscription:
        """Change what is given. A ``target`` replaces the stored one; its secret left out
        (None) keeps the stored secret when the type stays, ``""`` removes it."""
        path = f"/notifications/subscriptions/{subscription_id}"
        return self._do(Call("PUT", path, one(m.Subscription), json=fields))

    def delete_subscription(self, subscription_id: int) -> None:
        """Delete it and its deliveries."""
        path = f"/notifications/subscriptions/{subscription_id}"
        return self._do(Call("DELETE", path, nothing))

    def test_subscription(self, subscription_id: int) -> m.Delivery:
        """Queue a ``notification.test`` to its target (even when it is disabled)."""
        path = f"/notifications/subscriptions/{subscription_id}/test"
        return self._do(Call("POST", path, one(m.Delivery)))

    def deliveries(
        self,
        subscription_id: int,
        *,
        state: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> m.Page[m.Delivery]:
        """A subscription's deliveries, newest first; ``state``: pending, delivered or dead."""
        params = query(state=state, page=page, page_size=page_size)
        path = f"/notifications/subscriptions/{subscription_id}/deliveries"
        return self._do(Call("GET", path, paged(m.Delivery, "deliveries"), params=params))

    def delivery(self, delivery_id: int) -> m.Delivery:
        """One delivery with every attempt (status code, latency, error)."""
        path = f"/notifications/deliveries/{delivery_id}"
        return self._do(Call("GET", path, one(m.Delivery)))

    def redeliver(self, delivery_id: int) -> m.Delivery:
        """Send a delivery again: the same idempotency key, fresh attempts."""
        path = f"/notifications/deliveries/{delivery_id}/redeliver"
        return self._do(Call("POST", path, one(m.Delivery)))
