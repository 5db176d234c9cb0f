"""Live progress: subscribers per task in this process, fed by the local event log and, for
tasks running in other processes, by ``LISTEN knm_events`` plus a read of the event log.

``/api/v1/progress/ws`` speaks the contract's protocol: ``subscribe``/``unsubscribe`` actions;
messages ``{task_id, type, seq, progress, message, data, timestamp}``. A slow consumer gets a
bounded queue: on overflow its progress and output events are dropped and it is told ``lagged``
with the seq to resume from; ``complete`` is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import asyncpg
import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from knm.core.auth.middleware import authenticate
from knm.core.errors import KnmError
from knm.core.tasks import store
from knm.core.tasks.events import CHANNEL, Event, now, read_events

log = logging.getLogger("knm.progress")

QUEUE_LIMIT = 2000
DROPPABLE = frozenset({"progress", "output"})
ALL = "*"


class Subscriber:
    """One WebSocket connection's view: the tasks it follows and what it still has to send."""

    def __init__(self, hub: ProgressHub | None = None, limit: int = QUEUE_LIMIT) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.limit = limit
        self.last_seq: dict[str, int] = {}
        self.lagged: set[str] = set()

    def offer(self, event: Event) -> None:
        if event.seq <= self.last_seq.get(event.task_id, 0):
            return
        if self.queue.qsize() >= self.limit and event.type in DROPPABLE:
            if self.hub is not None:
                self.hub.dropped += 1
            if event.task_id not in self.lagged:
                self.lagged.add(event.task_id)
                resume = self.last_seq.get(event.task_id, 0)
                self.queue.put_nowait(
                    Event(
                        task_id=event.task_id,
                        type="lagged",
                        seq=resume,
                        progress=event.progress,
                        message="too slow: events dropped; resubscribe with since to catch up",
                        data={"since": resume},
                        timestamp=now(),
                    )
                )
            return
        self.last_seq[event.task_id] = event.seq
        self.queue.put_nowait(event)
        if self.hub is not None:
            self.hub.delivered += 1


class ProgressHub:
    def __init__(self, pool: asyncpg.Pool, database_url_connect: Any) -> None:
        self.pool = pool
        self._connect = database_url_connect
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self._delivered: dict[str, int] = {}
        self._conn: asyncpg.Connection | None = None
        self._fetching: set[str] = set()
        self._notified: dict[str, int] = {}
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.connections = 0

    async def start(self) -> None:
        self._conn = await self._connect()
        await self._conn.add_listener(CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def subscribe(self, task_id: str, subscriber: Subscriber) -> None:
        self.subscribers[task_id].add(subscriber)

    def unsubscribe(self, task_id: str, subscriber: Subscriber) -> None:
        subs = self.subscribers.get(task_id)
        if subs is not None:
            subs.discard(subscriber)
            if not subs:
                del self.subscribers[task_id]

    def drop(self, subscriber: Subscriber) -> None:
        for task_id in list(self.subscribers):
            self.unsubscribe(task_id, subscriber)

    def deliver(self, task_id: str, events: list[Event]) -> None:
        """Hand events to every local subscriber of the task (and of every task)."""
        if not events:
            return
        self.published += len(events)
        self._delivered[task_id] = max(self._delivered.get(task_id, 0), events[-1].seq)
        targets = self.subscribers.get(task_id, set()) | self.subscribers.get(ALL, set())
        for subscriber in targets:
            for event in events:
                subscriber.offer(event)
        if events[-1].type == "complete":
            self._delivered.pop(task_id, None)
            self._notified.pop(task_id, None)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        task_id, _, seq_text = payload.rpartition(":")
        try:
            seq = int(seq_text)
        except ValueError:
            return
        if task_id not in self.subscribers and ALL not in self.subscribers:
            return
        self._notified[task_id] = max(self._notified.get(task_id, 0), seq)
        if seq <= self._delivered.get(task_id, 0) or task_id in self._fetching:
            return
        self._fetching.add(task_id)
        asyncio.get_running_loop().create_task(self._fetch(task_id))

    async def _fetch(self, task_id: str) -> None:
        # Loops until everything announced is delivered: a NOTIFY arriving during a read is
        # not lost.
        try:
            while (
                task_id in self._notified
                and self._delivered.get(task_id, 0) < self._notified[task_id]
            ):
                events = await read_events(self.pool, task_id, self._delivered.get(task_id, 0))
                if not events:
                    break
                self.deliver(task_id, events)
        except Exception:
            log.exception("reading events of %s failed", task_id)
        finally:
            self._fetching.discard(task_id)


class ClientMessage(msgspec.Struct, forbid_unknown_fields=False):
    action: str
    task_id: str = ""
    since: int | None = None


def _error(message: str, task_id: str = "") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "type": "error",
        "seq": 0,
        "progress": 0,
        "message": message,
        "data": {},
        "timestamp": now().isoformat().replace("+00:00", "Z"),
    }


async def _replay(knm: Any, subscriber: Subscriber, task_id: str, since: int) -> None:
    events = await read_events(knm.pool, task_id, since)
    for event in events:
        subscriber.offer(event)


async def _subscribe(
    knm: Any, subscriber: Subscriber, task_id: str, since: int | None
) -> str | None:
    hub: ProgressHub = knm.progress
    if task_id == ALL:
        hub.subscribe(ALL, subscriber)
        return None
    task = await store.get_task(knm.pool, task_id)
    if task is None:
        return f"task {task_id} not found"
    subscriber.last_seq[task_id] = since or 0
    subscriber.lagged.discard(task_id)
    hub.subscribe(task_id, subscriber)
    # Live events are already queued from here on; the replay fills what came before and the
    # subscriber's seq bookkeeping drops duplicates.
    await _replay(knm, subscriber, task_id, since or 0)
    return None


@websocket("/progress/ws", opt={"public": True})
async def progress_ws(socket: WebSocket[Any, Any, Any]) -> None:
    knm = socket.app.state["knm"]
    token = socket.query_params.get("token") or ""
    header = socket.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    # Accept first: a close before the handshake is an HTTP 403 that clients cannot tell apart
    # from other failures; 4401 after accepting says "your token" plainly.
    await socket.accept()
    if not token:
        await socket.close(code=4401, reason="missing token")
        return
    try:
        await authenticate(knm, token)
    except KnmError as exc:
        await socket.close(code=4401, reason=(exc.error or "unauthorized")[:120])
        return
    subscriber = Subscriber(knm.progress)
    knm.progress.connections += 1
    sender = asyncio.create_task(_send_loop(socket, subscriber))
    checker = asyncio.create_task(_token_check(knm, socket, token))
    try:
        while True:
            try:
                raw = await socket.receive_text()
            except WebSocketDisconnect:
                break
            try:
                message = msgspec.json.decode(raw, type=ClientMessage)
            except msgspec.MsgspecError:
                await socket.send_json(_error("bad message: expected {action, task_id}"))
                continue
            if message.action == "subscribe" and message.task_id:
                if message.since is not None and message.since < 0:
                    await socket.send_json(_error("since must be 0 or more", message.task_id))
                    continue
                problem = await _subscribe(knm, subscriber, message.task_id, message.since)
                if problem:
                    await socket.send_json(_error(problem, message.task_id))
            elif message.action == "unsubscribe" and message.task_id:
                knm.progress.unsubscribe(message.task_id, subscriber)
                subscriber.last_seq.pop(message.task_id, None)
            else:
                await socket.send_json(
                    _error(f"unknown action {message.action!r}", message.task_id)
                )
    finally:
        knm.progress.connections -= 1
        knm.progress.drop(subscriber)
        sender.cancel()
        checker.cancel()
        with contextlib.suppress(Exception):
            await socket.close()


_encoder = msgspec.json.Encoder()
_encoded: dict[int, tuple[Event, str]] = {}


def encoded(event: Event) -> str:
    """The event's JSON, encoded once however many subscribers send it."""
    key = id(event)
    cached = _encoded.get(key)
    if cached is not None and cached[0] is event:
        return cached[1]
    text = _encoder.encode(event).decode()
    if len(_encoded) > 50_000:
        _encoded.clear()
    _encoded[key] = (event, text)
    return text


async def _send_loop(socket: WebSocket[Any, Any, Any], subscriber: Subscriber) -> None:
    with contextlib.suppress(Exception):
        while True:
            event = await subscriber.queue.get()
            batch = [event]
            while not subscriber.queue.empty() and len(batch) < 500:
                batch.append(subscriber.queue.get_nowait())
            for item in batch:
                if item.type == "lagged":
                    subscriber.lagged.discard(item.task_id)
                await socket.send_text(encoded(item))


async def _token_check(knm: Any, socket: WebSocket[Any, Any, Any], token: str) -> None:
    # An expired or revoked token closes the stream, as it would refuse any other request.
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(5)
            try:
                await authenticate(knm, token)
            except KnmError:
                await socket.close(code=4401, reason="token expired or revoked")
                return
            except Exception:
                continue


ROUTES = [progress_ws]
