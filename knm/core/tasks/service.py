"""Starting, cancelling and describing tasks: the one path every execution takes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from knm.core.envelope import ok_bytes
from knm.core.errors import BadRequest, Conflict, Invalid, NotFound
from knm.core.tasks import output, store
from knm.core.tasks.executor import Executor
from knm.core.tasks.ids import kind_of, new_task_id
from knm.core.tasks.schemas import ExecRequest, TaskRow
from knm.core.tasks.status_cache import LiveAnswer
from knm.core.tasks.targets import Prepared
from knm.wire import TERMINAL, TaskStarted, TaskStatus, flatten

if TYPE_CHECKING:
    from knm.core.auth.principal import Principal
    from knm.core.state import Knm


async def start_task(
    knm: Knm,
    executor: Executor,
    request: ExecRequest,
    principal: Principal | None,
    *,
    idempotency_key: str | None = None,
    parent_task_id: str | None = None,
    rerun_of: str | None = None,
) -> TaskRow:
    """Check, prepare and record a task, then hand it to a runner. Returns it as stored."""
    await check(knm, executor, request, principal)
    user_id = principal.user_id if principal else None
    if idempotency_key and user_id is not None:
        if len(idempotency_key) > 200:
            raise Invalid("Idempotency-Key must be at most 200 characters")
        existing = await store.by_idempotency_key(knm.pool, user_id, executor.kind, idempotency_key)
        if existing is not None:
            return existing
    prepared = await prepare(knm, executor, request, principal)
    async with knm.pool.acquire() as conn:
        try:
            async with conn.transaction():
                task = await record(
                    conn,
                    knm,
                    executor,
                    request,
                    prepared,
                    principal,
                    parent_task_id=parent_task_id,
                    rerun_of=rerun_of,
                    idempotency_key=idempotency_key if user_id is not None else None,
                )
        except asyncpg.UniqueViolationError:
            if idempotency_key and user_id is not None:
                existing = await store.by_idempotency_key(
                    conn, user_id, executor.kind, idempotency_key
                )
                if existing is not None:
                    return existing
            raise
    return await hand_over(knm, task, prepared)


async def check(
    knm: Knm, executor: Executor, request: ExecRequest, principal: Principal | None
) -> None:
    """The request's own rules and who may use its credential: 400/422/403/404 before
    anything is prepared. Fills in the cluster's default credential when the request names
    none."""
    shape = request.shape_problems()
    if shape:
        raise BadRequest("; ".join(shape))
    problems = request.problems()
    if problems:
        raise Invalid("; ".join(problems))
    if request.credential_id is None and executor.uses_credential:
        request.credential_id = await default_credential(knm, request.cluster_name)
    if executor.requires_credential and request.credential_id is None:
        raise missing_credential(request.cluster_name)
    if request.credential_id is not None:
        from knm.core.credentials import use

        # Who may use the credential (the cluster's default too), and where: 403 before
        # anything is prepared or stored.
        await use.require(knm, request.credential_id, principal, request.cluster_name)


async def prepare(
    knm: Knm, executor: Executor, request: ExecRequest, principal: Principal | None
) -> Prepared:
    """The executor's ``prepare`` (its checks, the policy guard-rail among them) and the
    credential the task will use: everything a task needs except the task. Nothing is
    stored, so a schedule validates its stored request with ``check`` and this."""
    prepared = await executor.prepare(knm, request, principal)
    if not prepared.nodes:
        raise Invalid("no target nodes")
    if request.credential_id is not None and prepared.credential is None:
        from knm.core.credentials import load_credential

        # 404 when it does not exist; decrypted once, here, for the whole task.
        prepared.credential = await load_credential(knm, request.credential_id)
    return prepared


async def record(
    conn: asyncpg.Connection,
    knm: Knm,
    executor: Executor,
    request: ExecRequest,
    prepared: Prepared,
    principal: Principal | None,
    *,
    parent_task_id: str | None = None,
    rerun_of: str | None = None,
    idempotency_key: str | None = None,
) -> TaskRow:
    """Insert the prepared task, pending, on ``conn`` (inside the caller's transaction, so a
    caller can record more in the same one); ``hand_over`` it once committed."""
    task = new_task(
        knm, executor, request, prepared, principal,
        parent_task_id=parent_task_id, rerun_of=rerun_of, idempotency_key=idempotency_key,
    )  # fmt: skip
    return await store.insert_task(conn, **msgspec.structs.asdict(task))


def new_task(
    knm: Knm,
    executor: Executor,
    request: ExecRequest,
    prepared: Prepared,
    principal: Principal | None,
    *,
    parent_task_id: str | None = None,
    rerun_of: str | None = None,
    idempotency_key: str | None = None,
) -> store.NewTask:
    """The prepared task as ``record`` inserts it (its secrets sealed); ``store.insert_tasks``
    inserts several at once."""
    stored = prepared.stored_request or msgspec.to_builtins(request)
    task_id = new_task_id(executor.kind)
    sealed = None
    if prepared.secrets:
        from knm.core.crypto import keyring_of

        sealed = store.SECRETS.seal(
            keyring_of(knm), msgspec.json.encode(prepared.secrets).decode(), task_id
        )
    return store.NewTask(
        task_id=task_id,
        kind=executor.kind,
        cluster_name=request.cluster_name,
        nodes=prepared.nodes,
        request=stored,
        summary=prepared.summary,
        credential_id=request.credential_id,
        user_id=principal.user_id if principal else None,
        username=principal.username if principal else None,
        parent_task_id=parent_task_id,
        rerun_of=rerun_of,
        idempotency_key=idempotency_key,
        timeout=request.timeout,
        deadline=request.deadline,
        sealed=sealed,
    )


async def hand_over(knm: Knm, task: TaskRow, prepared: Prepared) -> TaskRow:
    """A committed pending task to this process's runner, else to whichever worker hears."""
    # Claimed here, the task runs with what ``prepare`` loaded (nodes, credential, cluster).
    claimed = await knm.runner.try_claim(task.task_id, prepared) if knm.runner is not None else None
    if claimed is not None:
        return claimed
    # Behind a limit, or no runner here: a worker elsewhere (or later) claims it.
    await knm.pool.execute("SELECT pg_notify('knm_tasks', $1)", task.task_id)
    return await store.get_task(knm.pool, task.task_id) or task


#: Within one batch of schedule fires (``default_credentials_read_once``): each cluster's
#: default credential as read for the batch's first fire on it.
_DEFAULTS: ContextVar[dict[str, int | None] | None] = ContextVar("knm_defaults", default=None)


@contextlib.contextmanager
def default_credentials_read_once() -> Iterator[None]:
    """Inside, ``default_credential`` reads each cluster's once: a batch of fires checks its
    requests as of one moment, as one request would."""
    token = _DEFAULTS.set({})
    try:
        yield
    finally:
        _DEFAULTS.reset(token)


async def default_credential(knm: Knm, cluster_name: str) -> int | None:
    """The cluster's ``default_credential_id``; None also for an unknown cluster (``prepare``
    says 404 about that when it needs the cluster)."""
    from knm.core.clusters.store import default_credential_id

    read = _DEFAULTS.get()
    if read is not None and cluster_name in read:
        return read[cluster_name]
    found = await default_credential_id(knm.pool, cluster_name)
    if read is not None:
        read[cluster_name] = found
    return found


def missing_credential(cluster_name: str, needed_by: str = "") -> BadRequest:
    """400: no ``credential_id`` in the request, and none to stand in for it."""
    return BadRequest(
        f"credential_id: required{needed_by} (cluster {cluster_name} has no default_credential_id)"
    )


async def find_task(knm: Knm, task_id: str, kind: str | None = None) -> TaskRow:
    """The task, or 404 — also when the id belongs to another kind than the URL's."""
    if kind is not None and kind_of(task_id) != kind:
        raise NotFound(f"Task {task_id} not found")
    task = await store.get_task(knm.pool, task_id)
    if task is None or (kind is not None and task.kind != kind):
        raise NotFound(f"Task {task_id} not found")
    return task


async def cancel_task(knm: Knm, task: TaskRow, reason: str = "cancelled by user") -> TaskRow:
    if task.status in TERMINAL:
        raise Conflict(f"task {task.task_id} is already {task.status}")
    async with knm.pool.acquire() as conn:
        updated = await store.request_cancel(conn, task.task_id, reason)
        if updated is None:
            fresh = await store.get_task(conn, task.task_id)
            raise Conflict(f"task {task.task_id} is already {fresh.status if fresh else 'gone'}")
        if updated.status == "pending":
            final = await store.finish(
                conn,
                task.task_id,
                cancelled=True,
                open_reason="cancelled",
                open_message=reason,
                message=reason,
            )
            if final is not None:
                await knm.events.open_task(final.task_id)
                if knm.runner is not None:
                    await knm.runner.announce_end(final)
                knm.events.close_task(final.task_id)
                return final
        await conn.execute("SELECT pg_notify('knm_cancel', $1)", task.task_id)
    return updated


async def status_answer(knm: Knm, task_id: str, kind: str | None = None) -> bytes:
    """The status answer's envelope, encoded (``ok(TaskStatus)`` as sent: see
    ``envelope.AnswerResponse``): the contract's common fields, the executor's, and ``results``
    — or 404, also when the id belongs to another kind than the URL's."""
    if kind is not None and kind_of(task_id) != kind:
        raise NotFound(f"Task {task_id} not found")
    cache = knm.status_cache
    if cache is not None:
        known = cache.get(task_id)
        if known is not None:
            return known
        generation = cache.generation
        live = cache.get_live(task_id)
        checks = cache.checks
        # An unfinished task: its last answer, if nothing it was read from changed since.
        if (
            live is not None
            and checks is not None
            and await checks.version(task_id) == live.version
        ):
            cache.live_hits += 1
            return live.encode()
    # Ids start with their executor's kind, so the executor is known before the read.
    executor = knm.executors.get(kind_of(task_id) or "")
    with_output = executor.node_output_in_status if executor else True
    found = await store.snapshot(knm.pool, task_id, with_output=with_output)
    if found is None or (kind is not None and found.task.kind != kind):
        raise NotFound(f"Task {task_id} not found")
    task = found.task
    answer = TaskStatus(
        task_id=task.task_id,
        kind=task.kind,
        status=task.status,  # type: ignore[arg-type]
        cluster_name=task.cluster_name,
        target_nodes=task.target_nodes,
        success_count=task.success_count,
        failed_count=task.failed_count,
        progress=task.progress,
        message=task.message,
        # A pending task shows when it was accepted, as its execute answer did.
        start_time=task.start_time or task.created_at,
        end_time=task.end_time,
        duration=task.duration,
        created_at=task.created_at,
        user_id=task.user_id,
        username=task.username,
        parent_task_id=task.parent_task_id,
        rerun_of=task.rerun_of,
        error=task.error,
        results=found.results,
    )
    answer.extend(task.summary)
    if task.status == "running":
        # While running, counts come from the nodes finished so far.
        answer.success_count = sum(1 for r in answer.results if r.status == "success")
        answer.failed_count = sum(1 for r in answer.results if r.status == "failed")
    if executor is not None:
        answer.extend(executor.status_fields(task))
        if executor.task_output_in_status:
            answer.output = await output.read_output(knm.pool, task.task_id, "", "log")
    data = answer.to_wire()
    if task.status not in TERMINAL:
        live = LiveAnswer(found.version, data, task.start_time, task.end_time)
        if cache is not None:
            cache.put_live(task_id, live, text_size(answer))
        return live.encode()
    encoded = ok_bytes(_encoder.encode(data))
    if cache is not None:
        cache.drop_live(task_id)
        cache.put(task_id, encoded, text_size(answer), generation)
    return encoded


_encoder = msgspec.json.Encoder()


def text_size(answer: TaskStatus) -> int:
    """Characters of output text an answer carries (big ones are not cached)."""
    size = len(answer.output or "")
    for result in answer.results:
        size += len(result.stdout or "") + len(result.stderr or "")
    return size


def start_answer(task: TaskRow) -> dict[str, Any]:
    """The answer of execute/rerun (``knm.wire.TaskStarted`` as sent)."""
    answer = TaskStarted(
        task_id=task.task_id,
        status=task.status,  # type: ignore[arg-type]
        cluster_name=task.cluster_name,
        target_nodes=task.target_nodes,
        start_time=task.start_time or task.created_at,
    )
    answer.extend(task.summary)
    return flatten(msgspec.to_builtins(answer))
