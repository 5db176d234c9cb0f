"""A schedule's stored request: decoded, checked and prepared as its execute route would,
for the user it fires as — at save, and again at every fire time.

Nothing here creates a task: ``check`` and ``prepare`` of ``knm.core.tasks.service`` are the
execute route's own steps, the policy guard-rail and the credential's use rules among them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.auth import users
from knm.core.auth.principal import Principal, role_at_least
from knm.core.crypto import Sealed, keyring_of
from knm.core.errors import BadRequest, Invalid, KnmError, NotFound
from knm.core.schedules.store import REQUEST
from knm.core.tasks import service
from knm.core.tasks.executor import Executor
from knm.core.tasks.schemas import ExecRequest
from knm.core.tasks.targets import Prepared
from knm.wire.errors import field_message

if TYPE_CHECKING:
    import asyncpg

    from knm.core.state import Knm

_FIELD = re.compile(r"^[a-z_][a-z0-9_.\[\]]*: ")


def executor_of(knm: Knm, kind: str) -> Executor:
    executor = knm.executors.get(kind)
    if executor is None:
        known = ", ".join(sorted(knm.executors)) or "none"
        raise Invalid(f"kind: unknown executor {kind!r} (known: {known})")
    return executor


def decode(executor: Executor, body: dict[str, Any]) -> ExecRequest:
    """The body as the executor's request struct; 422 naming ``request.<field>``."""
    try:
        return msgspec.convert(body, executor.request_type)
    except msgspec.ValidationError as exc:
        raise Invalid(field_message(str(exc), "request")) from None


def under_request(exc: KnmError) -> KnmError:
    """An execute route's 400/404/422 about its body, as a 422 about the schedule's
    ``request`` field (``target_nodes: …`` → ``request.target_nodes: …``); other errors (403:
    the credential is not the user's to use) as they are."""
    if not isinstance(exc, (BadRequest, Invalid, NotFound)):
        return exc
    text = exc.error or str(exc)
    parts = [part.strip() for part in text.split("; ")]
    named = [f"request.{p}" if _FIELD.match(p) else f"{_field_of(exc, p)}: {p}" for p in parts]
    return Invalid("; ".join(named), details=exc.details)


def _field_of(exc: KnmError, text: str) -> str:
    """The request field an unnamed refusal is about, where the refusal tells."""
    if exc.message == "command validation failed":  # the policy guard-rail's refusal
        return "request.command"
    if text.startswith("Credential ID "):
        return "request.credential_id"
    if text.startswith("Cluster "):
        return "request.cluster_name"
    return "request"


async def validate(
    knm: Knm, executor: Executor, body: dict[str, Any], principal: Principal
) -> tuple[ExecRequest, Prepared]:
    """Everything the execute route checks before it stores a task, for ``principal``."""
    await knm.features.require(executor.feature)
    request = decode(executor, body)
    try:
        await service.check(knm, executor, request, principal)
        prepared = await service.prepare(knm, executor, request, principal)
    except KnmError as exc:
        raise under_request(exc) from None
    return request, prepared


def shown_request(
    executor: Executor, request: ExecRequest, prepared: Prepared, body: dict[str, Any]
) -> dict[str, Any]:
    """The request as the API shows it: what a task of it would store (the executor blanks
    its secret values), without the defaults the check filled in."""
    if prepared.stored_request is not None:
        shown = dict(prepared.stored_request)
    else:
        shown = msgspec.to_builtins(request)
    # The credential stays as sent: a default filled in now would pin today's default.
    if body.get("credential_id") is None:
        shown["credential_id"] = None
    return {k: v for k, v in shown.items() if not k.startswith("_")}


def seal(knm: Knm, body: dict[str, Any], schedule_id: int) -> Sealed:
    """The body as sent, sealed: what fires (the shown one may lack secret values, or have
    been reshaped by its executor's ``prepare``)."""
    return REQUEST.seal(keyring_of(knm), msgspec.json.encode(body).decode(), schedule_id)


def body_of(knm: Knm, row: Any) -> dict[str, Any]:
    """The body to fire, as it was sent."""
    sealed = row.sealed
    if sealed is None:
        return dict(row.request)
    return msgspec.json.decode(REQUEST.open(keyring_of(knm), sealed, row.id))


async def owner(conn: asyncpg.Connection | asyncpg.Pool, owner_id: int) -> Principal | str:
    """The owner as a principal as of now, or why they may not start tasks any more."""
    row = await users.auth_row(conn, owner_id)  # type: ignore[arg-type]
    return owner_of(owner_id, row)


async def owners(conn: asyncpg.Connection, owner_ids: set[int]) -> dict[int, Principal | str]:
    """``owner`` for several owners in one statement (a batch of fires reads each once)."""
    rows = await users.auth_rows(conn, sorted(owner_ids))
    return {owner_id: owner_of(owner_id, rows.get(owner_id)) for owner_id in owner_ids}


def owner_of(owner_id: int, row: users.UserRow | None) -> Principal | str:
    if row is None:
        return f"owner (user id {owner_id}) no longer exists"
    if row.disabled:
        return f"owner {row.username!r} is disabled"
    if not role_at_least(row.role, "operator"):
        return f"owner {row.username!r} has role {row.role}; starting tasks needs operator"
    return Principal(user_id=row.id, username=row.username, role=row.role, via="schedule")
