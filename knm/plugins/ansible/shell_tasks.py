"""The shell a playbook runs on nodes, for the command guard-rail (``knm.core.policy``).

Every task that runs a command line -- ``command``, ``shell``, ``raw``, ``script``, ``expect`` in
any spelling (``ansible.builtin.shell``, ``ansible.legacy.command``, ``community.x.y.command``,
``action:``/``local_action:``) -- in ``tasks``, ``pre_tasks``, ``post_tasks`` and ``handlers``,
inside ``block``/``rescue``/``always`` at any depth and in roles written inline in the play. Jinja
expressions become the value of a play or extra variable when that is a plain scalar, and an
unknown value otherwise (the guard-rail treats unknown values pessimistically).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import yaml

SHELL_MODULES = frozenset({"command", "shell", "raw", "script", "expect", "win_command",
                           "win_shell"})  # fmt: skip
_SECTIONS = ("pre_tasks", "tasks", "post_tasks", "handlers")
_BLOCKS = ("block", "rescue", "always")
_JINJA = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# free-form ``key=value`` options of command/shell that are not part of the command line
_FREE_FORM_OPTIONS = re.compile(
    r"\s+(?:chdir|creates|removes|executable|warn|stdin|stdin_add_newline|strip_empty_ends)="
    r"\S+"
)


class ShellTask(msgspec.Struct, frozen=True):
    #: Where it is: ``play 1, tasks[3] (Restart)``.
    where: str
    module: str
    command: str


def shell_tasks(content: str, extra_vars: Mapping[str, Any] | None = None) -> list[ShellTask]:
    """Every command line the playbook ``content`` runs through a shell-like module ([] when it
    is not YAML or not a list of plays: the structure check reports that)."""
    try:
        plays = yaml.safe_load(content)
    except yaml.YAMLError:
        return []
    if not isinstance(plays, list):
        return []
    found: list[ShellTask] = []
    for index, play in enumerate(plays, start=1):
        if not isinstance(play, dict):
            continue
        variables = {**_scalars(play.get("vars")), **_scalars(extra_vars)}
        for section in _SECTIONS:
            found.extend(_tasks(play.get(section), f"play {index}, {section}", variables))
        for r, role in enumerate(play.get("roles") or []):
            if isinstance(role, dict):
                role_vars = {**variables, **_scalars(role.get("vars"))}
                for section in _SECTIONS:
                    found.extend(
                        _tasks(role.get(section), f"play {index}, roles[{r}] {section}", role_vars)
                    )
    return found


def _scalars(values: Any) -> dict[str, str]:
    if not isinstance(values, Mapping):
        return {}
    return {
        str(k): str(v)
        for k, v in values.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool) and "{{" not in str(v)
    }


def _tasks(items: Any, where: str, variables: dict[str, str]) -> Iterator[ShellTask]:
    if not isinstance(items, list):
        return
    for i, task in enumerate(items):
        if not isinstance(task, dict):
            continue
        label = f"{where}[{i}]" + (
            f" ({task['name']})" if isinstance(task.get("name"), str) else ""
        )
        task_vars = {**variables, **_scalars(task.get("vars"))}
        for block in _BLOCKS:
            yield from _tasks(task.get(block), f"{label} {block}", task_vars)
        for module, command in _commands(task):
            yield ShellTask(where=label, module=module, command=render(command, task_vars))


def _commands(task: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in task.items():
        name = str(key).rsplit(".", 1)[-1]
        if key in ("action", "local_action"):
            yield from _action(value, task.get("args"))
            continue
        if name not in SHELL_MODULES:
            continue
        command = _command_of(name, value, task.get("args"))
        if command is not None:
            yield name, command


def _action(value: Any, args: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        module, _, rest = value.strip().partition(" ")
        name = module.rsplit(".", 1)[-1]
        if name in SHELL_MODULES:
            command = _command_of(name, rest, args)
            if command is not None:
                yield name, command
    elif isinstance(value, dict):
        module = str(value.get("module", "")).rsplit(".", 1)[-1]
        if module in SHELL_MODULES:
            params = {k: v for k, v in value.items() if k != "module"}
            command = _command_of(module, params, args)
            if command is not None:
                yield module, command


def _command_of(module: str, value: Any, args: Any) -> str | None:
    params: dict[str, Any] = dict(args) if isinstance(args, dict) else {}
    if isinstance(value, str):
        free = _FREE_FORM_OPTIONS.sub("", " " + value).strip() if module != "raw" else value
        if free:
            return free
    elif isinstance(value, dict):
        params.update(value)
    elif isinstance(value, list):  # not valid Ansible, but never let it pass unseen
        return " ".join(shlex.quote(str(v)) for v in value)
    for key in ("cmd", "_raw_params", "command", "free_form"):
        if isinstance(params.get(key), str) and params[key].strip():
            return params[key]
    argv = params.get("argv")
    if isinstance(argv, list) and argv:
        return " ".join(shlex.quote(str(v)) for v in argv)
    return None


def render(command: str, variables: Mapping[str, str]) -> str:
    """Jinja expressions replaced by plain values where they are known, else by an unknown
    shell value (``$__knm_jinja``: anything, as far as the guard-rail is concerned)."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if _SIMPLE.match(expression) and expression in variables:
            return variables[expression]
        return "${__knm_jinja}"

    return _JINJA.sub(value, command)
