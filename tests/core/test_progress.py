"""The WebSocket progress stream, on a real server over loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
import websockets

from knm.core.progress_route import BATCH_EVENTS
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.tasks import eventually, wait_for_task_sync

PLUGIN = "knm.testing.executor:TestExecutorPlugin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Any:
    proc = KnmProcess(
        tmp_path_factory.mktemp("ws"), knm_database_url, ["serve"], {"KNM_PLUGINS": PLUGIN}
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token(server: KnmProcess) -> str:
    response = httpx.post(
        f"{server.api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    return response.json()["data"]["token"]


def ws_url(server: KnmProcess, token: str) -> str:
    return f"ws://127.0.0.1:{server.port}/api/v1/progress/ws?token={token}"


async def start(server: KnmProcess, token: str, **body: Any) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.api}/automation/test/execute",
            json={"cluster_name": "lab", "target_nodes": ["n1", "n2"], **body},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return response.json()["data"]["task_id"]


async def collect(socket: Any, task_id: str, deadline: float = 30) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(deadline):
        while True:
            message = json.loads(await socket.recv())
            if message["task_id"] != task_id:
                continue
            messages.append(message)
            if message["type"] == "complete":
                return messages


async def test_a_subscriber_sees_every_event_in_order_and_one_complete(
    server: KnmProcess, token: str
) -> None:
    async with websockets.connect(ws_url(server, token)) as socket:
        task_id = await start(server, token, sleep=0.5, events=5, echo="hi {node}")
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": 0}))
        messages = await collect(socket, task_id)
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(0 <= m["progress"] <= 100 for m in messages)
    assert [m["type"] for m in messages].count("complete") == 1
    assert messages[-1]["data"]["status"] == "completed"
    assert {m["type"] for m in messages} >= {"progress", "node", "output", "complete"}
    assert all(isinstance(m["message"], str) and isinstance(m["data"], dict) for m in messages)
    output = next(m for m in messages if m["type"] == "output")
    assert output["message"] == f"output from {output['data']['node']} (stdout)"


async def test_subscribing_to_a_finished_task_replays_it(server: KnmProcess, token: str) -> None:
    task_id = await start(server, token, fail_nodes=["n2"])
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.to_thread(wait_for_task_sync, server.api, task_id, headers)
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        messages = await collect(socket, task_id)
    assert messages[-1]["data"]["status"] == "failed"
    assert messages[0]["seq"] == 1


async def test_since_skips_what_the_client_already_has(server: KnmProcess, token: str) -> None:
    task_id = await start(server, token, events=4)
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        everything = await collect(socket, task_id)
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id, "since": 3}))
        rest = await collect(socket, task_id)
    assert [m["seq"] for m in rest] == [m["seq"] for m in everything if m["seq"] > 3]


async def test_a_batch_subscriber_gets_every_event_once_in_order_in_arrays(
    server: KnmProcess, token: str
) -> None:
    # Finished first: its replay queues events faster than they are sent, so arrays fill.
    task_id = await start(server, token, events=300, echo="hi {node}")
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.to_thread(wait_for_task_sync, server.api, task_id, headers)
    arrays: list[list[dict[str, Any]]] = []
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id, "batch": True}))
        async with asyncio.timeout(30):
            while not arrays or arrays[-1][-1]["type"] != "complete":
                message = json.loads(await socket.recv())
                assert isinstance(message, list), message
                arrays.append(message)
        # An answer to a bad message is still one object, not an array.
        await socket.send(json.dumps({"action": "dance"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "error"
    events = [event for array in arrays for event in array]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert len(events) > 300
    assert [event["type"] for event in events].count("complete") == 1
    assert all(1 <= len(array) <= BATCH_EVENTS for array in arrays)
    assert max(len(array) for array in arrays) > 1


async def test_batch_false_goes_back_to_one_event_a_message(server: KnmProcess, token: str) -> None:
    first, second = await start(server, token, events=5), await start(server, token, events=5)
    headers = {"Authorization": f"Bearer {token}"}
    for task_id in (first, second):
        await asyncio.to_thread(wait_for_task_sync, server.api, task_id, headers)
    async with websockets.connect(ws_url(server, token)) as socket:
        subscribe = {"action": "subscribe", "task_id": first, "batch": True}
        await socket.send(json.dumps(subscribe))
        async with asyncio.timeout(30):
            while (message := json.loads(await socket.recv()))[-1]["type"] != "complete":
                assert isinstance(message, list)
        await socket.send(json.dumps({"action": "subscribe", "task_id": second, "batch": False}))
        messages = await collect(socket, second)
    assert all(isinstance(message, dict) for message in messages)
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))


async def test_a_refused_batch_subscribe_leaves_the_connection_sending_single_events(
    server: KnmProcess, token: str
) -> None:
    task_id = await start(server, token, events=5)
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.to_thread(wait_for_task_sync, server.api, task_id, headers)
    async with websockets.connect(ws_url(server, token)) as socket:
        for refused in (
            {"action": "subscribe", "task_id": "test-exec-1-zzzzzz", "batch": True},
            {"action": "subscribe", "task_id": task_id, "since": -1, "batch": True},
        ):
            await socket.send(json.dumps(refused))
            reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert isinstance(reply, dict) and reply["type"] == "error", reply
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        messages = await collect(socket, task_id)
    assert all(isinstance(message, dict) for message in messages)
    assert messages[-1]["type"] == "complete"


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        json.dumps({"action": "dance", "task_id": "x"}),
        json.dumps({"task_id": "x"}),
        json.dumps({"action": "subscribe", "task_id": "test-exec-1-zzzzzz"}),
        json.dumps({"action": "subscribe", "task_id": "test-exec-1-zzzzzz", "since": 2**63}),
        json.dumps({"action": "subscribe", "task_id": "*", "since": 10**30}),
        json.dumps([1, 2]),
        json.dumps({"action": "subscribe", "task_id": "*", "batch": "yes"}),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_stays_open(
    server: KnmProcess, token: str, message: str
) -> None:
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(message)
        reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert reply["type"] == "error" and reply["progress"] == 0
        task_id = await start(server, token)
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        assert (await collect(socket, task_id))[-1]["type"] == "complete"


@pytest.mark.parametrize("bad", ["", "forged", "knm_nope"])
async def test_a_bad_token_closes_the_socket_with_4401(server: KnmProcess, bad: str) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/api/v1/progress/ws?token={bad}"
    ) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def bare_url(server: KnmProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/api/v1/progress/ws"


def k8s_style(token: str) -> str:
    return "base64url.bearer.knm." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "protocols",
    [
        lambda token: ["knm", k8s_style(token)],
        lambda token: ["bearer", token],
    ],
    ids=["base64url.bearer.knm", "bearer-then-token"],
)
async def test_the_token_can_come_in_a_subprotocol_and_is_never_echoed(
    server: KnmProcess, token: str, protocols: Any
) -> None:
    offered = protocols(token)
    async with websockets.connect(bare_url(server), subprotocols=offered) as socket:
        assert socket.subprotocol == offered[0]
        task_id = await start(server, token)
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        assert (await collect(socket, task_id))[-1]["type"] == "complete"


async def test_the_token_can_come_in_the_first_message(server: KnmProcess, token: str) -> None:
    async with websockets.connect(bare_url(server)) as socket:
        await socket.send(json.dumps({"action": "auth", "token": token}))
        task_id = await start(server, token)
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        assert (await collect(socket, task_id))[-1]["type"] == "complete"


@pytest.mark.parametrize(
    "first",
    [
        json.dumps({"action": "subscribe", "task_id": "*"}),
        json.dumps({"action": "auth", "token": "forged"}),
        "not json",
    ],
)
async def test_a_first_message_without_a_good_token_closes_the_socket_with_4401(
    server: KnmProcess, first: str
) -> None:
    async with websockets.connect(bare_url(server)) as socket:
        await socket.send(first)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_query_token_never_reaches_the_log(server: KnmProcess, token: str) -> None:
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(json.dumps({"action": "dance"}))
        await asyncio.wait_for(socket.recv(), 10)

    async def logged() -> bool:
        return "progress/ws?token=[redacted]" in server.log()

    await eventually(logged)
    assert token not in server.log()
    assert token.split(".")[-1] not in server.log()


async def test_a_star_subscription_sees_every_task(server: KnmProcess, token: str) -> None:
    async with websockets.connect(ws_url(server, token)) as socket:
        await socket.send(json.dumps({"action": "subscribe", "task_id": "*"}))
        # A subscription is not acknowledged, but the server reads a connection's messages in
        # order: once a later message is answered, the ``*`` subscription is in place.
        await socket.send(json.dumps({"action": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "error"
        task_id = await start(server, token)
        messages = await collect(socket, task_id)
    assert messages[-1]["type"] == "complete"
