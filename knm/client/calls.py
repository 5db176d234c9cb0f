"""Requests described as ``Call`` values, and answers turned into results: the envelope parsed
(or the ``KnmError`` it describes), ``data`` decoded into ``knm.client.models``. Both clients'
endpoints are written with these (``knm.client.base``, ``knm.client.families``)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import msgspec

from knm.client import models as m
from knm.client.errors import KnmError, error_for
from knm.wire.errors import ErrorDetail

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_PREFIX = "/api/v1"

#: Executor routes whose name differs from the task kind (``script-exec-…`` runs under
#: ``/automation/scripts``); any other kind's route is its name.
ROUTE_OF_KIND = {"script": "scripts", "workflow": "workflows"}


def route_of(task_id: str) -> str:
    """The executor route of a task, from its id (``<kind>-exec-<seconds>-<random>``)."""
    kind, sep, _ = task_id.partition("-exec-")
    if not sep or not kind:
        raise ValueError(f"{task_id!r} is not a task id")
    return ROUTE_OF_KIND.get(kind, kind)


@dataclass
class Call(Generic[T]):
    """One request and how to turn its answer's ``data`` (or text, when ``raw``) into a result."""

    method: str
    path: str
    decode: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    #: The path is relative to the mount point (``/metrics``), not to the API prefix.
    outside_api: bool = False


def query(**params: Any) -> dict[str, Any]:
    """Query parameters without the ones left out (None); booleans and dates as the API reads
    them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, date | datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def idempotency(key: str | None) -> dict[str, str]:
    """The header that makes a start sent again answer with the task the first one started."""
    return {"Idempotency-Key": key} if key else {}


def _details(value: Any) -> list[ErrorDetail] | None:
    try:
        return None if value is None else msgspec.convert(value, list[ErrorDetail])
    except msgspec.ValidationError:
        return None  # a server of another version: the error text still says it all


def parse(status: int, content: bytes, reason: str, retry_after: str | None) -> Any:
    """The envelope's ``data``, or the ``KnmError`` its error envelope describes."""
    try:
        envelope = msgspec.json.decode(content) if content else None
    except msgspec.DecodeError:
        envelope = None
    if status >= 400:
        if isinstance(envelope, dict) and "message" in envelope:
            raise error_for(
                status,
                str(envelope["message"]),
                str(envelope.get("error", "")),
                retry_after,
                _details(envelope.get("details")),
            )
        text = content[:200].decode(errors="replace").strip()
        raise error_for(status, reason or "error", text or reason, retry_after)
    if not isinstance(envelope, dict):
        raise KnmError(
            "the server did not answer with JSON", message="unexpected answer", code=status
        )
    return envelope.get("data")


def check_raw(status: int, content: bytes, reason: str, retry_after: str | None) -> None:
    """Raise for an error answer to a request whose success is not an envelope."""
    if status >= 400:
        parse(status, content, reason, retry_after)


def one(type_: type[T]) -> Callable[[Any], T]:
    return lambda data: msgspec.convert(data, type_)


def paged(type_: type[T], key: str) -> Callable[[Any], m.Page[T]]:
    return lambda data: m.Page(data["total"], msgspec.convert(data[key], list[type_]))


def nothing(_: Any) -> None:
    return None


def same(data: Any) -> Any:
    return data


def cluster(data: Any) -> m.Cluster:
    return m.with_extra(data, m.Cluster)


def history_page(data: Any) -> m.Page[m.TaskSummary]:
    return m.Page(data["total"], [m.TaskSummary.from_wire(row) for row in data["executions"]])


def task_status(data: Any) -> m.TaskStatus:
    return m.TaskStatus.from_wire(data)


def started(data: Any) -> m.TaskStarted:
    return m.with_extra(data, m.TaskStarted)


class Doer(abc.ABC):
    """What an endpoint mixin needs of its client: ``_do``, which sends one request (the sync
    client returns the result, the async one an awaitable of it)."""

    @abc.abstractmethod
    def _do(self, call: Call[T]) -> T: ...
