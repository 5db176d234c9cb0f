"""Live progress: subscribers per task in this process, fed by the local event log and, for
tasks running in other processes, by ``LISTEN knm_events`` plus a read of the event log.

A slow consumer gets a bounded queue: on overflow its progress and output events are dropped
and it is told ``lagged`` with the seq to resume from; ``complete`` is never dropped. A
subscription (with or without ``since``) is replayed from the log in PostgreSQL, paced by the
client, before the live stream takes over; nothing but a cursor per task is kept for it. The
WebSocket that serves subscribers is ``knm.core.progress_route``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec

from knm.core.db import UNAVAILABLE
from knm.core.listen import Listener
from knm.core.tasks.events import CHANNEL, MAX_BATCH, Event, now, read_events
from knm.wire import LaggedEvent

log = logging.getLogger("knm.progress")

#: Events a subscriber may have queued: two seconds of a task streaming 20,000 a second. The
#: event log hands the hub what it wrote in one go (up to ``MAX_BATCH`` events), all offered
#: before the sender runs, and the sender shares its process with the tasks producing them: at
#: 2,000 a page that kept up on average was told it lagged within a second, and its replays
#: then fell behind the live stream again (measured: ``bench/console.py``). The memory is
#: bounded by ``QUEUE_BYTES`` too (the texts are the hub's, shared by every subscriber).
QUEUE_LIMIT = 8 * MAX_BATCH
#: Seconds back a ``*`` subscriber's catch-up looks for events after LISTEN was lost: the
#: database was down or the connection was being made again, rarely longer than this.
RESYNC_WINDOW = 300.0
#: Ended tasks whose last seq the hub remembers (``ProgressHub._ended``).
ENDED_KEPT = 4096
_DATABASE_DOWN = UNAVAILABLE
#: Bytes of JSON a subscriber may have queued (events of a fast task are ~25 KB each).
QUEUE_BYTES = 16 << 20
DROPPABLE = frozenset({"progress", "output"})
ALL = "*"
#: Events read from the log per round trip of a replay (at most what the queue has room for).
REPLAY_BATCH = 1000

_encoder = msgspec.json.Encoder()


def encoded(event: Event) -> str:
    """The event's JSON (the hub encodes each event once, however many subscribers send it)."""
    return _encoder.encode(event).decode()


Reader = Callable[[int, int], Awaitable[list[Event]]]


class Subscriber:
    """One WebSocket connection's view: the tasks it follows and what it still has to send.

    Per task it keeps only a cursor (``last_seq``, the seq to resume from); what it queues are
    the hub's events, shared with every other subscriber and released once sent. A task
    subscribed with ``since`` is first *replayed* from the log in PostgreSQL, read as fast as
    the client takes it; live events of that task are not queued meanwhile, only the highest
    seq among them is noted, and the replay hands over to the live stream only once the log
    has been read to the end and past that seq. (Queuing live events during the replay made
    the replay's older events look like duplicates: they were skipped, issue #16.)
    """

    def __init__(self, hub: ProgressHub | None = None, limit: int = QUEUE_LIMIT) -> None:
        self.hub = hub
        self.queue: asyncio.Queue[tuple[Event, str]] = asyncio.Queue()
        self.limit = limit
        self.byte_limit = QUEUE_BYTES
        #: Bytes of JSON queued and not yet taken by the sender.
        self.bytes = 0
        self.last_seq: dict[str, int] = {}
        self.lagged: set[str] = set()
        #: Send what is queued together, as one JSON array (the client asked: ``batch``).
        self.batch = False
        #: Tasks being replayed from the log, and the highest live seq seen meanwhile.
        self.replaying: dict[str, int] = {}
        self._replays: dict[str, asyncio.Task[None]] = {}
        self._room = asyncio.Event()

    def offer(self, event: Event, text: str | None = None) -> None:
        """A live event (or a replayed one, from ``_put``)."""
        task_id = event.task_id
        if task_id in self.replaying:
            self.replaying[task_id] = max(self.replaying[task_id], event.seq)
            return
        if event.seq <= self.last_seq.get(task_id, 0):
            return
        if self.full() and event.type in DROPPABLE:
            if self.hub is not None:
                self.hub.dropped += 1
            if task_id not in self.lagged:
                self.lagged.add(task_id)
                self._lag(task_id, event.progress)
            return
        self._put(event, text)

    def _put(self, event: Event, text: str | None) -> None:
        self.last_seq[event.task_id] = event.seq
        text = text if text is not None else encoded(event)
        self.bytes += len(text)
        self.queue.put_nowait((event, text))
        if self.hub is not None:
            self.hub.delivered += 1

    def _lag(self, task_id: str, progress: int) -> None:
        if self.hub is not None:
            self.hub.lagged += 1
        resume = self.last_seq.get(task_id, 0)
        lagged = LaggedEvent(
            task_id=task_id,
            seq=resume,
            progress=progress,
            message="too slow: events dropped; resubscribe with since to catch up",
            data={"since": resume},
            timestamp=now(),
        )
        self.queue.put_nowait((lagged, encoded(lagged)))

    def replay(self, task_id: str, since: int, read: Reader) -> asyncio.Task[None]:
        """Follow ``task_id`` from ``since``: the log first, then (once caught up) live.
        Call before the hub hands this subscriber the task's live events."""
        self.forget(task_id)
        self.last_seq[task_id] = since
        self.replaying[task_id] = since
        job = asyncio.get_running_loop().create_task(self._replay(task_id, read))
        self._replays[task_id] = job
        job.add_done_callback(lambda done: self._finished(task_id, done))
        return job

    def _finished(self, task_id: str, job: asyncio.Task[None]) -> None:
        if self._replays.get(task_id) is job:
            del self._replays[task_id]

    async def _replay(self, task_id: str, read: Reader) -> None:
        try:
            while True:
                while self.full():
                    self._room.clear()
                    await self._room.wait()
                want = min(REPLAY_BATCH, self.limit - self.queue.qsize())
                events = await read(self.last_seq[task_id], want)
                for event in events:
                    self._put(event, None)
                # Every event the hub handed out before this subscriber was registered was
                # committed before the read began; those handed out since are noted in
                # ``replaying``. Caught up once the read came back short and past them all.
                if len(events) < want and self.last_seq[task_id] >= self.replaying[task_id]:
                    del self.replaying[task_id]
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("replaying the events of %s failed", task_id)
            self.replaying.pop(task_id, None)
            self.lagged.add(task_id)
            self._lag(task_id, 0)

    def full(self) -> bool:
        return self.queue.qsize() >= self.limit or self.bytes >= self.byte_limit

    async def next_event(self) -> Event:
        """The next queued event, waiting for one (for in-process followers, such as a
        workflow waiting for its step's task)."""
        event, text = await self.queue.get()
        self.bytes -= len(text)
        self.sent()
        return event

    def take(self) -> tuple[Event, str]:
        """The next queued event and its JSON (the queue must not be empty)."""
        item = self.queue.get_nowait()
        self.bytes -= len(item[1])
        return item

    def sent(self) -> None:
        """The sender took events off the queue: a waiting replay may read on."""
        if not self.full():
            self._room.set()

    def forget(self, task_id: str) -> None:
        """Stop following ``task_id`` (its replay included)."""
        job = self._replays.pop(task_id, None)
        if job is not None:
            job.cancel()
        self.replaying.pop(task_id, None)
        self.lagged.discard(task_id)
        self.last_seq.pop(task_id, None)

    def close(self) -> None:
        for task_id in list(self._replays):
            self.forget(task_id)


class ProgressHub:
    def __init__(self, pool: asyncpg.Pool, listener: Listener | None = None) -> None:
        self.pool = pool
        self.listener = listener
        self._resyncing: asyncio.Task[None] | None = None
        self.subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self._delivered: dict[str, int] = {}
        self._fetching: set[str] = set()
        self._notified: dict[str, int] = {}
        #: The last seq of the tasks whose ``complete`` went out here (the latest ones): the
        #: NOTIFY of that last batch comes after it was handed out, and used to send the hub
        #: reading the task's whole log back (3,000 events after a 1,000-node task) only to
        #: find nothing new.
        self._ended: dict[str, int] = {}
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        #: ``lagged`` notices sent (one per subscriber and task each time it falls behind).
        self.lagged = 0
        self.connections = 0

    async def start(self) -> None:
        # The process's one LISTEN connection: it listens again after the database restarts,
        # and its reset tells us that announcements may have been missed meanwhile.
        assert self.listener is not None
        await self.listener.subscribe(CHANNEL, self._on_payload)
        self.listener.on_reset(self._missed)

    async def stop(self) -> None:
        job = self._resyncing
        if job is not None:
            job.cancel()
            with contextlib.suppress(BaseException):
                await job

    def _missed(self) -> None:
        if not self.subscribers or self._resyncing is not None:
            return
        with contextlib.suppress(RuntimeError):  # no loop: the process is stopping
            self._resyncing = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        """After the LISTEN connection was lost: what was logged meanwhile for the tasks
        followed here (and, for ``*``, any task), as if it had been announced."""
        try:
            followed = [task for task in self.subscribers if task != ALL]
            rows = await self.pool.fetch(
                """SELECT task_id, max(seq) AS seq FROM task_events
                   WHERE task_id = ANY($1::text[])
                      OR ($2 AND created_at > now() - make_interval(secs => $3))
                   GROUP BY task_id""",
                followed,
                ALL in self.subscribers,
                RESYNC_WINDOW,
            )
            for row in rows:
                self._on_payload(f"{row['task_id']}:{row['seq']}")
        except _DATABASE_DOWN as exc:
            log.warning("catching up on events after the LISTEN connection returned: %s", exc)
        finally:
            self._resyncing = None

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
        if targets:
            texts = [encoded(event) for event in events]
            for subscriber in targets:
                for event, text in zip(events, texts, strict=True):
                    subscriber.offer(event, text)
        if events[-1].type == "complete":
            self._ended[task_id] = self._delivered.pop(task_id)
            self._notified.pop(task_id, None)
            if len(self._ended) > ENDED_KEPT:
                del self._ended[next(iter(self._ended))]

    def _on_payload(self, payload: str) -> None:
        task_id, _, seq_text = payload.rpartition(":")
        try:
            seq = int(seq_text)
        except ValueError:
            return
        if task_id not in self.subscribers and ALL not in self.subscribers:
            # Nobody here follows it: a subscriber that comes later replays these from the
            # log, so a later read need not start before them.
            if task_id in self._delivered:
                self._delivered[task_id] = max(self._delivered[task_id], seq)
            return
        if seq <= self._ended.get(task_id, 0):
            return  # handed out here up to its end already
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
