"""The watch's bookkeeping, without a server: what one poll of the event log yields."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from knm.client.watch import COMPLETE_GRACE, WatchState
from knm.wire import CompleteEvent, NodeEvent, now

TASK = "test-exec-1"


def _finished() -> Any:
    return SimpleNamespace(
        task_id=TASK, finished=True, status="completed", message="", success_count=2,
        failed_count=0,
    )  # fmt: skip


def _state(clock: list[float]) -> WatchState:
    state = WatchState(TASK, since=0)
    state.clock = lambda: clock[0]
    state.accept(NodeEvent(task_id=TASK, seq=1, progress=50, data={}, timestamp=now()))
    return state


def test_a_finished_task_whose_complete_trails_its_end_is_polled_until_the_event_comes() -> None:
    clock = [100.0]
    state = _state(clock)
    for _ in range(5):
        assert state.polled([], _finished) == []
        clock[0] += 1.0
    assert not state.done
    complete = CompleteEvent(
        task_id=TASK, seq=2, progress=100, data={"status": "completed"}, timestamp=now()
    )
    assert state.polled([complete], _finished) == [complete]
    assert state.done


def test_a_complete_that_never_comes_is_stood_in_for_with_the_next_seq_after_the_grace() -> None:
    clock = [100.0]
    state = _state(clock)
    for _ in range(3):
        assert state.polled([], _finished) == []
    clock[0] += COMPLETE_GRACE
    (stand_in,) = state.polled([], _finished)
    assert (stand_in.type, stand_in.seq, stand_in.data["status"]) == ("complete", 2, "completed")
    assert state.done
