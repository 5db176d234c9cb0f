"""Save-time checks of a workflow's safety declarations and typed parameters, and the same
reboot check at run time on what a step actually runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knm.core import policy
from knm.core.errors import KnmError
from knm.plugins.workflows.conditions import HINT, playbook_reboots, reboot_commands
from knm.plugins.workflows.definition import Step
from knm.plugins.workflows.schemas import WorkflowDefinition
from knm.plugins.workflows.templates import (
    PATTERN,
    SHELL_FIELDS,
    RenderError,
    references,
    typed,
    whole_reference,
)

if TYPE_CHECKING:
    from knm.core.state import Knm

#: Content a step names, by step type: (content kind, name field, id field).
CONTENT = {
    "ansible": ("playbook", "playbook", "playbook_id"),
    "script": ("script", "script", "script_id"),
}


def _uses(fields: Any, name: str, where: str = "") -> list[str]:
    """Where (field paths) ``{{ params.<name> }}`` appears, other than as a whole command."""
    found = []
    if isinstance(fields, dict):
        for key, value in fields.items():
            path = f"{where}.{key}" if where else key
            if key in SHELL_FIELDS and whole_reference(value) == ("params", name):
                continue
            found.extend(_uses(value, name, path))
    elif isinstance(fields, list):
        for index, value in enumerate(fields):
            found.extend(_uses(value, name, f"{where}[{index}]"))
    elif isinstance(fields, str) and ("params", name) in set(references(fields)):
        found.append(where)
    return found


async def _content_body(knm: Knm, step_type: str, fields: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, body) of the playbook or script a step names, when it is known before run time."""
    from knm.core.content import get_by_name, get_runnable

    if step_type not in CONTENT:
        return None
    kind, name_field, id_field = CONTENT[step_type]
    if kind not in knm.registry.content_kinds:
        return None
    try:
        if isinstance(fields.get(id_field), int) and fields[id_field] > 0:
            item = await get_runnable(knm, kind, fields[id_field])
        elif isinstance(fields.get(name_field), str) and "{{" not in fields[name_field]:
            item = await get_by_name(knm, kind, fields[name_field])
        else:
            return None
    except KnmError:
        return None  # reported by the reference checks
    return (kind, item.body) if isinstance(item.body, str) else None


def _reboots_in(kind: str, body: str) -> list[str]:
    return playbook_reboots(body) if kind == "playbook" else reboot_commands(body)


async def safety_problems(knm: Knm, definition: WorkflowDefinition, steps: list[Step]) -> list[str]:
    found: list[str] = []
    params = {p.name: p for p in definition.parameters}
    for param in definition.parameters:
        if param.default is None:
            continue
        if param.type in ("integer", "boolean"):
            try:
                typed(param.type, param.name, param.default)
            except RenderError as exc:
                found.append(f"parameter {param.name!r}: default: {exc}")
        if param.type == "command" and param.default.strip():
            context = policy.CommandContext(kind="workflow", cluster_name="")
            violations = await policy.violations(knm, param.default, context)
            if violations:
                found.append(f"parameter {param.name!r}: default: {violations[0].message}")
    for param in params.values():
        if param.type != "command":
            continue
        for step in steps:
            for path in _uses(step.fields, param.name):
                found.append(
                    f"step {step.common.id}: {path} uses parameter {param.name!r} (type: command)"
                    " inside other text; a whole-command parameter can only be a command "
                    "field's entire text"
                )
    for step in steps:
        if step.common.reboots:
            continue
        where = f"step {step.common.id}"
        command = step.fields.get("command")
        if isinstance(command, str):
            texts = [PATTERN.sub("x", command)]
            whole = whole_reference(command)
            if whole and whole[0] == "params" and whole[1] in params:
                texts.append(params[whole[1]].default or "")
            for text in texts:
                rebooting = reboot_commands(text)
                if rebooting:
                    found.append(f"{where}: runs {rebooting[0]!r}: {HINT}")
                    break
        body = await _content_body(knm, step.common.type, step.fields)
        if body is not None:
            rebooting = _reboots_in(*body)
            if rebooting:
                found.append(f"{where}: its {body[0]} reboots ({rebooting[0]}): {HINT}")
    return found


async def run_time_reboots(
    knm: Knm, step: Step, fields: dict[str, Any], command: str | None
) -> str | None:
    """Why a step that does not declare ``reboots: true`` is refused as rendered, or None."""
    if step.common.reboots:
        return None
    if command is not None:
        rebooting = reboot_commands(command)
        if rebooting:
            return f"step {step.common.id} runs {rebooting[0]!r}: {HINT}"
    body = await _content_body(knm, step.common.type, fields)
    if body is not None:
        rebooting = _reboots_in(*body)
        if rebooting:
            return f"step {step.common.id}: its {body[0]} reboots ({rebooting[0]}): {HINT}"
    return None
