"""Following tasks' events live, one task or several on one progress WebSocket: the server
takes any number of ``subscribe`` actions on a connection, so a workflow and each of its steps'
child tasks need one socket, not one each, and no thread.

``WatchBook`` holds one ``WatchState`` per task (``knm.client.watch``: every event once, in
``seq`` order per task, resumed with ``since`` after a drop, by polling when no WebSocket can
be had); tasks may be added while it is being iterated. ``Watches`` (``Client.watch_many``) and
``AsyncWatches`` (``AsyncClient.watch_many``) are the two loops over it, and watching one task
(``Client.watch``, ``AsyncClient.watch``) is following a list of one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from knm.client.errors import TransportError
from knm.client.models import Event
from knm.client.watch import DROPPED, IDLE, WatchState, endpoint, reconnect_delay

if TYPE_CHECKING:
    from knm.client.aio import AsyncClient
    from knm.client.sync import Client


class WatchBook:
    """The tasks followed through ``client``: what each has yielded so far, and what the
    connection must send next. ``interval`` is the pause between polls of the event logs when
    no WebSocket can be had; ``websocket=False`` polls from the start."""

    def __init__(
        self,
        client: Any,
        task_ids: Iterable[str] = (),
        *,
        since: int = 0,
        interval: float = 0.5,
        websocket: bool = True,
    ) -> None:
        self.client = client
        self.interval = interval
        self.websocket = websocket
        self.states: dict[str, WatchState] = {}
        #: Tasks added since the connection last subscribed them.
        self._unsent: list[str] = []
        #: Finished tasks the server still counts among this connection's subscriptions.
        self._finished: list[str] = []
        #: The connection's reconnects, counted and backed off once for all tasks followed.
        self.link = WatchState("", 0)
        for task_id in task_ids:
            self.add(task_id, since=since)

    def add(self, task_id: str, *, since: int = 0) -> None:
        """Follow ``task_id`` too, from the event after ``since``; a task already followed is
        left as it is."""
        if task_id not in self.states:
            self.states[task_id] = WatchState(task_id, since)
            self._unsent.append(task_id)

    def discard(self, task_id: str) -> None:
        """Stop following ``task_id`` before its ``complete`` (nothing when it is not
        followed); the iteration ends without waiting for it."""
        state = self.states.pop(task_id, None)
        if state is None:
            return
        if task_id in self._unsent:
            self._unsent.remove(task_id)
        else:
            self._finished.append(task_id)

    def following(self) -> list[str]:
        """The tasks followed that have not sent their ``complete`` yet."""
        return [state.task_id for state in self.open()]

    def last_seq(self, task_id: str) -> int:
        """The ``seq`` of the last event of ``task_id`` yielded (``since`` before any)."""
        return self.states[task_id].last_seq

    @property
    def done(self) -> bool:
        """Whether every task followed has sent its ``complete``."""
        return all(state.done for state in self.states.values())

    def open(self) -> list[WatchState]:
        return [state for state in self.states.values() if not state.done]

    def connecting(self) -> None:
        """A new connection knows no subscription: every open task is subscribed again."""
        self._unsent = [state.task_id for state in self.open()]
        self._finished.clear()

    def messages(self) -> list[str]:
        """What to send before the next read: new subscriptions, then goodbyes to finished
        tasks (a long workflow's old steps would otherwise stay in the server's books)."""
        sent = [self.states[task_id].subscribe_message() for task_id in self._unsent]
        sent += [
            msgspec.json.encode({"action": "unsubscribe", "task_id": task_id}).decode()
            for task_id in self._finished
        ]
        self._unsent.clear()
        self._finished.clear()
        return sent

    def received(self, text: str | bytes) -> list[Event]:
        """The new event a message carries, if any (a ``lagged`` resubscribes its task)."""
        self.link.connected()
        task_id = msgspec.json.decode(text, type=_Addressed).task_id
        state = self.states.get(task_id)
        if state is None or state.done:
            return []
        event, resubscribe = state.on_message(text)
        if resubscribe:
            self._unsent.append(task_id)
        return [] if event is None else self.noted([event])

    def noted(self, events: list[Event]) -> list[Event]:
        self._finished += [event.task_id for event in events if event.type == "complete"]
        return events


class Watches(WatchBook):
    """The events of several tasks, interleaved as the server sends them, each task's in ``seq``
    order and each event once; iteration ends once every task followed has sent its
    ``complete``. ``add`` follows one more task, also from inside the ``for`` loop (it is
    subscribed before the next event is read). Iterating again after an interruption (a
    ``KeyboardInterrupt``, a ``break``) carries on where each task stopped.

    Use it as a context manager, or call ``close``, so that a loop left early closes its
    connection at once rather than when the garbage collector finds it."""

    client: Client
    _running: Generator[Event, None, None] | None = None

    def __iter__(self) -> Generator[Event, None, None]:
        self.close()
        self._running = self._events()
        return self._running

    def __enter__(self) -> Watches:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the iteration in progress, if any, and close its connection."""
        running, self._running = self._running, None
        if running is not None:
            running.close()

    def _events(self) -> Generator[Event, None, None]:
        from websockets.sync.client import connect

        client = self.client
        url, protocols = endpoint(client)
        # wss: the client's own TLS settings (``verify``), not websockets' defaults.
        tls = getattr(client._http, "ssl_context", None) if url.startswith("wss:") else None
        while self.websocket and not self.done:
            self.connecting()
            try:
                with connect(
                    url, ssl=tls, subprotocols=protocols, open_timeout=10, close_timeout=1,
                    max_size=None,
                ) as socket:  # fmt: skip
                    while not self.done:
                        for message in self.messages():
                            socket.send(message)
                        try:
                            text = socket.recv(timeout=IDLE)
                        except TimeoutError:
                            # Quiet for a while: read the logs, in case a notification was lost.
                            for state in self.open():
                                events = client.events(state.task_id, since=state.last_seq)
                                yield from self.noted(state.polled(events, None))
                            continue
                        yield from self.received(text)
                return
            except DROPPED as exc:
                delay = reconnect_delay(self.link, exc)
            if delay is None:
                break  # no WebSocket here, or no more attempts: poll instead
            time.sleep(delay)
        yield from self._poll()

    def _poll(self) -> Generator[Event, None, None]:
        client = self.client
        self.link.failures = 0
        while not self.done:
            moved = False
            try:
                for state in self.open():
                    events = client.events(state.task_id, since=state.last_seq)
                    fresh = state.polled(events, lambda s=state: client.task(s.task_id))
                    moved = moved or bool(fresh)
                    yield from fresh
            except TransportError:
                delay = self.link.failed()
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            self.link.connected()
            if not moved and not self.done:
                time.sleep(self.interval)


class AsyncWatches(WatchBook):
    """``Watches`` for ``AsyncClient``: ``async for``, ``async with``, ``aclose``."""

    client: AsyncClient
    _running: AsyncGenerator[Event, None] | None = None

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        # The one left, if any, closes when collected: ``aclose`` first to close it at once.
        self._running = self._events()
        return self._running

    async def __aenter__(self) -> AsyncWatches:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the iteration in progress, if any, and close its connection."""
        running, self._running = self._running, None
        if running is not None:
            await running.aclose()

    async def _events(self) -> AsyncGenerator[Event, None]:
        from websockets.asyncio.client import connect

        client = self.client
        url, protocols = endpoint(client)
        while self.websocket and not self.done:
            self.connecting()
            try:
                async with connect(
                    url, subprotocols=protocols, open_timeout=10, close_timeout=1, max_size=None
                ) as socket:
                    while not self.done:
                        for message in self.messages():
                            await socket.send(message)
                        try:
                            text = await asyncio.wait_for(socket.recv(), IDLE)
                        except TimeoutError:
                            for state in self.open():
                                events = await client.events(state.task_id, since=state.last_seq)
                                for event in self.noted(state.polled(events, None)):
                                    yield event
                            continue
                        for event in self.received(text):
                            yield event
                return
            except DROPPED as exc:
                delay = reconnect_delay(self.link, exc)
            if delay is None:
                break
            await asyncio.sleep(delay)
        self.link.failures = 0
        while not self.done:
            moved = False
            try:
                for state in self.open():
                    events = await client.events(state.task_id, since=state.last_seq)
                    found = None
                    if not events and state.empty_polls >= 2:
                        found = await client.task(state.task_id)
                    fresh = state.polled(events, None if found is None else lambda f=found: f)
                    moved = moved or bool(fresh)
                    for event in fresh:
                        yield event
            except TransportError:
                delay = self.link.failed()
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            self.link.connected()
            if not moved and not self.done:
                await asyncio.sleep(self.interval)


class _Addressed(msgspec.Struct):
    """Just the task a message is about, to pick whose state reads it."""

    task_id: str = ""
