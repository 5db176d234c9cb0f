"""Workflow routes beyond the generic ones: approve, reject, resume."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, post

from knm.core.auth.guards import OPERATOR, principal_of
from knm.core.envelope import Envelope, ok
from knm.core.errors import Conflict, NotFound
from knm.core.tasks import service
from knm.core.windows import resumes
from knm.plugins.workflows.executor import WorkflowExecutor
from knm.plugins.workflows.schemas import Decision, ResumeRequest
from knm.wire.tasks import answer_shapes


async def _feature_on(connection: Any, _: Any) -> None:
    await connection.app.state["knm"].features.require("workflows")


class DecisionResult(msgspec.Struct):
    """What an approve or reject answers."""

    task_id: str
    step_id: str
    batch: int
    decision: Literal["approved", "rejected"]


#: The resume answer is a workflow's execute answer.
WorkflowStarted, _ = answer_shapes("Workflow", WorkflowExecutor.answer_fields)


async def _decide(
    request: Request[Any, Any, Any], task_id: str, data: Decision, decision: str
) -> Envelope[DecisionResult]:
    knm = request.app.state["knm"]
    task = await service.find_task(knm, task_id, "workflow")
    if task.finished:
        raise Conflict(f"workflow {task_id} is already {task.status}")
    principal = principal_of(request)
    row = await knm.pool.fetchrow(
        """UPDATE workflow_approvals SET status = $3, decided_at = now(), decided_by = $4, comment = $5
           WHERE (task_id, step_id, batch) = (
               SELECT task_id, step_id, batch FROM workflow_approvals
               WHERE task_id = $1 AND step_id = $2 AND status = 'pending'
               ORDER BY batch DESC LIMIT 1)
           RETURNING batch""",
        task_id,
        data.step_id,
        decision,
        principal.username,
        data.comment,
    )
    if row is None:
        raise NotFound(f"step {data.step_id} of {task_id} is not waiting for approval")
    await knm.audit(
        request,
        f"workflow.{'approve' if decision == 'approved' else 'reject'}",
        task_id,
        detail={"step_id": data.step_id},
    )
    return ok(
        DecisionResult(task_id, data.step_id, row["batch"], decision),  # type: ignore[arg-type]
        f"step {decision}",
    )


@post(
    "/automation/workflows/approve/{task_id:str}",
    guards=[OPERATOR, _feature_on],
    status_code=200,
    summary="Approve a workflow's waiting approval step",
    tags=["workflows"],
)
async def approve(
    request: Request[Any, Any, Any], task_id: str, data: Decision
) -> Envelope[DecisionResult]:
    return await _decide(request, task_id, data, "approved")


@post(
    "/automation/workflows/reject/{task_id:str}",
    guards=[OPERATOR, _feature_on],
    status_code=200,
    summary="Reject a workflow's waiting approval step",
    tags=["workflows"],
)
async def reject(
    request: Request[Any, Any, Any], task_id: str, data: Decision
) -> Envelope[DecisionResult]:
    return await _decide(request, task_id, data, "rejected")


@post(
    "/automation/workflows/resume/{task_id:str}",
    guards=[OPERATOR, _feature_on],
    status_code=200,
    summary="Start a new workflow task that skips the steps this one completed",
    tags=["workflows"],
)
async def resume(
    request: Request[Any, Any, Any], task_id: str, data: ResumeRequest | None = None
) -> Envelope[WorkflowStarted]:  # type: ignore[valid-type]
    knm = request.app.state["knm"]
    original = await service.find_task(knm, task_id, "workflow")
    if not original.finished:
        raise Conflict(f"workflow {task_id} is still {original.status}")
    if original.status == "completed":
        raise Conflict(f"workflow {task_id} completed; nothing to resume")
    executor = knm.executors["workflow"]
    body = {**original.request, "resumed_from": task_id}
    if data is not None and data.parameters is not None:
        body["parameters"] = data.parameters
    if data is not None and data.wait_for_window is not None:
        body["wait_for_window"] = data.wait_for_window
    again = msgspec.convert(body, executor.request_type, strict=False)
    task = await service.start_task(knm, executor, again, principal_of(request))
    # Resumed by hand: a pending automatic resume (the roll stopped at its window's end) is
    # this one, not a second.
    await resumes.superseded(knm.pool, task_id, task.task_id)
    await knm.audit(request, "task.resume", task.task_id, detail={"resumed_from": task_id})
    return ok(service.start_answer(task) | {"resumed_from": task_id}, "workflow resumed")


ROUTES = [approve, reject, resume]
