"""Workflows as versioned content: the kind, its validation and its list summary."""

from __future__ import annotations

from typing import Any

from knm.core.content import ContentDraft, ContentItem, ContentKind
from knm.plugins.workflows.definition import problems
from knm.plugins.workflows.schemas import StepCount, WorkflowDefinition


async def validate_workflow(knm: Any, draft: ContentDraft) -> list[str]:
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
