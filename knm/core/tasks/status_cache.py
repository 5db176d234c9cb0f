"""Status answers of finished tasks, kept in the process that built them.

A terminal task never changes again (``tasks`` enforces it in SQL), so its status answer is the
same on every poll — and dashboards and ``wait()`` loops poll. Only a prune can change it
(deleting the task or its output); every prune announces itself on ``knm_pruned`` and each
process empties its cache when it hears it. Entries also expire after ``TTL`` seconds and big
answers (much output) are not kept, so the memory held stays small.

Unfinished tasks' answers are kept too, each with the :data:`~knm.core.tasks.store.Version` it
was read at, and answered again only after a cheap query finds that version unchanged: a running
task's status is polled far more often than it changes. The checks of concurrent polls share
one statement (:class:`VersionChecks`). Its ``duration`` grows with the clock: the kept bytes
are encoded again when it has grown by a second. This check asks the database on every request,
so it needs no announcement and holds across processes.

Answers are kept as the whole envelope, encoded (``envelope.ok_bytes``), and sent as they are
(``envelope.AnswerResponse``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from knm.core.envelope import ok_bytes
from knm.core.listen import Listener

#: What a status answer was read from (``store.Version``).
Version = tuple[str, int | None]

CHANNEL = "knm_pruned"
#: Answers kept at most, least recently used first out.
MAX_ENTRIES = 1024
#: Answers carrying more output text than this (characters) are not kept.
MAX_TEXT = 32 * 1024
#: Seconds an answer is kept.
TTL = 60.0


async def announce_prune(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


_encoder = msgspec.json.Encoder()


class LiveAnswer(msgspec.Struct):
    """An unfinished task's answer (``TaskStatus.to_wire()``) and what it was read from."""

    version: Version
    data: dict[str, Any]
    start_time: datetime | None
    end_time: datetime | None
    #: The last envelope sent and the ``duration`` in it.
    body: bytes = b""
    duration: int | None = None

    def encode(self) -> bytes:
        """The answer's envelope (``envelope.ok_bytes``), showing the duration as of now."""
        data = self.data
        duration = data.get("duration")
        if self.start_time is not None and "duration" in data:
            end = self.end_time or datetime.now(self.start_time.tzinfo)
            duration = max(0, int((end - self.start_time).total_seconds()))
        if not self.body or duration != self.duration:
            if duration != data.get("duration"):
                data = {**data, "duration": duration}
            self.body = ok_bytes(_encoder.encode(data))
            self.duration = duration
        return self.body


class _Batch:
    """The checks waiting for the next statement: each task id with its waiters."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[tuple[str, asyncio.Future[Version | None]]] = []


class VersionChecks:
    """ "Has this task changed?" for concurrent status polls, in one statement per round trip.

    A check joins the batch not sent yet. One statement is in flight at a time; when it
    returns, the next carries every check that arrived meanwhile — so N polls at once cost one
    round trip, not N, and an idle server sends each check at once. A check never joins a
    statement already sent: that statement's snapshot may predate a change committed just
    before the request, and the kept answer would be shown after its task changed.
    """

    def __init__(self, fetch: Callable[[list[str]], Awaitable[dict[str, Version]]]) -> None:
        #: ``store.versions_of`` on the pool: the version of each task id that exists.
        self._fetch = fetch
        self._next: _Batch | None = None
        self._sender: asyncio.Task[None] | None = None
        #: Statements sent so far.
        self.statements = 0

    async def version(self, task_id: str) -> Version | None:
        """The task's version now (None: no such task), read after this call began."""
        loop = asyncio.get_running_loop()
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
            if self._sender is None:
                self._sender = loop.create_task(self._send(), name="knm-version-checks")
        waiter: asyncio.Future[Version | None] = loop.create_future()
        batch.waiters.append((task_id, waiter))
        # A waiter of its own: a poll whose client went away cancels only its own wait.
        return await waiter

    async def _send(self) -> None:
        try:
            while (batch := self._next) is not None:
                self._next = None
                self.statements += 1
                try:
                    found = await self._fetch(list({task_id for task_id, _ in batch.waiters}))
                except Exception as exc:
                    for _, waiter in batch.waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                except BaseException:
                    self._cancel(batch)
                    raise
                for task_id, waiter in batch.waiters:
                    if not waiter.done():
                        waiter.set_result(found.get(task_id))
        finally:
            self._sender = None
            if self._next is not None:
                self._cancel(self._next)
                self._next = None

    @staticmethod
    def _cancel(batch: _Batch) -> None:
        for _, waiter in batch.waiters:
            waiter.cancel()


class StatusCache:
    def __init__(self, listener: Listener, checks: VersionChecks | None = None) -> None:
        self._listener = listener
        #: How a kept unfinished answer is checked; None: not kept (no database to ask).
        self.checks = checks
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._live: OrderedDict[str, LiveAnswer] = OrderedDict()
        self.hits = 0
        #: Unfinished tasks' answers given again after their version check.
        self.live_hits = 0
        #: Bumped by every clear: an answer read before a prune must not be kept after it.
        self.generation = 0
        listener.on(CHANNEL, lambda _payload: self.clear())
        listener.on_reset(self.clear)

    def get(self, task_id: str) -> bytes | None:
        """The cached answer's envelope, encoded."""
        if not self._listener.live:
            return None
        entry = self._entries.get(task_id)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[task_id]
            return None
        self._entries.move_to_end(task_id)
        self.hits += 1
        return entry[1]

    def put(self, task_id: str, answer: bytes, text_size: int, generation: int) -> None:
        """Keep ``answer`` unless it carries more than ``MAX_TEXT`` characters of output."""
        if not self._listener.live or generation != self.generation or text_size > MAX_TEXT:
            return
        self._entries[task_id] = (time.monotonic() + TTL, answer)
        self._entries.move_to_end(task_id)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def get_live(self, task_id: str) -> LiveAnswer | None:
        """An unfinished task's last answer: to be checked against its version before use."""
        return self._live.get(task_id)

    def put_live(self, task_id: str, answer: LiveAnswer, text_size: int) -> None:
        if text_size > MAX_TEXT or self.checks is None:
            self._live.pop(task_id, None)
            return
        self._live[task_id] = answer
        self._live.move_to_end(task_id)
        while len(self._live) > MAX_ENTRIES:
            self._live.popitem(last=False)

    def drop_live(self, task_id: str) -> None:
        self._live.pop(task_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._live.clear()
