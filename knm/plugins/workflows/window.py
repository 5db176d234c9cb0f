"""A roll and its maintenance windows (the core's ``knm.core.windows``).

A workflow disrupts its nodes when it is ``disruptive``, or a step reboots (``reboots: true``),
cordons or drains (``k8s`` ``cordon``/``drain``), or is of a ``disruptive`` step type. Such a
run requires its cluster's window and the one its definition names (``maintenance_window``):

- At start it is refused (422 naming the window and its next opening) while they are closed,
  unless the request says ``wait_for_window: true``: then its first batch waits for the opening.
- Each batch starts only while they are open; a batch that started runs to its end, its
  disruptive steps and finalizers included (stopping between a drain and a reboot would leave
  a node half-maintained).
- A batch that would start after they closed does not: the roll stops, its unreached nodes
  fail with reason ``window_closed``, a resume is scheduled for the next opening, and the task
  ends ``failed`` with error ``window_closed``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import TYPE_CHECKING

from knm.core.windows import check, resumes
from knm.core.windows.check import Requirement
from knm.plugins.workflows.conditions import establishes
from knm.plugins.workflows.definition import Step
from knm.plugins.workflows.schemas import WorkflowDefinition

if TYPE_CHECKING:
    from knm.core.state import Knm
    from knm.core.tasks import TaskContext

#: Seconds between looks at the window while a run waits for it (it may be edited meanwhile).
WAIT_STEP = 30.0


def disrupts(knm: Knm, definition: WorkflowDefinition, steps: list[Step]) -> bool:
    types = knm.registry.step_types
    return definition.disruptive or any(
        step.common.reboots
        or establishes(step)
        or getattr(types.get(step.common.type), "disruptive", False)
        for step in steps
    )


async def required(
    knm: Knm, cluster_name: str, definition: WorkflowDefinition, steps: list[Step]
) -> Requirement:
    """The windows the run's disruptive work must be inside (none when it disrupts nothing)."""
    if not disrupts(knm, definition, steps):
        return Requirement()
    return await check.requirement(knm, cluster_name, definition.maintenance_window)


async def wait_for_opening(
    ctx: TaskContext, definition: WorkflowDefinition, steps: list[Step]
) -> bool:
    """Waits until the required windows are open (re-read each look: an admin may change
    them); False when the task was cancelled first."""
    while not ctx.cancelled.is_set():
        needed = await required(ctx.knm, ctx.task.cluster_name, definition, steps)
        at = check.now()
        if needed.is_open(at):
            return True
        opening = needed.next_opening(at)
        await ctx.progress(0, f"waiting: {needed.closed_message(at)}")
        pause = WAIT_STEP if opening is None else (opening - at).total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.cancelled.wait(), max(0.05, min(pause, WAIT_STEP)))
    return False


async def stop_roll(ctx: TaskContext, needed: Requirement, at: datetime) -> str:
    """The roll stops at its window's end: its result says why, a resume is scheduled for the
    next opening; returns the message for its unreached nodes."""
    resume_at = needed.next_opening(at)
    await ctx.save_result(window_closed=check.detail(needed, at, resume_at))
    await resumes.paused(ctx.knm, ctx.task, needed, at, resume_at)
    if resume_at is not None:
        then = f"a resume starts at {check.rfc3339(resume_at)}"
    else:
        then = "it does not open again: resume by hand"
    return f"not started: {needed.describe()} closed; {then}"
