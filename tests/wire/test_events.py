"""Progress messages: one struct per type, the same JSON as the stream has always sent."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from knm.wire import (
    EVENT_TYPES,
    CompleteEvent,
    ErrorEvent,
    Event,
    OutputEvent,
    make_event,
)

AT = datetime(2025, 10, 29, 14, 30, tzinfo=UTC)


def test_every_type_of_the_stream_has_a_struct() -> None:
    assert set(EVENT_TYPES) == {
        "progress",
        "node",
        "output",
        "step",
        "complete",
        "lagged",
        "error",
    }


def test_an_event_is_sent_as_the_contract_shows_and_decodes_to_its_type() -> None:
    sent = {
        "task_id": "ansible-exec-1698550000-abc123",
        "type": "progress",
        "seq": 3,
        "progress": 50,
        "message": "Executing task 2 of 4...",
        "data": {"task": 2},
        "timestamp": "2025-10-29T14:30:00Z",
    }
    event = msgspec.json.decode(msgspec.json.encode(sent), type=Event)
    assert event.type == "progress"
    assert msgspec.json.decode(msgspec.json.encode(event)) == sent


def test_every_message_carries_every_field_message_and_data_included() -> None:
    every = {"task_id", "type", "seq", "progress", "message", "data", "timestamp"}
    output = OutputEvent(task_id="t", seq=1, progress=0, timestamp=AT)
    assert set(msgspec.to_builtins(output)) == every
    error = ErrorEvent(task_id="t", seq=0, progress=0, message="unknown action", timestamp=AT)
    assert msgspec.to_builtins(error)["data"] == {}
    assert set(msgspec.to_builtins(error)) == every


def test_make_event_builds_the_struct_of_its_type_and_refuses_unknown_types() -> None:
    event = make_event("complete", task_id="t", seq=9, progress=100, timestamp=AT)
    assert isinstance(event, CompleteEvent)
    with pytest.raises(ValueError, match="unknown event type"):
        make_event("gossip", task_id="t", seq=1, progress=0, timestamp=AT)


def test_event_time_is_this_utc_second_whatever_second_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from knm.wire import events

    for at in (1_796_475_311.9, 1_796_475_312.0, 1_796_475_312.5, 1_796_475_399.2):
        monkeypatch.setattr(time, "time", lambda at=at: at)
        stamp = events.now()
        assert stamp == datetime.fromtimestamp(int(at), UTC)
        assert stamp.tzinfo is UTC and stamp.microsecond == 0
    monkeypatch.undo()
    before = datetime.now(UTC).replace(microsecond=0)
    assert before <= events.now() <= datetime.now(UTC)
