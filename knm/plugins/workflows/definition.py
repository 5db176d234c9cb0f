"""Reading and checking workflow definitions: steps, their types' fields, the DAG, references."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core import policy
from knm.core.errors import KnmError
from knm.core.tasks.steps import ExecutorStep, StepType
from knm.plugins.workflows.schemas import COMMON_FIELDS, StepCommon, WorkflowDefinition
from knm.plugins.workflows.templates import PATTERN, references

if TYPE_CHECKING:
    from knm.core.state import Knm

STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A step may name content instead of giving its id, so definitions travel between installations.
REFERENCES = {"playbook": "playbook_id", "script": "script_id"}


class Step(msgspec.Struct, kw_only=True):
    common: StepCommon
    #: The type's own fields, as written (templates not yet rendered).
    fields: dict[str, Any]


def split(raw: dict[str, Any]) -> Step:
    common = msgspec.convert({k: v for k, v in raw.items() if k in COMMON_FIELDS}, StepCommon)
    return Step(common=common, fields={k: v for k, v in raw.items() if k not in COMMON_FIELDS})


def steps_of(definition: WorkflowDefinition) -> list[Step]:
    return [split(raw) for raw in definition.steps]


def used_parameters(steps: list[Step]) -> set[str]:
    """The names every ``{{ params.<name> }}`` in the steps refers to."""
    return {name for step in steps for ns, name in references(step.fields) if ns == "params"}


def find_cycle(steps: list[Step]) -> list[str] | None:
    """A cycle through ``depends_on`` as a list of step ids (first id repeated last), or None."""
    graph: dict[str, list[str]] = {}
    for step in steps:
        graph.setdefault(step.common.id, []).extend(step.common.depends_on)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _type_fields(step_type: StepType, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields as the type's struct takes them: names of content become placeholders ids."""
    values = dict(fields)
    if isinstance(step_type, ExecutorStep):
        names = {f.name for f in msgspec.structs.fields(step_type.params_type)}
        for ref, id_field in REFERENCES.items():
            if ref in values and ref not in names and id_field in names:
                values.pop(ref)
                values.setdefault(id_field, 0)
    return values


async def problems(knm: Knm, definition: WorkflowDefinition) -> list[str]:
    """Every problem of a definition, so one 422 lists them all."""
    found: list[str] = []
    settings = await knm.features.settings("workflows")
    if not definition.steps:
        found.append("a workflow needs at least one step")
    if len(definition.steps) > settings.max_steps:
        found.append(f"{len(definition.steps)} steps; at most {settings.max_steps} (max_steps)")
    registered = knm.registry.step_types
    steps: list[Step] = []
    for index, raw in enumerate(definition.steps):
        where = f"steps[{index}]"
        try:
            step = split(raw)
        except msgspec.ValidationError as exc:
            found.append(f"{where}: {exc}")
            continue
        steps.append(step)
        common = step.common
        where = f"step {common.id}"
        if not STEP_ID.match(common.id):
            found.append(f"{where}: id must be 1-64 letters, digits, '_' or '-'")
        if common.timeout is not None and common.timeout <= 0:
            found.append(f"{where}: timeout must be greater than 0")
        if common.retry.max_attempts < 1 or common.retry.delay < 0 or common.retry.backoff < 1:
            found.append(f"{where}: retry needs max_attempts ≥ 1, delay ≥ 0 and backoff ≥ 1")
        step_type = registered.get(common.type)
        if step_type is None:
            found.append(
                f"{where}: unknown type {common.type!r}; known: {', '.join(sorted(registered))}"
            )
            continue
        values = _type_fields(step_type, step.fields)
        try:
            params = msgspec.convert(values, step_type.params_type, strict=False)
        except msgspec.ValidationError as exc:
            found.append(f"{where} ({common.type}): {exc}")
            continue
        found.extend(f"{where}: {p}" for p in step_type.problems(knm, params))
        found.extend(await _reference_problems(knm, where, step.fields))
    ids = [s.common.id for s in steps]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        found.append(f"step id {duplicate!r} is used more than once")
    known = set(ids)
    for step in steps:
        for dep in step.common.depends_on:
            if dep not in known:
                found.append(f"step {step.common.id}: depends_on names no step {dep!r}")
            if dep == step.common.id:
                found.append(f"step {step.common.id}: depends on itself")
    cycle = find_cycle(steps)
    if cycle and len(cycle) > 2:
        found.append(f"cycle in depends_on: {' -> '.join(cycle)}")
    declared = {p.name for p in definition.parameters}
    found.extend(await _command_problems(knm, steps, definition.parameters))
    names = [p.name for p in definition.parameters]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        found.append(f"parameter {duplicate!r} is declared more than once")
    for step in steps:
        for namespace, name in references(step.fields):
            # A workflow declaring no parameters takes any (each one it uses must be given
            # when it runs); one that declares them uses only those.
            if namespace == "params" and declared and name not in declared:
                found.append(f"step {step.common.id}: uses undeclared parameter {name!r}")
            if namespace == "steps" and name.split(".")[0] not in known:
                found.append(f"step {step.common.id}: refers to no step {name.split('.')[0]!r}")
    if definition.maintenance_window is not None:
        found.extend(await _window_problems(knm, definition.maintenance_window))
    from knm.plugins.workflows.checks import safety_problems

    found.extend(await safety_problems(knm, definition, steps))
    return found


async def _window_problems(knm: Knm, name: str) -> list[str]:
    from knm.core.windows.store import by_names

    async with knm.pool.acquire() as conn:
        if not await by_names(conn, [name]):
            return [f"maintenance_window: no maintenance window named {name!r}"]
    return []


async def _reference_problems(knm: Knm, where: str, fields: dict[str, Any]) -> list[str]:
    from knm.core.content import get_by_name, get_runnable

    kinds = knm.registry.content_kinds
    found = []
    for ref, id_field in REFERENCES.items():
        if ref not in kinds:
            continue
        try:
            if isinstance(fields.get(id_field), int) and fields[id_field] > 0:
                await get_runnable(knm, ref, fields[id_field])
            elif isinstance(fields.get(ref), str) and "{{" not in fields[ref]:
                # A templated name (``{{ params.playbook }}``) is checked when it is rendered.
                item = await get_by_name(knm, ref, fields[ref])
                await get_runnable(knm, ref, item.id)
        except KnmError as exc:
            found.append(f"{where}: {exc.error or exc.message}")
    return found


async def resolve_references(knm: Knm, fields: dict[str, Any]) -> dict[str, Any]:
    """Content names (``"playbook": "node diagnostics"``) become ids at run time."""
    from knm.core.content import get_by_name

    values = dict(fields)
    kinds = knm.registry.content_kinds
    for ref, id_field in REFERENCES.items():
        if ref in kinds and isinstance(values.get(ref), str) and id_field not in values:
            values[id_field] = (await get_by_name(knm, ref, values.pop(ref))).id
    return values


def command_for_check(command: str, parameters: list[Any]) -> str:
    """A step's command as the guard-rail sees it at save: a parameter with a default renders
    as that default (quoted, as at run); other values are not known until the run, which checks
    the rendered command again, so they render as a harmless placeholder."""
    defaults = {}
    for param in parameters:
        name = param.get("name") if isinstance(param, dict) else getattr(param, "name", None)
        default = (
            param.get("default") if isinstance(param, dict) else getattr(param, "default", None)
        )
        if isinstance(name, str) and default is not None:
            defaults[name] = str(default)

    def value(match: re.Match[str]) -> str:
        namespace, name = match.group(1), match.group(2)
        if namespace == "params" and name in defaults:
            return shlex.quote(defaults[name])
        return "knm-deferred-value"

    return PATTERN.sub(value, command)


async def _command_problems(knm: Knm, steps: list[Step], parameters: list[Any]) -> list[str]:
    """The command guard-rail at save: a step whose command is refused is a 422 now, not a
    failed step later."""
    found = []
    for step in steps:
        command = step.fields.get("command")
        if not isinstance(command, str) or not command.strip():
            continue
        context = policy.CommandContext(kind=step.common.type, cluster_name="")
        violations = await policy.violations(knm, command_for_check(command, parameters), context)
        found.extend(f"step {step.common.id}: {v.message}" for v in violations[:1])
    return found
