"""The script library: the ``script`` content kind, its validation and the builtins.

On create and update a script must pass its language's syntax check (``bash -n`` with the
content on stdin, or Python's ``compile()``), a shell script the command policy (the SSH
settings' rules and every plugin's ``knm_check_command``), and its parameters must be
well-formed. Content over 1 MiB is refused with 413 by the content kind's ``max_body_bytes``
before any of that runs.
"""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources
from typing import TYPE_CHECKING

import msgspec

from knm.core import policy
from knm.core.content import BuiltinContent, ContentDraft, ContentKind
from knm.core.errors import ErrorDetail
from knm.core.patterns import compile_pattern
from knm.core.policy import CommandContext
from knm.plugins.scripts.preamble import NAME
from knm.plugins.scripts.schemas import ScriptExtras, ScriptParameter

if TYPE_CHECKING:
    from knm.core.state import Knm

MAX_BODY = 1024 * 1024
MAX_PARAMETERS = 100
SYNTAX_TIMEOUT = 10.0
_MESSAGE_CAP = 2000


async def shell_syntax_problem(content: str) -> str:
    """``bash -n``'s complaint about ``content`` ("" when it parses)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-n", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError:
        return "bash is not installed here, so the script cannot be checked"
    try:
        _, err = await asyncio.wait_for(proc.communicate(content.encode()), SYNTAX_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"bash -n did not finish within {SYNTAX_TIMEOUT:g} s"
    if proc.returncode == 0:
        return ""
    # bash names its stdin "bash: line N"; keep the line numbers, drop the program name.
    text = err.decode(errors="replace").strip().replace("bash: ", "")
    return f"bash -n: {text[:_MESSAGE_CAP]}"


def python_syntax_problem(content: str) -> str:
    try:
        compile(content, "<script>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        column = f", column {exc.offset}" if exc.offset else ""
        return f"python syntax error: {exc.msg} (line {exc.lineno}{column})"
    except ValueError as exc:
        return f"python syntax error: {exc}"
    return ""


def parameter_problems(parameters: list[ScriptParameter]) -> list[str]:
    problems = []
    if len(parameters) > MAX_PARAMETERS:
        problems.append(f"at most {MAX_PARAMETERS} parameters are allowed")
    seen: set[str] = set()
    for param in parameters:
        where = f"parameter {param.name!r}"
        if not NAME.match(param.name):
            problems.append(f"{where}: names must match ^[A-Z_][A-Z0-9_]*$")
        elif param.name in seen:
            problems.append(f"{where} is declared twice")
        seen.add(param.name)
        if param.pattern is None:
            continue
        try:
            # RE2: matching takes linear time whatever the pattern (Python's ``re`` took
            # seconds on ``(a|a)+`` and 24 characters, on the event loop).
            regex = compile_pattern(param.pattern)
        except ValueError as exc:
            problems.append(f"{where}: pattern is not a usable regular expression: {exc}")
            continue
        if param.default is not None and not regex.fullmatch(param.default):
            problems.append(f"{where}: the default does not match its pattern")
    return problems


#: Where ``bash -n`` says a problem is ("line 3: syntax error near unexpected token").
_BASH_LINE = re.compile(r"^(?:bash -n: )?line (\d+):")
#: Where ``python_syntax_problem`` says it is.
_PYTHON_LINE = re.compile(r"\(line (\d+)(?:, column (\d+))?\)$")


def syntax_detail(problem: str) -> ErrorDetail:
    """A syntax complaint about ``content``, at the line (and column) it names."""
    found = _BASH_LINE.match(problem) or _PYTHON_LINE.search(problem)
    if found is None:
        return ErrorDetail(field="content", message=problem)
    column = found.group(2) if found.re is _PYTHON_LINE else None
    return ErrorDetail(
        field="content",
        line=int(found.group(1)),
        column=int(column) if column else None,
        message=problem,
    )


def place_of(content: str, text: str) -> tuple[int | None, int | None]:
    """Line and column (from 1) where ``text`` first appears in ``content``."""
    at = content.find(text)
    if at < 0:
        return None, None
    before = content[:at]
    return before.count("\n") + 1, at - (before.rfind("\n") + 1) + 1


async def validate_script(knm: Knm, draft: ContentDraft) -> list[str | ErrorDetail]:
    extras: ScriptExtras = draft.extras
    content: str = draft.body
    problems: list[str | ErrorDetail] = [
        ErrorDetail(field="parameters", message=problem)
        for problem in parameter_problems(extras.parameters)
    ]
    if not content.strip():
        return [*problems, "content must not be empty"]
    if extras.language == "python":
        problem = python_syntax_problem(content)
    else:
        problem = await shell_syntax_problem(content)
    if problem:
        problems.append(syntax_detail(problem))
    elif extras.language == "shell":
        # A declared parameter's value is not known until a run, which checks the script
        # again with it: here its expansions are deferred.
        found = await policy.violations(
            knm,
            content,
            CommandContext(kind="script", cluster_name=""),
            deferred=[param.name for param in extras.parameters],
            limit=policy.MAX_SCRIPT_BYTES,
        )
        for violation in found:
            line, column = place_of(content, violation.matched)
            problems.append(
                ErrorDetail(
                    field="content",
                    line=line,
                    column=column,
                    message=f"dangerous command blocked: {violation.matched}",
                )
            )
    return problems


SCRIPT = ContentKind(
    kind="script",
    plural="scripts",
    route="/automation/scripts",
    label="Script",
    list_includes_body=False,
    extras=ScriptExtras,
    versioned=("language", "parameters"),
    filters=("language",),
    validate=validate_script,
    max_body_bytes=MAX_BODY,
    feature="scripts",
)


class Shipped(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One entry of ``builtin/manifest.json``."""

    file: str
    name: str
    description: str
    category: str
    tags: list[str] = msgspec.field(default_factory=list)
    language: str = "shell"
    parameters: list[ScriptParameter] = msgspec.field(default_factory=list)


def manifest() -> list[Shipped]:
    raw = resources.files("knm.plugins.scripts").joinpath("builtin", "manifest.json").read_text()
    return msgspec.convert(json.loads(raw), list[Shipped])


def builtin_text(file: str) -> str:
    return resources.files("knm.plugins.scripts").joinpath("builtin", file).read_text()


def builtin_scripts() -> list[BuiltinContent]:
    return [
        BuiltinContent(
            kind=SCRIPT.kind,
            name=item.name,
            body=builtin_text(item.file),
            description=item.description,
            category=item.category,
            tags=list(item.tags),
            extras={"language": item.language, "parameters": msgspec.to_builtins(item.parameters)},
        )
        for item in manifest()
    ]
