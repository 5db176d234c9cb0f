"""Status answers of finished tasks, kept in the process that built them.

A terminal task never changes again (``tasks`` enforces it in SQL), so its status answer is the
same on every poll — and dashboards and ``wait()`` loops poll. Only a prune can change it
(deleting the task or its output); every prune announces itself on ``knm_pruned`` and each
process empties its cache when it hears it. Entries also expire after ``TTL`` seconds and big
answers (much output) are not kept, so the memory held stays small.

Unfinished tasks' answers are kept too, each with the :data:`~knm.core.tasks.store.Version` it
was read at, and answered again only after one cheap query finds that version unchanged
(``store.version_of``): a running task's status is polled far more often than it changes. Its
``duration`` grows with the clock, so it is recomputed on every answer. This check asks the
database every time, so it needs no announcement and holds across processes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from knm.core.listen import Listener

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

    version: tuple[str, int | None]
    data: dict[str, Any]
    start_time: datetime | None
    end_time: datetime | None

    def encode(self) -> msgspec.Raw:
        data = self.data
        if self.start_time is not None and "duration" in data:
            end = self.end_time or datetime.now(self.start_time.tzinfo)
            data = {**data, "duration": max(0, int((end - self.start_time).total_seconds()))}
        return msgspec.Raw(_encoder.encode(data))


class StatusCache:
    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._entries: OrderedDict[str, tuple[float, msgspec.Raw]] = OrderedDict()
        self._live: OrderedDict[str, LiveAnswer] = OrderedDict()
        self.hits = 0
        #: Unfinished tasks' answers given again after their version check.
        self.live_hits = 0
        #: Bumped by every clear: an answer read before a prune must not be kept after it.
        self.generation = 0
        listener.on(CHANNEL, lambda _payload: self.clear())
        listener.on_reset(self.clear)

    def get(self, task_id: str) -> msgspec.Raw | None:
        """The cached answer, encoded."""
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

    def put(self, task_id: str, answer: msgspec.Raw, text_size: int, generation: int) -> None:
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
        if text_size > MAX_TEXT:
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
