"""Workflows as versioned content: the kind, its validation and its list summary."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from knm.core.content import ContentDraft, ContentItem, ContentKind
from knm.core.errors import ErrorDetail
from knm.plugins.workflows.definition import problems
from knm.plugins.workflows.schemas import StepCount, WorkflowDefinition

if TYPE_CHECKING:
    from knm.core.state import Knm

_STEP_AT = re.compile(r"^steps\[(\d+)\]")
_STEP_NAMED = re.compile(r"^step (\S+?)(?: \([^)]*\))?:")


def detail_of(definition: WorkflowDefinition, problem: str) -> ErrorDetail:
    """A definition problem at its place: the step it names (``definition.steps[2]``), the
    parameters, or the steps as a whole."""
    ids = [raw.get("id") for raw in definition.steps]
    field = "definition.steps"
    if found := _STEP_AT.match(problem):
        field = f"definition.steps[{found.group(1)}]"
    elif (found := _STEP_NAMED.match(problem)) and found.group(1) in ids:
        field = f"definition.steps[{ids.index(found.group(1))}]"
    elif problem.startswith("parameter "):
        field = "definition.parameters"
    return ErrorDetail(field=field, message=problem)


async def validate_workflow(knm: Knm, draft: ContentDraft) -> list[ErrorDetail]:
    definition: WorkflowDefinition = draft.body
    return [detail_of(definition, problem) for problem in await problems(knm, definition)]


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
