"""A subscriber's queue: bounded for slow consumers (dropped progress and output, never a dropped
end), and a replay from the log that hands over to the live stream without losing an event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from knm.core import progress_route
from knm.core.progress import ProgressHub, Subscriber
from knm.core.tasks.events import MAX_BATCH, Event
from knm.wire import OutputEvent, make_event


def event(seq: int, type: str = "output", task_id: str = "t") -> Event:
    return make_event(type, task_id=task_id, seq=seq, progress=0, timestamp=datetime.now(UTC))


def queued(subscriber: Subscriber) -> list[Event]:
    return [subscriber.take()[0] for _ in range(subscriber.queue.qsize())]


def test_an_overflowing_subscriber_is_told_lagged_once_and_still_gets_the_end() -> None:
    subscriber = Subscriber(limit=5)
    for seq in range(1, 21):
        subscriber.offer(event(seq))
    subscriber.offer(event(21, "complete"))
    received = queued(subscriber)
    types = [e.type for e in received]
    assert types.count("lagged") == 1
    lagged = next(e for e in received if e.type == "lagged")
    assert lagged.data["since"] == 5
    assert types[-1] == "complete"
    assert len(received) == 7


def test_a_subscriber_is_not_told_lagged_for_bursts_the_event_log_itself_makes() -> None:
    # The log hands the hub a whole write at once (up to MAX_BATCH events), offered before the
    # sender can run; a consumer keeping up may meet several such writes back to back.
    hub = ProgressHub(pool=None)  # type: ignore[arg-type]
    subscriber = Subscriber(hub)
    hub.subscribe("t", subscriber)
    for write in range(4):
        hub.deliver("t", [event(write * MAX_BATCH + i) for i in range(1, MAX_BATCH + 1)])
    assert hub.lagged == 0
    assert subscriber.queue.qsize() == 4 * MAX_BATCH


def test_a_subscriber_with_too_many_bytes_queued_is_told_lagged() -> None:
    subscriber = Subscriber()
    subscriber.byte_limit = 1000
    big = {"text": "x" * 600}
    for seq in range(1, 5):
        subscriber.offer(
            OutputEvent(task_id="t", seq=seq, progress=0, data=big, timestamp=datetime.now(UTC))
        )
    subscriber.offer(event(5, "complete"))
    assert [e.type for e in queued(subscriber)] == ["output", "output", "lagged", "complete"]


def test_duplicates_and_old_events_are_not_delivered_twice() -> None:
    subscriber = Subscriber()
    for seq in (1, 2, 2, 1, 3):
        subscriber.offer(event(seq, "progress"))
    assert [e.seq for e in queued(subscriber)] == [1, 2, 3]


class Log:
    """The event log of one task; each read waits for ``release`` once ``gate`` is set."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.reads = 0
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    def append(self, *seqs: int, type: str = "output") -> list[Event]:
        new = [event(seq, type) for seq in seqs]
        self.events.extend(new)
        return new

    async def read(self, _pool: Any, task_id: str, since: int = 0, limit: int = 10_000) -> Any:
        # A statement's snapshot is taken when it starts: what is committed later is not in it.
        found = [e for e in self.events if e.task_id == task_id and e.seq > since][:limit]
        self.reads += 1
        self.reading.set()
        await self.release.wait()
        return found


async def subscribed(
    monkeypatch: Any, hub: ProgressHub, log: Log, subscriber: Subscriber, since: int = 0
) -> None:
    async def get_task(_pool: Any, task_id: str) -> Any:
        return SimpleNamespace(task_id=task_id)

    monkeypatch.setattr(progress_route.store, "get_task", get_task)
    monkeypatch.setattr(progress_route, "read_events", log.read)
    knm = SimpleNamespace(pool=None, progress=hub)
    assert await progress_route._subscribe(knm, subscriber, "t", since) is None


async def settled(subscriber: Subscriber, log: Log) -> list[Event]:
    """What the subscriber queued once its replay (if any) is done."""
    log.release.set()
    for _ in range(100):
        if not getattr(subscriber, "replaying", None):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    return queued(subscriber)


async def test_a_live_event_during_the_replay_does_not_hide_the_replayed_ones(
    monkeypatch: Any,
) -> None:
    # Issue #16: the hub had handed out seq 1 before this subscriber came; seq 2 is committed
    # and handed out while the replay's read (whose snapshot has only seq 1) is under way.
    hub = ProgressHub(pool=None)  # type: ignore[arg-type]
    log = Log()
    hub.deliver("t", log.append(1, type="progress"))
    subscriber = Subscriber(hub)
    subscribing = asyncio.create_task(subscribed(monkeypatch, hub, log, subscriber))
    await asyncio.wait_for(log.reading.wait(), 5)
    hub.deliver("t", log.append(2, type="node"))
    received = await settled(subscriber, log)
    await subscribing
    assert [e.seq for e in received] == [1, 2]


async def test_the_replay_reads_the_log_to_the_end_before_the_live_stream_takes_over(
    monkeypatch: Any,
) -> None:
    hub = ProgressHub(pool=None)  # type: ignore[arg-type]
    log = Log()
    log.append(*range(1, 2501))
    subscriber = Subscriber(hub, limit=10_000)
    subscribing = asyncio.create_task(subscribed(monkeypatch, hub, log, subscriber))
    await asyncio.wait_for(log.reading.wait(), 5)
    hub.deliver("t", log.append(2501, 2502))
    hub.deliver("t", log.append(2503, type="complete"))
    received = await settled(subscriber, log)
    await subscribing
    assert [e.seq for e in received] == list(range(1, 2504))
    hub.deliver("t", [event(2503, "complete")])
    assert subscriber.queue.empty()


async def test_a_replay_waits_for_room_instead_of_overflowing(monkeypatch: Any) -> None:
    hub = ProgressHub(pool=None)  # type: ignore[arg-type]
    log = Log()
    log.append(*range(1, 51))
    log.append(51, type="complete")
    log.release.set()
    subscriber = Subscriber(hub, limit=10)
    await subscribed(monkeypatch, hub, log, subscriber)
    received: list[Event] = []
    async with asyncio.timeout(10):
        while not received or received[-1].type != "complete":
            item = await subscriber.queue.get()
            subscriber.bytes -= len(item[1])
            received.append(item[0])
            subscriber.sent()
            assert subscriber.queue.qsize() <= 10
    assert [e.seq for e in received] == list(range(1, 52))
    assert "lagged" not in {e.type for e in received}


async def test_the_announcement_of_a_task_end_handed_out_here_reads_nothing_back(
    monkeypatch: Any,
) -> None:
    # The event log hands a batch to this process's hub before its NOTIFY: the NOTIFY of the
    # batch holding ``complete`` used to make the hub read the task's whole log back.
    hub = ProgressHub(pool=None)  # type: ignore[arg-type]
    subscriber = Subscriber(hub)
    hub.subscribe("t", subscriber)
    reads: list[int] = []

    async def read_events(pool: Any, task_id: str, since: int = 0) -> list[Event]:
        reads.append(since)
        return [event(4, "output")]

    monkeypatch.setattr("knm.core.progress.read_events", read_events)
    hub.deliver("t", [event(1, "node"), event(2, "node"), event(3, "complete")])
    hub._on_payload("t:3")
    await asyncio.sleep(0)
    assert reads == []
    # Events after the end (another process's) are still read.
    hub._on_payload("t:4")
    for _ in range(3):
        await asyncio.sleep(0)
    assert reads == [0]
    assert [e.seq for e in queued(subscriber)] == [1, 2, 3, 4]
