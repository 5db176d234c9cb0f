"""The async SDK, against knm embedded in a host's Litestar app under ``/knm`` and served by
uvicorn over loopback: every call goes through the prefix, the WebSocket too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from litestar import Litestar, get

from knm import KnmPlugin
from knm.client import AsyncClient, Client, Conflict, NotFound, Unauthorized
from knm.testing.database import TEST_ADMIN_PASSWORD, config_for_tests

PLUGIN = "knm.testing.executor:TestExecutorPlugin"
PREFIX = "/knm/api/v1"


@get("/")
async def host_home() -> dict[str, str]:
    return {"host": "yes"}


@pytest.fixture(scope="module")
def embedded(knm_database_url: str) -> Iterator[str]:
    config = config_for_tests(knm_database_url, path_prefix="/knm", plugins=[PLUGIN])
    app = Litestar(route_handlers=[host_home], plugins=[KnmPlugin(config)])
    # Port 0, read back once bound: no other process can take it between choice and bind.
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < end, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


async def test_the_async_client_runs_watches_and_reads_a_task_under_a_prefix(
    embedded: str,
) -> None:
    async with AsyncClient(embedded, prefix=PREFIX) as client:
        assert (await client.features())["automation"]["enabled"] is True
        await client.login("admin", TEST_ADMIN_PASSWORD)
        assert (await client.me()).username == "admin"
        started = await client.executor("test").start(
            {"cluster_name": "lab", "target_nodes": ["n1", "n2"], "events": 3, "echo": "hi {node}"}
        )
        events = [event async for event in client.watch(started.task_id)]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].type == "complete" and events[-1].data["status"] == "completed"
        final = await client.wait(started.task_id, timeout=30)
        assert final.success_count == 2
        chunks = [c async for c in client.stream_output(started.task_id, "n2")]
        assert b"".join(chunks) == b"hi n2\n"
        assert await client.output(started.task_id, "n1") == "hi n1\n"
        assert "knm_tasks" in await client.metrics()
        with pytest.raises(Conflict):
            await client.cancel(started.task_id)
        with pytest.raises(NotFound):
            await client.task("test-exec-1-zzzzzz")
        polled = [e async for e in client.watch(started.task_id, websocket=False)]
        assert [e.seq for e in polled] == [e.seq for e in events]


async def test_async_errors_and_login_failures(embedded: str) -> None:
    async with AsyncClient(embedded, prefix=PREFIX) as client:
        with pytest.raises(Unauthorized) as failed:
            await client.login("admin", "wrong-password")
        assert failed.value.message == "login failed"


def test_the_sync_client_works_under_the_prefix_too(embedded: str) -> None:
    with Client(embedded, prefix=PREFIX) as client:
        client.login("admin", TEST_ADMIN_PASSWORD)
        task = client.executor("test").start({"cluster_name": "lab", "target_nodes": ["n1"]})
        assert list(client.watch(task.task_id))[-1].type == "complete"
    with Client(embedded) as unprefixed, pytest.raises(NotFound):
        unprefixed.features()


async def test_an_idempotent_call_is_sent_again_on_a_connection_closed_under_it() -> None:
    import httpx

    sent: list[str] = []

    def closing_first(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if len(sent) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"data": {"ssh": True}})

    async with AsyncClient(
        "http://127.0.0.1:9", transport=httpx.MockTransport(closing_first)
    ) as client:
        assert await client.features() == {"ssh": True}
    assert sent == ["GET", "GET"]


async def test_a_post_on_a_connection_closed_under_it_is_not_sent_twice() -> None:
    import httpx

    from knm.client import TransportError
    from knm.client.calls import Call, same

    sent: list[str] = []

    def closing(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    async with AsyncClient("http://127.0.0.1:9", transport=httpx.MockTransport(closing)) as client:
        with pytest.raises(TransportError, match="disconnected"):
            await client._perform(Call("POST", "/things", same, json={}))
    assert sent == ["POST"]
