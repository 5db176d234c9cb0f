"""``/notifications``: subscriptions with write-only secrets, roles, bad input, deliveries,
redelivery, the test-send, audit, and tasks that end while their receiver hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.receivers import WebhookReceiver
from knm.testing.tasks import start_task, wait_for_task

SECRET = "whsec-route-9a7d3e"
BASE = "/notifications/subscriptions"


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    return {
        "notify_timeout": 1.0,
        "notify_lease": 4.0,
        "notify_poll": 0.1,
        "notify_backoff_base": 0.05,
        "notify_backoff_cap": 0.2,
        "notify_max_attempts": 3,
    }


@pytest.fixture(scope="module")
async def viewer(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "notify-viewer", "viewer")


@pytest.fixture(scope="module")
async def operator(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "notify-operator", "operator")


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as receiver:
        yield receiver


counter = iter(range(1, 1_000_000))


def webhook_body(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"hook-{next(counter)}",
        "events": ["task.failed"],
        "target": {"type": "webhook", "url": url, "secret": SECRET},
        **fields,
    }


async def create(
    client: ApiClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    return assert_envelope(await client.post(BASE, json=body, headers=headers), 201)["data"]


async def deliveries(
    client: ApiClient, headers: dict[str, str], sub_id: int, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{BASE}/{sub_id}/deliveries", params=params, headers=headers)
    return assert_envelope(response, 200)["data"]


async def settled(
    client: ApiClient, headers: dict[str, str], sub_id: int, count: int = 1
) -> list[dict[str, Any]]:
    for _ in range(600):
        found = (await deliveries(client, headers, sub_id))["deliveries"]
        if len(found) >= count and all(d["state"] != "pending" for d in found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the deliveries never settled")


async def test_a_subscription_keeps_its_secret_write_only_and_sealed_at_rest(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    viewer: dict[str, str],
    knm_pool: asyncpg.Pool,
) -> None:
    data = await create(knm_client, admin_headers, webhook_body("https://127.0.0.1:9/hook"))
    assert data["has_secret"] is True
    assert data["target_type"] == "webhook"
    assert data["target"] == {"url": "https://127.0.0.1:9/hook"}
    assert data["owner"] == "admin"
    answers = [
        await knm_client.get(f"{BASE}/{data['id']}", headers=viewer),
        await knm_client.get(BASE, headers=viewer),
        await knm_client.put(
            f"{BASE}/{data['id']}", json={"enabled": False}, headers=admin_headers
        ),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert SECRET not in answer.text and '"secret"' not in answer.text
    row = await knm_pool.fetchrow(
        "SELECT * FROM notification_subscriptions WHERE id = $1", data["id"]
    )
    assert row["ciphertext"] and SECRET.encode() not in bytes(row["ciphertext"])
    assert SECRET not in str(row["target"])


@pytest.mark.parametrize(
    ("change", "status", "names"),
    [
        (
            {"target": {"type": "webhook", "url": "ftp://example.com/x"}},
            422,
            ["target.url", "http"],
        ),
        ({"target": {"type": "webhook", "url": "http:///nohost"}}, 422, ["target.url"]),
        (
            {"target": {"type": "webhook", "url": "https://u:pw@127.0.0.1:9/h"}},
            422,
            ["target.url", "password"],
        ),
        ({"target": {"type": "webhook", "url": "https://127.0.0.1:99999/h"}}, 422, ["target.url"]),
        ({"events": ["task.exploded"]}, 422, ["events", "task.failed", "approval.requested"]),
        ({"events": []}, 400, ["events"]),
        ({"kinds": ["no-such-kind"]}, 422, ["kinds", "test"]),
        ({"statuses": ["weird"]}, 422, ["statuses", "failed"]),
        ({"target": {"type": "pager", "url": "https://x"}}, 400, ["type"]),
        ({"target": {"url": "https://x"}}, 400, ["type"]),
        ({"target": {"type": "slack"}}, 422, ["target.url"]),
        ({"target": {"type": "slack", "url": "javascript:alert(1)"}}, 422, ["target.url"]),
        (
            {
                "target": {
                    "type": "email",
                    "host": "smtp.example.com",
                    "from_addr": "knm@example.com",
                    "to": ["ops@example.com\r\nBcc: x@evil"],
                }
            },
            422,
            ["target.to"],
        ),
        ({"name": ""}, 400, ["name"]),
        ({"name": " padded "}, 422, ["name"]),
        ({"surprise": 1}, 400, ["surprise"]),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    change: dict[str, Any],
    status: int,
    names: list[str],
) -> None:
    body = {**webhook_body("https://127.0.0.1:9/hook"), **change}
    answer = assert_envelope(await knm_client.post(BASE, json=body, headers=admin_headers), status)
    for name in names:
        assert name in answer["error"]


async def test_a_malformed_body_or_filter_is_a_400_not_a_500(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    answer = await knm_client.post(
        BASE, content=b"{not json", headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_envelope(answer, 400)
    created = await create(knm_client, admin_headers, webhook_body("https://127.0.0.1:9/h"))
    answer = await knm_client.get(
        f"{BASE}/{created['id']}/deliveries", params={"state": "lost"}, headers=admin_headers
    )
    assert_envelope(answer, 400)
    assert_envelope(await knm_client.get(f"{BASE}/999999/deliveries", headers=admin_headers), 404)
    assert_envelope(
        await knm_client.post("/notifications/deliveries/999999/redeliver", headers=admin_headers),
        404,
    )


async def test_viewers_read_operators_change_their_own_and_admins_change_all(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    viewer: dict[str, str],
    operator: dict[str, str],
) -> None:
    url = "https://127.0.0.1:9/hook"
    assert_envelope(await knm_client.post(BASE, json=webhook_body(url), headers=viewer), 403)
    mine = await create(knm_client, operator, webhook_body(url))
    assert mine["owner"] == "notify-operator"
    theirs = await create(knm_client, admin_headers, webhook_body(url))
    for path in (f"{BASE}/{mine['id']}", f"{BASE}/{theirs['id']}"):
        assert_envelope(await knm_client.get(path, headers=viewer), 200)
        assert_envelope(await knm_client.put(path, json={"enabled": False}, headers=viewer), 403)
    assert_envelope(
        await knm_client.put(f"{BASE}/{theirs['id']}", json={"enabled": False}, headers=operator),
        403,
    )
    assert_envelope(await knm_client.delete(f"{BASE}/{theirs['id']}", headers=operator), 403)
    changed = await knm_client.put(
        f"{BASE}/{mine['id']}", json={"clusters": ["prod"]}, headers=operator
    )
    assert assert_envelope(changed, 200)["data"]["clusters"] == ["prod"]
    assert_envelope(
        await knm_client.put(
            f"{BASE}/{mine['id']}", json={"enabled": False}, headers=admin_headers
        ),
        200,
    )
    assert_envelope(await knm_client.delete(f"{BASE}/{mine['id']}", headers=operator), 200)
    assert_envelope(await knm_client.get(f"{BASE}/{mine['id']}", headers=viewer), 404)


async def test_a_changed_target_keeps_its_secret_unless_told_and_a_new_type_drops_it(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    sub = await create(knm_client, admin_headers, webhook_body("https://127.0.0.1:9/a"))
    path = f"{BASE}/{sub['id']}"

    async def put(body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        return assert_envelope(await knm_client.put(path, json=body, headers=admin_headers), status)

    kept = (await put({"target": {"type": "webhook", "url": "https://127.0.0.1:9/b"}}))["data"]
    assert (kept["target"]["url"], kept["has_secret"]) == ("https://127.0.0.1:9/b", True)
    removed = await put(
        {"target": {"type": "webhook", "url": "https://127.0.0.1:9/b", "secret": ""}}
    )
    assert removed["data"]["has_secret"] is False
    refused = await put({"target": {"type": "slack"}}, 422)
    assert "target.url" in refused["error"]
    slack = await put({"target": {"type": "slack", "url": "https://127.0.0.1:9/T/B/xyz"}})
    assert slack["data"]["has_secret"] is True and slack["data"]["target"] == {}
    assert "xyz" not in str(slack)


async def test_every_change_is_audited_without_its_secret(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    sub = await create(knm_client, admin_headers, webhook_body("https://127.0.0.1:9/audit"))
    path = f"{BASE}/{sub['id']}"
    assert_envelope(
        await knm_client.put(
            path,
            json={
                "target": {
                    "type": "webhook",
                    "url": "https://127.0.0.1:9/audit",
                    "secret": "rotated-secret-55",
                }
            },
            headers=admin_headers,
        ),
        200,
    )
    assert_envelope(await knm_client.delete(path, headers=admin_headers), 200)
    response = await knm_client.get(
        "/audit", params={"target": sub["name"], "page_size": 100}, headers=admin_headers
    )
    entries = assert_envelope(response, 200)["data"]["entries"]
    assert {e["action"] for e in entries} == {
        "notification.subscription.create",
        "notification.subscription.update",
        "notification.subscription.delete",
    }
    assert SECRET not in response.text and "rotated-secret-55" not in response.text


async def test_a_failed_task_reaches_the_receiver_signed_retried_logged_and_redeliverable(
    knm_client: ApiClient, admin_headers: dict[str, str], hook: WebhookReceiver
) -> None:
    hook.plan = [500]
    sub = await create(
        knm_client,
        admin_headers,
        webhook_body(
            hook.url, events=["task.failed", "node.failed"], kinds=["test"], clusters=["lab"]
        ),
    )
    task = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"], fail_nodes=["n2"]
    )
    assert (await wait_for_task(knm_client, admin_headers, task["task_id"]))["status"] == "failed"
    found = await settled(knm_client, admin_headers, sub["id"], count=2)
    by_event = {d["event"]: d for d in found}
    assert set(by_event) == {"task.failed", "node.failed"}
    failed = by_event["task.failed"]
    assert failed["state"] == "delivered"
    assert failed["payload"]["data"]["task_id"] == task["task_id"]
    assert by_event["node.failed"]["payload"]["data"]["node"] == "n2"
    codes = sorted(a["status_code"] for d in found for a in d["attempt_log"])
    assert codes == [200, 200, 500]
    assert all(seen.signature_ok for seen in hook.snapshot())

    def sent(key: str) -> int:
        return [s.headers["idempotency-key"] for s in hook.snapshot()].count(key)

    before = sent(failed["idempotency_key"])
    assert before == len(failed["attempt_log"])
    again = await knm_client.post(
        f"/notifications/deliveries/{failed['id']}/redeliver", headers=admin_headers
    )
    assert assert_envelope(again, 200)["data"]["state"] == "pending"
    for _ in range(600):
        if sent(failed["idempotency_key"]) == before + 1:
            break
        await asyncio.sleep(0.05)
    assert sent(failed["idempotency_key"]) == before + 1
    one = await knm_client.get(f"/notifications/deliveries/{failed['id']}", headers=admin_headers)
    assert assert_envelope(one, 200)["data"]["idempotency_key"] == failed["idempotency_key"]
    delivered = await deliveries(knm_client, admin_headers, sub["id"], state="delivered")
    assert delivered["total"] == 2


async def test_a_task_outside_the_filters_sends_nothing(
    knm_client: ApiClient, admin_headers: dict[str, str], hook: WebhookReceiver
) -> None:
    sub = await create(knm_client, admin_headers, webhook_body(hook.url, clusters=["prod"]))
    task = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"], fail_nodes=["n1"]
    )
    await wait_for_task(knm_client, admin_headers, task["task_id"])
    assert (await deliveries(knm_client, admin_headers, sub["id"]))["total"] == 0


async def test_the_test_send_reaches_the_receiver(
    knm_client: ApiClient, admin_headers: dict[str, str], hook: WebhookReceiver
) -> None:
    sub = await create(knm_client, admin_headers, webhook_body(hook.url, enabled=False))
    sent = await knm_client.post(f"{BASE}/{sub['id']}/test", headers=admin_headers)
    assert assert_envelope(sent, 201)["data"]["event"] == "notification.test"
    [delivery] = await settled(knm_client, admin_headers, sub["id"])
    assert delivery["state"] == "delivered"
    [seen] = hook.snapshot()
    assert seen.json()["event"] == "notification.test" and seen.signature_ok


async def test_tasks_end_while_their_receiver_hangs(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    with WebhookReceiver(then="hang") as hanging:
        await create(
            knm_client, admin_headers, webhook_body(hanging.url, events=["task.completed"])
        )
        first = await start_task(knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"])
        await wait_for_task(knm_client, admin_headers, first["task_id"])
        for _ in range(600):
            if hanging.snapshot():
                break
            await asyncio.sleep(0.05)
        assert hanging.snapshot(), "the receiver never got the first notification"
        # The receiver holds the first delivery open; the next task runs to its end regardless.
        second = await start_task(
            knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"]
        )
        status = await wait_for_task(knm_client, admin_headers, second["task_id"])
        assert status["status"] == "completed"


async def test_the_event_names_are_listed(knm_client: ApiClient, viewer: dict[str, str]) -> None:
    events = assert_envelope(await knm_client.get("/notifications/events", headers=viewer), 200)
    assert "task.failed" in events["data"]["events"]
    assert "notification.test" not in events["data"]["events"]
