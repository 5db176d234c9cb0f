"""A slow WebSocket consumer: bounded queue, dropped progress and output, never a dropped end."""

from __future__ import annotations

from datetime import UTC, datetime

from knm.core.progress import Subscriber
from knm.core.tasks.events import Event


def event(seq: int, type: str = "output") -> Event:
    return Event(task_id="t", type=type, seq=seq, progress=0, timestamp=datetime.now(UTC))


def test_an_overflowing_subscriber_is_told_lagged_once_and_still_gets_the_end() -> None:
    subscriber = Subscriber(limit=5)
    for seq in range(1, 21):
        subscriber.offer(event(seq))
    subscriber.offer(event(21, "complete"))
    received = [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]
    types = [e.type for e in received]
    assert types.count("lagged") == 1
    lagged = next(e for e in received if e.type == "lagged")
    assert lagged.data["since"] == 5
    assert types[-1] == "complete"
    assert len(received) == 7


def test_duplicates_and_old_events_are_not_delivered_twice() -> None:
    subscriber = Subscriber()
    for seq in (1, 2, 2, 1, 3):
        subscriber.offer(event(seq, "progress"))
    assert [subscriber.queue.get_nowait().seq for _ in range(3)] == [1, 2, 3]
    assert subscriber.queue.empty()
