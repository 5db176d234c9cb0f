"""``/api/v1/progress/ws``: the contract's WebSocket protocol over the progress hub
(``knm.core.progress``): ``subscribe``/``unsubscribe`` actions; messages ``{task_id, type, seq,
progress, message, data, timestamp}`` (as JSON arrays of them once a subscribe asked for
``"batch": true``); a token checked at the start and every 5 s after (close
code 4401 when it is missing, expired or revoked; 1013 while the database restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from knm.core.auth.middleware import authenticate, selected_subprotocol, subprotocol_token
from knm.core.bounds import BIGINT_MAX
from knm.core.db import UNAVAILABLE
from knm.core.errors import KnmError
from knm.core.progress import ALL, ProgressHub, Subscriber, encoded
from knm.core.tasks import store
from knm.core.tasks.events import Event, now, read_events
from knm.wire import ErrorEvent

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.progress")

_DATABASE_DOWN = UNAVAILABLE


class ClientMessage(msgspec.Struct, forbid_unknown_fields=False):
    action: str
    task_id: str = ""
    since: int | None = None
    #: ``true`` on a subscribe: from then on this connection sends its events as JSON arrays
    #: of them, as many as are queued (at most ``BATCH_EVENTS``): a page taking 20,000 events
    #: a second then handles a few hundred messages, not 20,000. ``false`` turns it off;
    #: clients that never ask get one event per message, as the contract has it.
    batch: bool | None = None


class AuthMessage(msgspec.Struct, forbid_unknown_fields=False):
    """The first message of a connection that brought no token: ``{"action": "auth",
    "token": "…"}``."""

    action: str
    token: str = ""


#: Events in one message at most, for a connection that asked for ``batch``.
BATCH_EVENTS = 100
#: Seconds a connection without a token has to send it in its first message.
AUTH_TIMEOUT = 10.0


async def _token_of(socket: WebSocket[Any, Any, Any]) -> str:
    """The connection's token: from ``?token=``, the Authorization header, a subprotocol, or
    (when none of them is there) the first message. Empty when missing."""
    token = socket.query_params.get("token")
    if token is not None:
        return token  # ``?token=`` given empty is a missing token, not a wait for one
    header = socket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    found = subprotocol_token(socket.scope)
    if found:
        return found
    try:
        async with asyncio.timeout(AUTH_TIMEOUT):
            raw = await socket.receive_text()
        message = msgspec.json.decode(raw, type=AuthMessage)
        return message.token if message.action == "auth" else ""
    except (TimeoutError, WebSocketDisconnect, msgspec.MsgspecError):
        return ""


def _error(message: str, task_id: str = "") -> str:
    event = ErrorEvent(task_id=task_id, seq=0, progress=0, message=message, timestamp=now())
    return encoded(event)


async def _subscribe(
    knm: Knm, subscriber: Subscriber, task_id: str, since: int | None
) -> str | None:
    hub: ProgressHub = knm.progress
    if task_id == ALL:
        hub.subscribe(ALL, subscriber)
        return None
    task = await store.get_task(knm.pool, task_id)
    if task is None:
        return f"task {task_id} not found"

    async def read(after: int, limit: int) -> list[Event]:
        return await read_events(knm.pool, task_id, after, limit)

    # Replay first, registered before its first read: live events it sees meanwhile tell it
    # how far the log must be read before the live stream takes over.
    subscriber.replay(task_id, since or 0, read)
    hub.subscribe(task_id, subscriber)
    return None


@websocket("/progress/ws", opt={"public": True})
async def progress_ws(socket: WebSocket[Any, Any, Any]) -> None:
    knm = socket.app.state["knm"]
    # Accept first: a close before the handshake is an HTTP 403 that clients cannot tell apart
    # from other failures; 4401 after accepting says "your token" plainly.
    await socket.accept(subprotocols=selected_subprotocol(socket.scope))
    try:
        token = await _token_of(socket)
    except KnmError as exc:
        await socket.close(code=4401, reason=(exc.error or "unauthorized")[:120])
        return
    if not token:
        await socket.close(code=4401, reason="missing token")
        return
    try:
        await authenticate(knm, token)
    except KnmError as exc:
        await socket.close(code=4401, reason=(exc.error or "unauthorized")[:120])
        return
    except _DATABASE_DOWN:
        # 1013, "try again later": the database is restarting; clients reconnect.
        await socket.close(code=1013, reason="database unavailable; reconnect shortly")
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
                await socket.send_text(_error("bad message: expected {action, task_id}"))
                continue
            if message.action == "subscribe" and message.task_id:
                if message.since is not None and not 0 <= message.since <= BIGINT_MAX:
                    await socket.send_text(
                        _error(f"since must be 0 to {BIGINT_MAX}", message.task_id)
                    )
                    continue
                # Set before the replay starts so its first events go out in the asked form;
                # a refused subscribe leaves the connection's mode as it was.
                was = subscriber.batch
                if message.batch is not None:
                    subscriber.batch = message.batch
                try:
                    problem = await _subscribe(knm, subscriber, message.task_id, message.since)
                except _DATABASE_DOWN as exc:
                    # The database restarting: the client subscribes again, as after a drop.
                    log.warning("subscribing to %s failed: %s", message.task_id, exc)
                    problem = "the database is unavailable; subscribe again shortly"
                if problem:
                    subscriber.batch = was
                    await socket.send_text(_error(problem, message.task_id))
            elif message.action == "unsubscribe" and message.task_id:
                knm.progress.unsubscribe(message.task_id, subscriber)
                subscriber.forget(message.task_id)
            else:
                await socket.send_text(
                    _error(f"unknown action {message.action!r}", message.task_id)
                )
    finally:
        knm.progress.connections -= 1
        knm.progress.drop(subscriber)
        subscriber.close()
        sender.cancel()
        checker.cancel()
        with contextlib.suppress(Exception):
            await socket.close()


async def _send_loop(socket: WebSocket[Any, Any, Any], subscriber: Subscriber) -> None:
    with contextlib.suppress(Exception):
        while True:
            item = await subscriber.queue.get()
            subscriber.bytes -= len(item[1])
            batch = [item]
            while not subscriber.queue.empty() and len(batch) < 500:
                batch.append(subscriber.take())
            subscriber.sent()
            for event, _ in batch:
                if event.type == "lagged":
                    subscriber.lagged.discard(event.task_id)
            if subscriber.batch:
                # Arrays of at most BATCH_EVENTS: a message a page handles in one short task.
                for at in range(0, len(batch), BATCH_EVENTS):
                    part = batch[at : at + BATCH_EVENTS]
                    await socket.send_text("[" + ",".join(text for _, text in part) + "]")
            else:
                for _, text in batch:
                    await socket.send_text(text)
            del batch, item


async def _token_check(knm: Knm, socket: WebSocket[Any, Any, Any], token: str) -> None:
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
