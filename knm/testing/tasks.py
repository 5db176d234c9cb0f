"""Helpers for tests that start tasks and wait for them: on the task's own event stream.

A wait follows the task's progress events, the way a workflow step waits for its task
(``knm.core.tasks.steps.wait_for_task``), and returns as soon as the event it waits for is
logged; nothing polls or sleeps. The stream is replayed from the task's first event, so a wait
that starts after the task finished (or after the event it wants) still sees it.

- ``wait_for_task`` / ``wait_for_event`` (async): an ``ApiClient`` over an in-process app
  follows the app's progress hub; over a real server (``knm serve``) the progress WebSocket.
- ``wait_for_task_sync`` / ``wait_for_event_sync``: the progress WebSocket of a running server,
  for tests of the SDK and the CLI; ``server`` is the API's URL (``…/api/v1``) with headers, or
  an SDK client (``knm.client.Client``), whose URL and token are used.

Every wait is bounded by ``deadline`` seconds and then fails the test with what it saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from knm.testing.client import ApiClient, assert_envelope
from knm.wire import BaseEvent, Event

if TYPE_CHECKING:
    from knm.core.state import Knm

#: Seconds a wait gives a task (or an event) before failing the test: generous, because the
#: machine may be loaded; a wait returns as soon as what it waits for happens.
DEADLINE = 60.0

EventMatch = Callable[[BaseEvent], bool]

_decode = msgspec.json.Decoder(Event).decode


def is_complete(event: BaseEvent) -> bool:
    return event.type == "complete"


def event_of(type: str, **data: Any) -> EventMatch:
    """A match for an event of ``type`` whose ``data`` holds ``data`` (``step`` events of a
    workflow: ``event_of("step", step_id="gate", status="running")``)."""

    def match(event: BaseEvent) -> bool:
        found = event.data or {}
        return event.type == type and all(found.get(k) == v for k, v in data.items())

    return match


async def start_task(
    client: ApiClient,
    headers: dict[str, str],
    route: str = "test",
    path: str = "execute",
    **body: Any,
) -> dict[str, Any]:
    """POST an execute request and return the answer's ``data``."""
    response = await client.post(f"/automation/{route}/{path}", json=body, headers=headers)
    return assert_envelope(response, 200)["data"]


async def wait_for_task(
    client: ApiClient, headers: dict[str, str], task_id: str, deadline: float = DEADLINE
) -> dict[str, Any]:
    """The task's status (``GET /tasks/{id}``'s ``data``) once its ``complete`` event is logged:
    the status is written before that event, so it is final here."""
    await wait_for_event(client, headers, task_id, is_complete, deadline)
    response = await client.get(f"/tasks/{task_id}", headers=headers)
    return assert_envelope(response, 200)["data"]


async def wait_for_event(
    client: ApiClient,
    headers: dict[str, str],
    task_id: str,
    match: EventMatch,
    deadline: float = DEADLINE,
) -> BaseEvent:
    """The task's first event (from its first on) that ``match`` accepts. Fails if the task
    completes without one, or after ``deadline`` seconds."""
    knm = _in_process_knm(client)
    if knm is not None:
        return await client.on_app(_follow_hub, knm, task_id, match, deadline)
    token = _token_of(headers)
    api = f"{str(client.http.base_url).rstrip('/')}{client.prefix}"
    return await _follow_socket(api, token, task_id, match, deadline)


def wait_for_task_sync(
    server: str | Any,
    task_id: str,
    headers: dict[str, str] | None = None,
    deadline: float = DEADLINE,
) -> dict[str, Any]:
    """``wait_for_task`` for a running server: ``server`` is its API URL (``…/api/v1``, with
    ``headers`` carrying the token) or an SDK client."""
    api, token = _server_of(server, headers)
    wait_for_event_sync(server, task_id, is_complete, headers, deadline)
    response = httpx.get(
        f"{api}/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return assert_envelope(response, 200)["data"]


def wait_for_event_sync(
    server: str | Any,
    task_id: str,
    match: EventMatch,
    headers: dict[str, str] | None = None,
    deadline: float = DEADLINE,
) -> BaseEvent:
    """``wait_for_event`` for a running server (see ``wait_for_task_sync``)."""
    from websockets.sync.client import connect

    from knm.client.watch import token_subprotocols, ws_url

    api, token = _server_of(server, headers)
    follow = _Follow(task_id, match, deadline)
    url = ws_url(api, "")
    with connect(
        url, subprotocols=token_subprotocols(token), open_timeout=30, close_timeout=1,
        max_size=None,
    ) as socket:  # fmt: skip
        socket.send(follow.subscribe())
        while True:
            try:
                text = socket.recv(timeout=follow.remaining())
            except TimeoutError:
                raise follow.timed_out() from None
            found, resubscribe = follow.on_message(text)
            if resubscribe:
                socket.send(follow.subscribe())
            elif found is not None:
                return found


class _Follow:
    """One wait's bookkeeping over the WebSocket: the seq to resume from, the events seen."""

    def __init__(self, task_id: str, match: EventMatch, deadline: float) -> None:
        self.task_id = task_id
        self.match = match
        self.deadline = deadline
        self.end = time.monotonic() + deadline
        self.last_seq = 0
        self.seen: list[str] = []

    def subscribe(self) -> str:
        message = {"action": "subscribe", "task_id": self.task_id, "since": self.last_seq}
        return msgspec.json.encode(message).decode()

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> AssertionError:
        return AssertionError(
            f"task {self.task_id}: no matching event within {self.deadline} s; "
            f"saw {self.seen[-20:]}"
        )

    def on_message(self, text: str | bytes) -> tuple[BaseEvent | None, bool]:
        """The matching event a message carries, and whether to resubscribe (``lagged``)."""
        event = _decode(text)
        if event.task_id != self.task_id:
            return None, False
        if event.type == "error":
            raise AssertionError(f"task {self.task_id}: {event.message}")
        if event.type == "lagged":
            return None, True
        if event.seq <= self.last_seq:
            return None, False
        return self.on_event(event), False

    def on_event(self, event: BaseEvent) -> BaseEvent | None:
        self.last_seq = event.seq
        self.seen.append(f"{event.seq}:{event.type}")
        if self.match(event):
            return event
        if event.type == "complete":
            raise AssertionError(
                f"task {self.task_id} completed without a matching event; saw {self.seen[-20:]}"
            )
        return None


async def _follow_socket(
    api: str, token: str, task_id: str, match: EventMatch, deadline: float
) -> BaseEvent:
    from websockets.asyncio.client import connect

    from knm.client.watch import token_subprotocols, ws_url

    follow = _Follow(task_id, match, deadline)
    async with connect(
        ws_url(api, ""), subprotocols=token_subprotocols(token), open_timeout=30,
        close_timeout=1, max_size=None,
    ) as socket:  # fmt: skip
        await socket.send(follow.subscribe())
        while True:
            try:
                text = await asyncio.wait_for(socket.recv(), follow.remaining())
            except TimeoutError:
                raise follow.timed_out() from None
            found, resubscribe = follow.on_message(text)
            if resubscribe:
                await socket.send(follow.subscribe())
            elif found is not None:
                return found


async def _follow_hub(knm: Knm, task_id: str, match: EventMatch, deadline: float) -> BaseEvent:
    """On the app's loop: the task's events from its progress hub, replayed from the log first
    (as a WebSocket subscription with ``since=0`` is)."""
    from knm.core.progress import Subscriber
    from knm.core.tasks import store
    from knm.core.tasks.events import read_events

    if await store.get_task(knm.pool, task_id) is None:
        raise AssertionError(f"task {task_id} not found")

    async def read(after: int, limit: int) -> list[BaseEvent]:
        return await read_events(knm.pool, task_id, after, limit)

    follow = _Follow(task_id, match, deadline)
    subscriber = Subscriber(knm.progress)
    subscriber.replay(task_id, 0, read)
    knm.progress.subscribe(task_id, subscriber)
    try:
        while True:
            try:
                event = await asyncio.wait_for(subscriber.next_event(), follow.remaining())
            except TimeoutError:
                raise follow.timed_out() from None
            if event.type == "lagged":
                subscriber.replay(task_id, follow.last_seq, read)
                continue
            found = follow.on_event(event)
            if found is not None:
                return found
    finally:
        knm.progress.unsubscribe(task_id, subscriber)
        subscriber.close()


def _in_process_knm(client: ApiClient) -> Any:
    app = getattr(client.http, "app", None)
    state = getattr(app, "state", None)
    return None if state is None else state.get("knm")


def _token_of(headers: dict[str, str] | None) -> str:
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and value.lower().startswith("bearer "):
            return value[7:].strip()
    raise AssertionError("waiting for a task needs headers with a bearer token")


def _server_of(server: str | Any, headers: dict[str, str] | None) -> tuple[str, str]:
    """The API's URL and the token, from a URL and headers or from an SDK client."""
    if isinstance(server, str):
        return server.rstrip("/"), _token_of(headers)
    token = server.token if headers is None else _token_of(headers)
    if not token:
        raise AssertionError("the SDK client has no token: log in first")
    return f"{server.url.rstrip('/')}{server.prefix}", token


async def eventually(predicate: Callable[[], Awaitable[bool]], deadline: float = 30.0) -> None:
    """Until ``predicate()`` holds, for conditions that announce themselves with no event (a
    database going down, a pool filling up); a task's progress is waited for on its events."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


class FleetRunner:
    """Starts tasks of one executor on a cluster and runs them to their end; what the
    ``knm_fleet_runner`` fixture makes. ``target`` is anything with ``cluster_name``,
    ``credential_id`` and ``nodes`` (``knm.testing.fleet.FleetCluster``, a plugin's own fleet);
    body fields given to ``start``/``run`` override those defaults."""

    def __init__(
        self,
        client: ApiClient,
        headers: dict[str, str],
        route: str,
        target: Any,
        path: str = "execute",
        status_path: str = "/tasks/{task_id}",
        deadline: float = 90.0,
    ) -> None:
        self.client = client
        self.headers = headers
        self.route = route
        self.target = target
        self.path = path
        self.status_path = status_path
        self.deadline = deadline

    async def start(self, **body: Any) -> dict[str, Any]:
        """POST the start request; the answer's ``data`` (``task_id``, ``status``)."""
        request = {
            "cluster_name": self.target.cluster_name,
            "credential_id": self.target.credential_id,
            "target_nodes": self.target.nodes,
            **body,
        }
        return await start_task(self.client, self.headers, self.route, self.path, **request)

    async def run(self, **body: Any) -> dict[str, Any]:
        """Start, wait for the end, and return the status: ``GET /tasks/{id}``'s ``data``, or
        that of ``status_path`` (``"/automation/ansible/status/{task_id}"``)."""
        data = await self.start(**body)
        await wait_for_event(self.client, self.headers, data["task_id"], is_complete, self.deadline)
        response = await self.client.get(
            self.status_path.format(task_id=data["task_id"]), headers=self.headers
        )
        return assert_envelope(response, 200)["data"]
