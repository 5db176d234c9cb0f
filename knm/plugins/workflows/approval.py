"""The ``approval`` step type: a workflow waits for an operator's approve or reject (a canary
pause between rolling batches is one approval step)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import msgspec

from knm.core.notifications import emit
from knm.core.tasks.steps import StepOutcome, StepRun, StepType

if TYPE_CHECKING:
    from knm.core.state import Knm


class ApprovalFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: What the approver is asked.
    message: str = ""


async def _status(knm: Knm, run: StepRun, batch: int) -> str:
    return await knm.pool.fetchval(
        "SELECT status FROM workflow_approvals WHERE task_id = $1 AND step_id = $2 AND batch = $3",
        run.workflow_task_id,
        run.step_id,
        batch,
    )


class ApprovalStep(StepType):
    name = "approval"
    params_type = ApprovalFields
    waits_for_client = True

    async def open(self, knm: Knm, run: StepRun) -> None:
        """The pending request, stored before the engine announces the step: an operator who
        approves on that announcement finds it."""
        message = str(run.params.get("message", ""))
        # The request and its notification commit together (the notification outbox).
        async with knm.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO workflow_approvals (task_id, step_id, batch, message)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (task_id, step_id, batch) DO UPDATE SET status = 'pending',
                       message = EXCLUDED.message,
                       requested_at = now(), decided_at = NULL, decided_by = NULL, comment = ''""",
                run.workflow_task_id,
                run.step_id,
                run.batch,
                message,
            )
            task = await conn.fetchrow(
                "SELECT kind, cluster_name FROM tasks WHERE task_id = $1", run.workflow_task_id
            )
            await emit(
                conn,
                "approval.requested",
                {
                    "task_id": run.workflow_task_id,
                    "kind": task["kind"] if task else None,
                    "cluster_name": task["cluster_name"] if task else None,
                    "step_id": run.step_id,
                    "batch": run.batch,
                    "message": message,
                },
                kind=task["kind"] if task else None,
                cluster=task["cluster_name"] if task else None,
            )

    async def run(self, knm: Knm, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        batch = run.batch
        final = "pending"
        try:
            while final == "pending":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cancelled.wait(), timeout=0.3)
                if cancelled.is_set():
                    final = "cancelled"
                    break
                final = await _status(knm, run, batch)
        finally:
            if final in ("pending", "cancelled"):
                # Timed out (the engine cancelled this coroutine) or cancelled: nobody may decide now.
                await asyncio.shield(
                    knm.pool.execute(
                        "UPDATE workflow_approvals SET status = $4 WHERE task_id = $1 AND step_id = $2 "
                        "AND batch = $3 AND status = 'pending'",
                        run.workflow_task_id,
                        run.step_id,
                        batch,
                        "cancelled" if final == "cancelled" else "expired",
                    )
                )
        row = await knm.pool.fetchrow(
            "SELECT decided_by, comment FROM workflow_approvals WHERE task_id = $1 AND step_id = $2 AND batch = $3",
            run.workflow_task_id,
            run.step_id,
            batch,
        )
        result = {"decision": final, "by": row["decided_by"], "comment": row["comment"]}
        if final == "approved":
            return StepOutcome(
                status="success", message=f"approved by {row['decided_by']}", result=result
            )
        if final == "cancelled":
            return StepOutcome(
                status="cancelled", message="cancelled while waiting for approval", result=result
            )
        return StepOutcome(
            status="failed",
            message=f"rejected by {row['decided_by']}: {row['comment']}",
            result=result,
        )
