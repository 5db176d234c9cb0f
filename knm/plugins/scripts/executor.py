"""The ``script`` executor: a stored script, with its parameters, run on nodes over SSH.

``prepare`` pins the script's version, checks the parameters (undeclared, missing required,
failing their pattern: 422; a script that declares none takes any with a valid name) and the command policy for shell scripts. Secret parameter values
go to ``Prepared.secrets`` (sealed with the task, masked in output); the stored request holds
``********`` in their place, which is why a rerun of such a task asks for them again (422).
``run`` sends each node the program of ``preamble.py`` on stdin of ``sh -s``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core import policy
from knm.core.content import ContentItem, get_by_name, get_pinned, get_runnable
from knm.core.errors import Invalid, KnmError
from knm.core.patterns import compile_pattern
from knm.core.tasks import Executor, NodeResult, Prepared, TaskContext
from knm.core.tasks.output import MASK
from knm.plugins.scripts.library import SCRIPT
from knm.plugins.scripts.preamble import (
    MISSING_MARK,
    NAME,
    SH_FALLBACK_MARK,
    command_for,
    program,
)
from knm.plugins.scripts.schemas import (
    ParameterValue,
    ScriptExtras,
    ScriptParameter,
    ScriptRequest,
    ScriptsSettings,
)

if TYPE_CHECKING:
    from knm.core.state import Knm

MAX_VALUE = 64 * 1024
#: Parameters a script that declares none may be given.
MAX_FREE = 100
# What sudo says when it refuses to run a command (any locale-independent part of it).
_SUDO_REFUSED = re.compile(
    r"is not allowed to execute|a password is required|incorrect password|"
    r"is not in the sudoers file|no tty present|a terminal is required"
)


def text_of(value: ParameterValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: Variables that change how the shell, the interpreter or the loader behave: a script that
#: declares no parameters takes any other name, never these (the script's author did not ask
#: for them, and they could run code the command policy never saw).
RESERVED_NAMES = frozenset(
    {"PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "CDPATH", "GLOBIGNORE", "PS4",
     "PROMPT_COMMAND", "HOME", "SHELL", "TMPDIR"}
)  # fmt: skip
RESERVED_PREFIXES = ("LD_", "BASH_FUNC_", "PYTHON", "KNM_", "SUDO_")


def _reserved(name: str) -> bool:
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def free_parameters(given: dict[str, str]) -> dict[str, str]:
    """A script that declares no parameters gets every given one with a valid environment
    variable name (``^[A-Z_][A-Z0-9_]*$``, not reserved); or 422 naming the others."""
    problems = []
    if bad := sorted(name for name in given if not NAME.match(name)):
        problems.append(
            f"invalid parameter names: {', '.join(bad)} (names must match ^[A-Z_][A-Z0-9_]*$)"
        )
    if reserved := sorted(name for name in given if NAME.match(name) and _reserved(name)):
        problems.append(f"reserved parameter names: {', '.join(reserved)}")
    for name, value in given.items():
        if "\x00" in value:
            problems.append(f"parameter {name} must not contain NUL characters")
        elif len(value) > MAX_VALUE:
            problems.append(f"parameter {name} must be at most {MAX_VALUE} characters")
    if len(given) > MAX_FREE:
        problems.append(f"at most {MAX_FREE} parameters are allowed")
    if problems:
        raise Invalid("; ".join(problems), message="invalid script parameters")
    return dict(given)


def resolve_parameters(declared: list[ScriptParameter], given: dict[str, str]) -> dict[str, str]:
    """The values the script gets: given ones checked, defaults filled in; or 422. A script
    that declares no parameters takes any with a valid name (``free_parameters``)."""
    if not declared:
        return free_parameters(given)
    known = {param.name: param for param in declared}
    problems = []
    if undeclared := sorted(set(given) - set(known)):
        problems.append(
            f"undeclared parameters: {', '.join(undeclared)} "
            f"(this script takes: {', '.join(known)})"
        )
    values: dict[str, str] = {}
    missing = []
    for param in declared:
        value = given.get(param.name, param.default)
        if value is None:
            if param.required:
                missing.append(param.name)
            continue
        if "\x00" in value:
            problems.append(f"parameter {param.name} must not contain NUL characters")
        elif len(value) > MAX_VALUE:
            problems.append(f"parameter {param.name} must be at most {MAX_VALUE} characters")
        elif param.secret and param.name in given and value == MASK:
            problems.append(
                f"parameter {param.name} is secret and was not kept: give its value again"
            )
        elif param.pattern is not None and not _matches(param.pattern, value):
            problems.append(f"parameter {param.name} does not match {param.pattern}")
        values[param.name] = value
    if missing:
        problems.insert(0, f"missing required parameters: {', '.join(missing)}")
    if problems:
        raise Invalid("; ".join(problems), message="invalid script parameters")
    return values


class ScriptExecutor(Executor):
    kind = "script"
    route = "scripts"
    feature = "scripts"
    request_type = ScriptRequest
    request_example = {
        "script_id": 1, "cluster_name": "production", "target_nodes": ["node1"],
        "credential_id": 1, "parameters": {"PORT": "8080"}, "timeout": 300,
    }  # fmt: skip
    answer_fields = {
        "script_id": int,
        "script_name": str,
        "script_version": int,
        "language": str,
        "parameters": dict[str, str],
        "sudo": bool,
    }

    async def _script(self, knm: Knm, request: ScriptRequest) -> ContentItem:
        if request.script_id is not None:
            return await get_runnable(knm, SCRIPT, request.script_id)
        found = await get_by_name(knm, SCRIPT, request.script or "")
        return await get_runnable(knm, SCRIPT, found.id)

    async def prepare(self, knm: Knm, request: ScriptRequest, principal: Any) -> Prepared:
        script = await self._script(knm, request)
        extras: ScriptExtras = script.extras
        given = {name: text_of(value) for name, value in request.parameters.items()}
        values = resolve_parameters(extras.parameters, given)
        if extras.language == "shell":
            context = policy.CommandContext(
                kind=self.kind,
                cluster_name=request.cluster_name,
                username=getattr(principal, "username", None),
                role=getattr(principal, "role", None),
                sudo=request.sudo,
            )
            # The parameters reach the script as environment variables: checked with their
            # values, so ``rm -rf "$DIR"`` with DIR=/ is refused here.
            await policy.check(
                knm, script.body, context, variables=values, limit=policy.MAX_SCRIPT_BYTES
            )
        prepared = await super().prepare(knm, request, principal)
        secret_names = {param.name for param in extras.parameters if param.secret}
        secrets = {name: value for name, value in values.items() if name in secret_names}
        shown = {name: MASK if name in secrets else value for name, value in values.items()}
        # A secret given in the request is kept as ******** (a rerun must give it again); one
        # that came from its default is left out, so a rerun takes the default again.
        kept = {
            name: value for name, value in shown.items() if name not in secrets or name in given
        }
        stored = msgspec.to_builtins(request)
        stored.update(script_id=script.id, script=None, parameters=kept)
        prepared.stored_request = stored
        prepared.secrets = secrets
        prepared.summary = {
            "script_id": script.id,
            "script_name": script.name,
            "script_version": script.version,
            "language": extras.language,
            "parameters": shown,
        }
        if request.sudo:
            prepared.summary["sudo"] = True
        return prepared

    async def run(self, ctx: TaskContext) -> None:
        request: ScriptRequest = ctx.request
        try:
            script = await get_pinned(
                ctx.knm, SCRIPT, request.script_id or 0, ctx.task.summary["script_version"]
            )
        except KnmError as exc:
            raise KnmError(f"script {request.script_id} cannot run: {exc.error}") from None
        extras: ScriptExtras = script.extras
        values = {name: text_of(value) for name, value in request.parameters.items()}
        values.update(ctx.secrets)
        command, head = command_for(request.sudo, ctx.credential)
        settings: ScriptsSettings = ctx.settings
        await ctx.run_shell(
            None,
            command,
            stdin=head + program(extras.language, script.body, values),
            concurrency=settings.max_concurrent,
            judge=lambda result, stderr: outcome(result, stderr, sudo=request.sudo),
        )


def outcome(result: NodeResult, stderr: str, *, sudo: bool) -> NodeResult:
    """The SSH result, told more precisely from what the wrapper and sudo said on stderr."""
    if result.exit_code == 127 and MISSING_MARK in stderr:
        line = next(ln for ln in stderr.splitlines() if MISSING_MARK in ln)
        return NodeResult.failure(
            "interpreter_missing", line.removeprefix("knm: ").strip(), exit_code=127
        )
    if sudo and result.exit_code == 1 and (refused := _SUDO_REFUSED.search(stderr)):
        return NodeResult.failure(
            "sudo_failed", f"sudo refused to run the script: {refused.group(0)}", exit_code=1
        )
    if SH_FALLBACK_MARK in stderr:
        result.message += " (bash is not installed: the script ran with sh)"
    return result


def _matches(pattern: str, value: str) -> bool:
    """Whether all of ``value`` matches ``pattern``, in linear time (RE2). A pattern RE2 cannot
    take (saved before patterns were checked with it) matches nothing."""
    try:
        return compile_pattern(pattern).fullmatch(value) is not None
    except ValueError:
        return False
