"""The routes every executor gets (execute, status, cancel, rerun, history) and ``/tasks``."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.response import Stream

from knm.core.auth.guards import OPERATOR, VIEWER, Guard, check_role, principal_of
from knm.core.envelope import AnswerResponse, Envelope, PageNo, PageSize, offset, ok, ok_bytes
from knm.core.errors import BadRequest, Invalid, NotFound
from knm.core.tasks import events, output, service, store
from knm.core.tasks.executor import Executor
from knm.core.tasks.schemas import HistoryPage
from knm.wire import CancelResult, Event, TaskState, page_of
from knm.wire.tasks import answer_shapes


class RerunRequest(msgspec.Struct, forbid_unknown_fields=True):
    only_failed: bool = True


#: ``GET /tasks/{id}/events``: a page of events, sent as ``entries``.
EventList = page_of("entries", Event)


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


async def _history_page(
    request: Request[Any, Any, Any], where: store.HistoryFilter, page: int, page_size: int
) -> AnswerResponse:
    if where.start_date and where.end_date and where.end_date < where.start_date:
        raise BadRequest("end_date is before start_date")
    total, rows = await store.history(_knm(request).pool, where, page_size, offset(page, page_size))
    # Encoded here, rows as ``store.history`` made them, into the envelope's bytes: the same
    # bytes ``ok(HistoryPage(...))`` goes out as through Litestar, without its second pass.
    return AnswerResponse(ok_bytes(_encoder.encode({"total": total, "executions": rows})))


_encoder = msgspec.json.Encoder()


def executor_routes(executor: Executor) -> list[Any]:
    """The generic routes of one executor, under ``/automation/<route>/``."""
    base = f"/automation/{executor.route}"
    kind = executor.kind
    tag = [executor.route]
    # What the answers look like, for the OpenAPI document (they are sent as built).
    started_type, status_type = answer_shapes(
        re.sub(r"\W", "", kind.title()), executor.answer_fields
    )

    def gate(role: Guard) -> Guard:
        # One guard for role and feature: Litestar copies the handler for every guard it calls.
        async def guard(connection: Any, handler: Any) -> None:
            await role(connection, handler)
            await connection.app.state["knm"].features.require(executor.feature)

        return guard

    async def execute(request: Request[Any, Any, Any], data: Any) -> Envelope[dict[str, Any]]:
        knm = _knm(request)
        principal = principal_of(request)
        task = await service.start_task(
            knm,
            executor,
            data,
            principal,
            idempotency_key=request.headers.get("idempotency-key"),
        )
        await knm.audit(request, "task.start", task.task_id, detail={"kind": kind})
        return ok(service.start_answer(task), "task started")

    body: Any = executor.request_type
    if executor.request_example is not None:
        example = Example(summary="the wire contract's example", value=executor.request_example)
        body = Annotated[body, Body(examples=[example])]
    execute.__annotations__ = {
        "request": Request[Any, Any, Any],
        "data": body,
        "return": Envelope[started_type],  # type: ignore[valid-type]
    }

    async def status(request: Request[Any, Any, Any], task_id: str) -> Envelope[dict[str, Any]]:
        # The hottest route checks here, not in a guard: Litestar copies the route handler for
        # each guard call, ~9% of the cost of a cached answer. The only parameter is a string,
        # so nothing can be refused before the check either way.
        check_role(request, "viewer")
        knm = _knm(request)
        await knm.features.require(executor.feature)
        return AnswerResponse(await service.status_answer(knm, task_id, kind))

    status.__annotations__ = {
        "request": Request[Any, Any, Any],
        "task_id": str,
        "return": Envelope[status_type],  # type: ignore[valid-type]
    }

    async def cancel(request: Request[Any, Any, Any], task_id: str) -> Envelope[CancelResult]:
        knm = _knm(request)
        task = await service.find_task(knm, task_id, kind)
        principal = principal_of(request)
        updated = await service.cancel_task(knm, task, f"cancelled by {principal.username}")
        await knm.audit(request, "task.cancel", task_id)
        return ok(CancelResult(task_id, updated.status), "cancel requested")  # type: ignore[arg-type]

    async def rerun(
        request: Request[Any, Any, Any], task_id: str, data: RerunRequest | None = None
    ) -> Envelope[dict[str, Any]]:
        knm = _knm(request)
        original = await service.find_task(knm, task_id, kind)
        if not original.finished:
            raise Invalid(f"task {task_id} is still {original.status}")
        nodes = original.target_nodes
        if data is None or data.only_failed:
            states = await store.node_states(knm.pool, task_id)
            nodes = [node for node, state in states.items() if state == "failed"]
            if not nodes:
                raise Invalid(f"task {task_id} has no failed nodes to rerun")
        body = {k: v for k, v in original.request.items() if not k.startswith("_")}
        body.update(target_nodes=nodes, target_selector=None)
        try:
            again = msgspec.convert(body, executor.request_type, strict=False)
        except msgspec.ValidationError as exc:
            raise Invalid(f"the original request cannot be replayed: {exc}") from None
        task = await service.start_task(
            knm,
            executor,
            again,
            principal_of(request),
            rerun_of=task_id,
            idempotency_key=request.headers.get("idempotency-key"),
        )
        await knm.audit(request, "task.rerun", task.task_id, detail={"rerun_of": task_id})
        return ok(service.start_answer(task) | {"rerun_of": task_id}, "task started")

    rerun.__annotations__ = {
        "request": Request[Any, Any, Any],
        "task_id": str,
        "data": RerunRequest | None,
        "return": Envelope[started_type],  # type: ignore[valid-type]
    }

    async def history(
        request: Request[Any, Any, Any],
        cluster_name: str | None = None,
        status: TaskState | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        include_children: bool = False,
        page: PageNo = 1,
        page_size: PageSize = 20,
    ) -> Envelope[HistoryPage]:
        # Its guard stays (unlike /tasks'): it also checks the feature, which a guard does
        # before the parameters are parsed — a disabled feature answers as such, not 400.
        where = store.HistoryFilter(
            kind=kind,
            cluster_name=cluster_name,
            status=status,
            start_date=start_date,
            end_date=end_date,
            include_children=include_children,
        )
        return await _history_page(request, where, page, page_size)

    def route(
        method: Any, path: str, action: str, fn: Any, guard: Guard | None, summary: str
    ) -> Any:
        extra = {"status_code": 200} if method is post else {}
        return method(
            f"{base}/{path}",
            guards=[gate(guard)] if guard is not None else [],
            name=f"{kind}-{action}",
            operation_id=f"{kind}{action.title()}",
            tags=tag,
            summary=summary,
            **extra,
        )(fn)

    return [
        route(post, executor.execute_path, "execute", execute, OPERATOR, f"Start a {kind} task"),
        route(get, "status/{task_id:str}", "status", status, None, f"Status of a {kind} task"),
        route(post, "cancel/{task_id:str}", "cancel", cancel, OPERATOR, f"Cancel a {kind} task"),
        route(post, "rerun/{task_id:str}", "rerun", rerun, OPERATOR, f"Run a {kind} task again"),
        route(get, "history", "history", history, VIEWER, f"{kind} tasks, newest first"),
    ]


@get("/tasks", summary="Tasks of every kind, newest first")
async def list_tasks(
    request: Request[Any, Any, Any],
    kind: str | None = None,
    cluster_name: str | None = None,
    status: TaskState | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    include_children: bool = False,
    parent_task_id: str | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[HistoryPage]:
    # Checked here, not by a guard (see ``status`` in executor_routes). The parameters are
    # parsed first now, but every request that gets here is authenticated (``AuthMiddleware``
    # answers the rest 401) and viewer is the lowest role: no answer changes.
    check_role(request, "viewer")
    where = store.HistoryFilter(
        kind=kind,
        cluster_name=cluster_name,
        status=status,
        start_date=start_date,
        end_date=end_date,
        include_children=include_children,
        parent_task_id=parent_task_id,
    )
    return await _history_page(request, where, page, page_size)


#: Any task's status answer: the common fields (and its kind's own beside them).
_, AnyTaskStatus = answer_shapes("AnyTask", {})


@get("/tasks/{task_id:str}", summary="Status of any task")
async def get_task(request: Request[Any, Any, Any], task_id: str) -> Envelope[AnyTaskStatus]:  # type: ignore[valid-type]
    check_role(request, "viewer")  # not a guard: see ``status`` in executor_routes
    knm = _knm(request)
    return AnswerResponse(await service.status_answer(knm, task_id))


@get("/tasks/{task_id:str}/events", guards=[VIEWER], summary="A task's event log")
async def task_events(
    request: Request[Any, Any, Any], task_id: str, since: int = 0, limit: int = 1000
) -> Envelope[EventList]:
    if since < 0 or not 1 <= limit <= 10_000:
        raise BadRequest("since must be ≥ 0 and limit 1–10000")
    knm = _knm(request)
    await service.find_task(knm, task_id)
    found = await events.read_events(knm.pool, task_id, since, limit)
    return ok(EventList(len(found), found))


_OUTPUT = "text/plain; charset=utf-8"


@get(
    "/tasks/{task_id:str}/output",
    guards=[VIEWER],
    summary="Download a node's output",
    responses={
        200: ResponseSpec(data_container=str, media_type=_OUTPUT, description="the whole stream"),
        206: ResponseSpec(
            data_container=str, media_type=_OUTPUT, description="the bytes a Range asked for"
        ),
    },
)
async def task_output(
    request: Request[Any, Any, Any],
    task_id: str,
    node: str,
    stream: Literal["stdout", "stderr"] = "stdout",
) -> Response[Any]:
    knm = _knm(request)
    await service.find_task(knm, task_id)
    row = await knm.pool.fetchrow(
        f"SELECT status, {stream}_bytes AS total FROM task_nodes WHERE task_id = $1 AND node = $2",
        task_id,
        node,
    )
    if row is None:
        raise NotFound(f"node {node} is not part of task {task_id}")
    total = row["total"]
    if row["status"] in ("pending", "running"):
        # The size is recorded when the node ends; until then it is what is stored so far, so a
        # running node's output can be read as it grows (a Range from where the reader got to).
        total = await knm.pool.fetchval(
            """SELECT coalesce(sum(octet_length(data)), 0) FROM task_output
               WHERE task_id = $1 AND node = $2 AND stream = $3""",
            task_id,
            node,
            stream,
        )
    start, end = _range(request.headers.get("range"), total)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{task_id}-{node}.{stream}"',
    }
    status_code = 200
    if request.headers.get("range"):
        status_code = 206
        headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{total}"
    return Stream(
        output.stream_output(knm.pool, task_id, node, stream, start, end),
        media_type=_OUTPUT,
        headers=headers,
        status_code=status_code,
    )


def _range(header: str | None, total: int) -> tuple[int, int]:
    if not header:
        return 0, total
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    try:
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if first == "":
            start, end = max(0, total - int(last)), total
        else:
            start = int(first)
            end = total if last == "" else min(total, int(last) + 1)
    except ValueError:
        raise BadRequest(f"unsupported Range header {header!r}") from None
    if start > end or start < 0:
        raise BadRequest(f"unsatisfiable range {header!r} for {total} bytes")
    return start, end


ROUTES = [list_tasks, get_task, task_events, task_output]
