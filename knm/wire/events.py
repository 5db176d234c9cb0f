"""The progress stream's messages: one struct per ``type``, a tagged union.

Every message has the same shape, ``{task_id, type, seq, progress, message, data, timestamp}``,
every field always present (``message`` a short human-readable line, ``data`` an object);
``type`` says which one it is:

- ``progress``: the task's percentage moved (``data`` is the executor's);
- ``node``: a node started (``status: running``) or finished (``status``, ``reason``,
  ``exit_code``);
- ``output``: text a node wrote (``node``, ``stream``, ``text``; ``message``: "output from
  node1 (stdout)");
- ``step``: a workflow step changed (``step_id``, ``step_type``, ``status``, ``batch``,
  ``task_id``, ``error``);
- ``complete``: the task finished (``status``, ``success_count``, ``failed_count``, ``error``);
  the last message of a task;
- ``lagged``: this subscriber was too slow and events were dropped (``since``: resubscribe
  from there);
- ``error``: a protocol error (bad JSON, unknown action, unknown or forbidden task); ``seq`` 0.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec


class BaseEvent(msgspec.Struct, kw_only=True, tag_field="type"):
    task_id: str
    seq: int
    #: 0–100, on every message.
    progress: int
    message: str = ""
    data: dict[str, Any] = {}
    timestamp: datetime

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class ProgressEvent(BaseEvent, tag="progress"):
    """The task's percentage moved."""


class NodeEvent(BaseEvent, tag="node"):
    """A node started or finished."""


class OutputEvent(BaseEvent, tag="output"):
    """Text a node wrote to ``data.stream``."""


class StepEvent(BaseEvent, tag="step"):
    """A workflow step changed state."""


class CompleteEvent(BaseEvent, tag="complete"):
    """The task finished: ``data.status`` is its terminal state."""


class LaggedEvent(BaseEvent, tag="lagged"):
    """Events were dropped for this subscriber; resubscribe with ``since``."""


class ErrorEvent(BaseEvent, tag="error"):
    """A protocol error; ``message`` says which (``data`` empty)."""


Event = (
    ProgressEvent | NodeEvent | OutputEvent | StepEvent | CompleteEvent | LaggedEvent | ErrorEvent
)
#: The struct of each ``type``.
EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        ProgressEvent,
        NodeEvent,
        OutputEvent,
        StepEvent,
        CompleteEvent,
        LaggedEvent,
        ErrorEvent,
    )
}


_second: tuple[int, datetime] = (0, datetime.fromtimestamp(0, UTC))


def now() -> datetime:
    """Event time: UTC, whole seconds. A task streaming 20,000 events a second stamps each;
    the second's datetime is made once (it is immutable) and handed to every event in it."""
    global _second
    second = int(time.time())
    if second != _second[0]:
        _second = (second, datetime.fromtimestamp(second, UTC))
    return _second[1]


def make_event(type: str, **fields: Any) -> BaseEvent:
    """The event of ``type``; an unknown type is a ``ValueError`` (the stream's vocabulary is
    closed, so every client can decode every message)."""
    try:
        cls = EVENT_TYPES[type]
    except KeyError:
        raise ValueError(f"unknown event type {type!r}; known: {sorted(EVENT_TYPES)}") from None
    return cls(**fields)
