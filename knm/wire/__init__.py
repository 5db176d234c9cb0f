"""What crosses the wire: the structs of the API's answers and of the progress stream.

The server builds its answers with these, the SDK (``knm.client``) and the CLI decode with
them. This package imports msgspec and the standard library only — never litestar, asyncpg,
pluggy or ``knm.core`` — so a client stays light (``tests/test_wire.py`` holds it to that).
"""

from knm.wire.base import Open, Page, flatten, page_of, split_extra
from knm.wire.errors import field_message
from knm.wire.events import (
    EVENT_TYPES,
    BaseEvent,
    CompleteEvent,
    ErrorEvent,
    Event,
    LaggedEvent,
    NodeEvent,
    OutputEvent,
    ProgressEvent,
    StepEvent,
    make_event,
    now,
)
from knm.wire.tasks import (
    TASK_STATES,
    TERMINAL,
    CancelResult,
    NodeResult,
    NodeState,
    StepState,
    TaskStarted,
    TaskState,
    TaskStatus,
    TaskSummary,
)

__all__ = [
    "EVENT_TYPES",
    "TASK_STATES",
    "TERMINAL",
    "BaseEvent",
    "CancelResult",
    "CompleteEvent",
    "ErrorEvent",
    "Event",
    "LaggedEvent",
    "NodeEvent",
    "NodeResult",
    "NodeState",
    "Open",
    "OutputEvent",
    "Page",
    "ProgressEvent",
    "StepEvent",
    "StepState",
    "TaskStarted",
    "TaskState",
    "TaskStatus",
    "TaskSummary",
    "field_message",
    "flatten",
    "make_event",
    "now",
    "page_of",
    "split_extra",
]
