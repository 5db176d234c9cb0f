"""Workflows as versioned content: the kind, its validation and its list summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from knm.core.content import ContentDraft, ContentItem, ContentKind
from knm.plugins.workflows.definition import problems
from knm.plugins.workflows.schemas import StepCount, WorkflowDefinition

if TYPE_CHECKING:
    from knm.core.state import Knm


async def validate_workflow(knm: Knm, draft: ContentDraft) -> list[str]:
    return await problems(knm, draft.body)


def step_count(item: ContentItem) -> StepCount:
    return StepCount(len(item.body.steps))


WORKFLOW = ContentKind(
    kind="workflow",
    plural="workflows",
    route="/automation/workflows",
    label="Workflow",
    body_field="definition",
    body_type=WorkflowDefinition,
    list_includes_body=False,
    summary_type=StepCount,
    summary=step_count,
    validate=validate_workflow,
    feature="workflows",
)
