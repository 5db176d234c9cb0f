"""One LISTEN connection per process for announcements that empty in-process caches.

Caches register the channels they care about and a ``reset`` callback. The connection's loss
resets them all and marks the listener not ``live``, so caches step aside (answer from the
database) until it listens again: a missed announcement can never keep stale data served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

#: Seconds between attempts to listen again after the connection dropped.
RELISTEN_DELAY = 2.0

Callback = Callable[[str], None]


class Listener:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._channels: dict[str, list[Callback]] = {}
        self._resets: list[Callable[[], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def live(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def server_pid(self) -> int | None:
        return self._conn.get_server_pid() if self._conn is not None else None

    def on(self, channel: str, callback: Callback) -> None:
        """Call ``callback(payload)`` for each NOTIFY on ``channel`` (register before start)."""
        self._channels.setdefault(channel, []).append(callback)

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """``on`` for a listener that already listens: the channel is added to the live
        connection at once, and to every connection after it."""
        new = channel not in self._channels
        self.on(channel, callback)
        conn = self._conn
        if new and conn is not None and not conn.is_closed():
            await conn.add_listener(channel, self._dispatch)

    def on_reset(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever announcements may have been missed."""
        self._resets.append(callback)

    async def start(self) -> None:
        await self._listen()

    async def stop(self) -> None:
        self._closed = True
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(BaseException):
                await self._relisten
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        self._reset()

    def _reset(self) -> None:
        for callback in self._resets:
            callback()

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for callback in self._channels.get(channel, ()):
            callback(payload)

    def _on_lost(self, _conn: Any) -> None:
        self._conn = None
        self._reset()
        if not self._closed and self._relisten is None:
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_lost)
        # Whatever was cached before this connection listened may have missed an announcement.
        self._reset()
        self._conn = conn

    async def _listen_again(self) -> None:
        try:
            while not self._closed:
                await asyncio.sleep(RELISTEN_DELAY)
                try:
                    await self._listen()
                    return
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("cannot listen for cache announcements yet: %s", exc)
        finally:
            self._relisten = None
