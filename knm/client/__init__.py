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
"""

from knm.client.aio import AsyncClient
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
