"""The Python SDK of knm: ``Client`` (sync) and ``AsyncClient`` (async) over httpx, typed
results (``knm.client.models``), and one exception class per error status
(``knm.client.errors``).

    from knm.client import Client

    with Client("http://127.0.0.1:8080") as knm:
        knm.login("admin", password)
        task = knm.ssh.execute("production", "uptime", target_nodes=["node1"], credential_id=1)
        for event in knm.watch(task.task_id):
            print(event.type, event.message)
        print(knm.wait(task.task_id).status)

Importing this package imports ``knm.wire`` and msgspec only; ``Client`` and ``AsyncClient``
(httpx, asyncio, websockets) load on first use, so a command that only parses its arguments
(``knm --help``) pays for none of them.
"""

from typing import TYPE_CHECKING, Any

from knm.client.errors import (
    BadRequest,
    Conflict,
    FeatureDisabled,
    Forbidden,
    KnmError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationFailed,
)
from knm.client.models import TERMINAL, Event, TaskStarted, TaskStatus

if TYPE_CHECKING:
    from knm.client.aio import AsyncClient
    from knm.client.sync import Client

__all__ = [
    "TERMINAL",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "Event",
    "FeatureDisabled",
    "Forbidden",
    "KnmError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "TaskStarted",
    "TaskStatus",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
]


_LAZY = {"Client": "knm.client.sync", "AsyncClient": "knm.client.aio"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knm.client' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
