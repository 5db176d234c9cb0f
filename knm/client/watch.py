"""Watching a task's events live: over the progress WebSocket, resumed with ``since`` after a
dropped connection (reconnects back off and are bounded), and by polling
``/tasks/{id}/events?since=`` when no WebSocket can be had (a proxy that refuses the upgrade).
Either way every event is yielded once, in ``seq`` order, and the watch ends after ``complete``.

Here are the pieces: the WebSocket's address and token (``endpoint``), one task's bookkeeping
(``WatchState``), and what a dropped connection means (``reconnect_delay``). The loops over
them are ``knm.client.watches``'s, where watching one task (``Client.watch``) is following a
list of one (``Client.watch_many``).
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from knm.client.errors import KnmError, NotFound, TransportError, Unauthorized
from knm.client.models import Event, TaskStatus
from knm.wire import CompleteEvent, now

#: Consecutive failed connection attempts before the watch gives up on the WebSocket.
MAX_ATTEMPTS = 8
#: Seconds without a message after which the event log is read over HTTP, in case a
#: notification went missing; also bounds how long a vanished server goes unnoticed.
IDLE = 10.0
#: Seconds a finished task's log may still lack its ``complete`` before the watch ends on a
#: stand-in: the server commits the end, then writes the event, and on a loaded machine the
#: second can trail the first by more than a few polls.
COMPLETE_GRACE = 10.0
#: The close code the server uses for a missing, expired or revoked token.
CLOSE_UNAUTHORIZED = 4401

_decoder = msgspec.json.Decoder(Event)


def ws_url(http_url: str, prefix: str, token: str | None = None) -> str:
    """The progress WebSocket's URL; with ``token``, carrying it as ``?token=`` (proxies may log
    that: the watch sends it as a subprotocol instead, see ``token_subprotocols``)."""
    scheme, sep, rest = http_url.partition("://")
    ws_scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    url = f"{ws_scheme}{sep}{rest}{prefix}/progress/ws"
    return url if token is None else f"{url}?token={quote(token, safe='')}"


def endpoint(client: Any) -> tuple[str, list[Any] | None]:
    """The progress WebSocket of ``client``'s server, and the subprotocols carrying its token."""
    return ws_url(client.url, client.prefix), token_subprotocols(client.token)


def token_subprotocols(token: str | None) -> list[Any] | None:
    """The token as the handshake's subprotocols (``knm``, ``base64url.bearer.knm.<token>``):
    never in a URL, so never in a proxy's access log. The server selects ``knm``."""
    if not token:
        return None
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return ["knm", f"base64url.bearer.knm.{encoded}"]


class WatchState:
    """What the watch has yielded so far and how it reconnects."""

    def __init__(self, task_id: str, since: int, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.task_id = task_id
        self.last_seq = since
        self.done = False
        self.failures = 0
        self.max_attempts = max_attempts
        self.empty_polls = 0
        #: When a poll first found the task finished with no ``complete`` in its log.
        self.finished_at: float | None = None
        self.clock: Callable[[], float] = time.monotonic

    def subscribe_message(self) -> str:
        return msgspec.json.encode(
            {"action": "subscribe", "task_id": self.task_id, "since": self.last_seq}
        ).decode()

    def accept(self, event: Event) -> bool:
        """Whether to yield ``event`` (not seen yet); notes a ``complete``."""
        if event.task_id != self.task_id or event.seq <= self.last_seq:
            return False
        self.last_seq = event.seq
        if event.type == "complete":
            self.done = True
        return True

    def on_message(self, text: str | bytes) -> tuple[Event | None, bool]:
        """The event a message carries (if new) and whether to resubscribe (``lagged``)."""
        event = _decoder.decode(text)
        if event.task_id != self.task_id:
            return None, False
        if event.type == "lagged":
            return None, True
        if event.type == "error":
            if "not found" in event.message:
                raise NotFound(event.message)
            raise KnmError(event.message, message="progress stream error", code=0)
        return (event if self.accept(event) else None), False

    def failed(self) -> float | None:
        """Seconds to wait before the next attempt, or None when attempts are exhausted."""
        self.failures += 1
        if self.failures >= self.max_attempts:
            return None
        return min(5.0, 0.2 * 2 ** (self.failures - 1)) * (0.75 + random.random() / 2)

    def connected(self) -> None:
        self.failures = 0

    def polled(self, events: list[Event], status: Callable[[], TaskStatus] | None) -> list[Event]:
        """The new events of one poll. A finished task's ``complete`` follows its end into the
        log; when the log still lacks it ``COMPLETE_GRACE`` seconds after a poll found the
        task finished (it never should), a stand-in built from its status, with the next seq,
        ends the watch."""
        fresh = [e for e in events if self.accept(e)]
        if fresh:
            self.empty_polls = 0
            return fresh
        self.empty_polls += 1
        if status is not None and self.empty_polls >= 3:
            found = status()
            if found.finished:
                moment = self.clock()
                if self.finished_at is None:
                    self.finished_at = moment
                elif moment - self.finished_at >= COMPLETE_GRACE:
                    self.done = True
                    return [complete_of(found, self.last_seq + 1)]
        return []


def complete_of(status: TaskStatus, seq: int) -> Event:
    return CompleteEvent(
        task_id=status.task_id,
        seq=seq,
        progress=100,
        message=status.message or status.status,
        data={
            "status": status.status,
            "success_count": status.success_count,
            "failed_count": status.failed_count,
        },
        timestamp=now(),
    )


def closed_unauthorized(exc: ConnectionClosed) -> Unauthorized | None:
    """The refusal a close with code 4401 means (the token), or None for any other close."""
    received = exc.rcvd
    if received is not None and received.code == CLOSE_UNAUTHORIZED:
        return Unauthorized(received.reason or "token refused")
    return None


#: What ends a connection attempt, or a connection, without ending the watch: see
#: ``reconnect_delay``.
DROPPED = (InvalidHandshake, InvalidURI, ConnectionClosed, OSError, TransportError)


def reconnect_delay(link: WatchState, exc: Exception) -> float | None:
    """After ``exc`` (one of ``DROPPED``) ended a connection or an attempt at one: seconds to
    wait before the next attempt, or None to poll the event log instead (no WebSocket at this
    address, or ``link``'s attempts are spent). A close that refuses the token raises
    ``Unauthorized``: polling with the same token would be refused too."""
    if isinstance(exc, InvalidHandshake | InvalidURI):
        return None
    if isinstance(exc, ConnectionClosed) and (refused := closed_unauthorized(exc)) is not None:
        raise refused from None
    return link.failed()
