"""``/notifications``: subscriptions (CRUD), their deliveries, redelivery and a test-send.

Who may do what: viewers read subscriptions and deliveries (secrets are never returned to
anyone); operators create subscriptions, which they own, and change, delete, test and
redeliver their own; admins do all of it to every subscription.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.params import Parameter

from knm.core.auth.guards import OPERATOR, VIEWER, principal_of
from knm.core.crypto import keyring_of
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, offset, ok
from knm.core.errors import BadRequest, Forbidden
from knm.core.notifications import outbox, rules, store
from knm.wire.notifications import (
    DELIVERY_STATES,
    Delivery,
    DeliveryList,
    EventList,
    Subscription,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionUpdate,
)

_SECRET_FIELD = {"webhook": "target.secret", "slack": "target.url", "email": "target.password"}


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


def _check_owner(request: Request[Any, Any, Any], owner_id: int | None) -> None:
    principal = principal_of(request)
    if principal.role != "admin" and principal.user_id != owner_id:
        raise Forbidden("operators may change only the subscriptions they created")


def _kinds(request: Request[Any, Any, Any], kinds: list[str]) -> list[str]:
    return rules.check_filter("kinds", kinds, _knm(request).executors.keys())


@get("/notifications/events", guards=[VIEWER], summary="The events a subscription may name")
async def list_events() -> Envelope[EventList]:
    return ok(EventList(list(rules.SUBSCRIBABLE)))


@post(
    "/notifications/subscriptions",
    guards=[OPERATOR],
    summary="Create a subscription (its secret is write-only)",
)
async def create_subscription(
    request: Request[Any, Any, Any], data: SubscriptionCreate
) -> Envelope[Subscription]:
    knm = _knm(request)
    principal = principal_of(request)
    rules.check_line("name", data.name)
    events = rules.check_events(data.events)
    kinds = _kinds(request, data.kinds)
    clusters = rules.check_filter("clusters", data.clusters)
    statuses = rules.check_statuses(data.statuses)
    target_type, target, secret = rules.split_target(data.target)
    if secret:
        rules.check_secret_text(_SECRET_FIELD[target_type], secret)
    rules.check_secret(target_type, bool(secret))
    async with knm.pool.acquire() as conn, conn.transaction():
        subscription = await store.insert(
            conn,
            keyring_of(knm),
            name=data.name,
            owner_id=principal.user_id,
            owner=principal.username,
            events=events,
            kinds=kinds,
            clusters=clusters,
            statuses=statuses,
            target_type=target_type,
            target=target,
            secret=secret or "",
            enabled=data.enabled,
        )
        await knm.audit(
            request,
            "notification.subscription.create",
            subscription.name,
            conn=conn,
            detail={"id": subscription.id, "target_type": target_type, "events": events},
        )
    return created(subscription, "subscription created")


@get("/notifications/subscriptions", guards=[VIEWER], summary="List subscriptions (no secrets)")
async def list_subscriptions(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[SubscriptionList]:
    total, found = await store.list_subscriptions(
        _knm(request).pool, page_size, offset(page, page_size)
    )
    return ok(SubscriptionList(total, found))


@get(
    "/notifications/subscriptions/{subscription_id:int}",
    guards=[VIEWER],
    summary="One subscription (no secrets)",
)
async def get_subscription(
    request: Request[Any, Any, Any], subscription_id: int
) -> Envelope[Subscription]:
    return ok(await store.get(_knm(request).pool, subscription_id))


@put(
    "/notifications/subscriptions/{subscription_id:int}",
    guards=[OPERATOR],
    summary="Change a subscription (partial)",
)
async def update_subscription(
    request: Request[Any, Any, Any], subscription_id: int, data: SubscriptionUpdate
) -> Envelope[Subscription]:
    knm = _knm(request)
    sent = [f for f in data.__struct_fields__ if getattr(data, f) is not msgspec.UNSET]
    fields: dict[str, Any] = {}
    if data.name is not msgspec.UNSET:
        rules.check_line("name", data.name)
        fields["name"] = data.name
    if data.events is not msgspec.UNSET:
        fields["events"] = rules.check_events(data.events)
    if data.kinds is not msgspec.UNSET:
        fields["kinds"] = _kinds(request, data.kinds)
    if data.clusters is not msgspec.UNSET:
        fields["clusters"] = rules.check_filter("clusters", data.clusters)
    if data.statuses is not msgspec.UNSET:
        fields["statuses"] = rules.check_statuses(data.statuses)
    if data.enabled is not msgspec.UNSET:
        fields["enabled"] = data.enabled
    secret: str | None = None
    async with knm.pool.acquire() as conn, conn.transaction():
        row = await store.row_for_update(conn, subscription_id)
        _check_owner(request, row["owner_id"])
        if data.target is not msgspec.UNSET:
            target_type, target, secret = rules.split_target(data.target)
            if secret:
                rules.check_secret_text(_SECRET_FIELD[target_type], secret)
            if secret is None and target_type != row["target_type"]:
                # Another type's secret means nothing to this one.
                secret = ""
            has = bool(secret) if secret is not None else row["has_secret"]
            rules.check_secret(target_type, has)
            fields.update(target_type=target_type, target=target)
        subscription = await store.update(
            conn, keyring_of(knm), subscription_id, fields=fields, secret=secret
        )
        await knm.audit(
            request,
            "notification.subscription.update",
            subscription.name,
            conn=conn,
            detail={"id": subscription_id, "fields": sorted(sent)},
        )
    return ok(subscription, "subscription updated")


@delete(
    "/notifications/subscriptions/{subscription_id:int}",
    guards=[OPERATOR],
    status_code=200,
    summary="Delete a subscription and its deliveries",
)
async def delete_subscription(request: Request[Any, Any, Any], subscription_id: int) -> Done:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        _check_owner(request, await store.owner_of(conn, subscription_id))
        name = await store.delete(conn, subscription_id)
        await knm.audit(
            request,
            "notification.subscription.delete",
            name,
            conn=conn,
            detail={"id": subscription_id},
        )
    return ok(message="subscription deleted")


@post(
    "/notifications/subscriptions/{subscription_id:int}/test",
    guards=[OPERATOR],
    summary="Queue a test notification to the subscription's target (even when disabled)",
)
async def test_subscription(
    request: Request[Any, Any, Any], subscription_id: int
) -> Envelope[Delivery]:
    knm = _knm(request)
    principal = principal_of(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        _check_owner(request, await store.owner_of(conn, subscription_id))
        delivery_id = await outbox.enqueue_test(
            conn, subscription_id, {"message": "test notification", "by": principal.username}
        )
        await outbox.announce(conn)
        await knm.audit(
            request,
            "notification.subscription.test",
            str(subscription_id),
            conn=conn,
            detail={"id": subscription_id, "delivery_id": delivery_id},
        )
        delivery = await outbox.get_delivery(conn, delivery_id)
    return created(delivery, "test notification queued")


@get(
    "/notifications/subscriptions/{subscription_id:int}/deliveries",
    guards=[VIEWER],
    summary="A subscription's deliveries, newest first, with every attempt",
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    subscription_id: int,
    # ``state`` is a name Litestar reserves for the app's state.
    delivery_state: Annotated[
        str | None,
        Parameter(query="state", description="only deliveries in it: pending, delivered or dead"),
    ] = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[DeliveryList]:
    # Checked here rather than typed as the Literal: Litestar's refusal would name the
    # handler's parameter (``delivery_state``), not the query's ``state``.
    if delivery_state is not None and delivery_state not in DELIVERY_STATES:
        raise BadRequest(
            f"state: {delivery_state!r} is not a delivery state; "
            f"valid: {', '.join(DELIVERY_STATES)}"
        )
    pool = _knm(request).pool
    await store.owner_of(pool, subscription_id)
    total, found = await outbox.list_deliveries(
        pool, subscription_id, state=delivery_state, limit=page_size, offset=offset(page, page_size)
    )
    return ok(DeliveryList(total, found))


@get(
    "/notifications/deliveries/{delivery_id:int}",
    guards=[VIEWER],
    summary="One delivery with every attempt",
)
async def get_delivery(request: Request[Any, Any, Any], delivery_id: int) -> Envelope[Delivery]:
    return ok(await outbox.get_delivery(_knm(request).pool, delivery_id))


@post(
    "/notifications/deliveries/{delivery_id:int}/redeliver",
    guards=[OPERATOR],
    status_code=200,
    summary="Send a delivery again (same idempotency key, fresh attempts)",
)
async def redeliver(request: Request[Any, Any, Any], delivery_id: int) -> Envelope[Delivery]:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        found = await outbox.get_delivery(conn, delivery_id)
        _check_owner(request, await store.owner_of(conn, found.subscription_id))
        delivery = await outbox.redeliver(conn, delivery_id)
        await knm.audit(
            request,
            "notification.delivery.redeliver",
            str(delivery_id),
            conn=conn,
            detail={"id": delivery_id, "subscription_id": found.subscription_id},
        )
    return ok(delivery, "delivery queued again")


ROUTES = [
    list_events,
    create_subscription,
    list_subscriptions,
    get_subscription,
    update_subscription,
    delete_subscription,
    test_subscription,
    list_deliveries,
    get_delivery,
    redeliver,
]
