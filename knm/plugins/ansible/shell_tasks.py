"""The shell a playbook runs on nodes, for the command guard-rail (``knm.core.policy``).

Every task that runs a command line -- ``command``, ``shell``, ``raw``, ``script``, ``expect`` in
any spelling (``ansible.builtin.shell``, ``ansible.legacy.command``, ``community.x.y.command``,
``action:``/``local_action:``) -- in ``tasks``, ``pre_tasks``, ``post_tasks`` and ``handlers``,
inside ``block``/``rescue``/``always`` at any depth and in roles written inline in the play. Jinja
expressions become the value of a play or extra variable when that is a plain scalar, and an
unknown value otherwise (the guard-rail treats unknown values pessimistically); one that stands
for a whole command is any command. Jinja statements and comments are dropped (what they wrap
is judged as if it were rendered).

Modules that do what a destructive command does without a shell are judged as that command:
``file state=absent`` as ``rm -rf``, ``copy`` as ``cp`` or a write of its ``content``,
``filesystem`` as ``mkfs``/``wipefs``, ``parted``, ``lvol``/``lvg``/``zfs state=absent`` as
``lvremove``/``vgremove``/``zfs destroy``; ``cron`` jobs and ``at`` commands are command lines.
``play_scripts`` gives each play's tasks as one script, so a file one task fetches
(``get_url``, ``curl -o``) and a later one runs is seen.
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
    found: list[ShellTask] = []
    for index, play in enumerate(_plays(content), start=1):
        found.extend(_play_tasks(play, index, extra_vars))
    return found


def _plays(content: str) -> list[Any]:
    """The playbook's plays as YAML gives them; [] when it is not YAML or not a list."""
    try:
        plays = yaml.safe_load(content)
    except yaml.YAMLError:
        return []
    return plays if isinstance(plays, list) else []


def _play_tasks(play: Any, index: int, extra_vars: Mapping[str, Any] | None) -> list[ShellTask]:
    """The shell-like tasks of one play (its sections and its roles')."""
    if not isinstance(play, dict):
        return []
    found: list[ShellTask] = []
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
        if name in EFFECT_MODULES:
            command = _effect_of(name, value, task.get("args"))
            if command is not None:
                yield name, command
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


#: Modules judged as the command they amount to (``_effect_of``).
EFFECT_MODULES = frozenset({"file", "copy", "template", "filesystem", "parted", "lvol", "lvg",
                            "zfs", "cron", "at", "get_url"})  # fmt: skip


def _params(value: Any, args: Any) -> dict[str, str]:
    params: dict[str, Any] = dict(args) if isinstance(args, dict) else {}
    if isinstance(value, dict):
        params.update(value)
    elif isinstance(value, str):  # ``file: path=/etc state=absent``, ``path={{ d }}``
        exprs = _JINJA.findall(value)
        masked = _JINJA.sub(lambda m: f"\x00{len(exprs) and exprs.index(m.group(1))}\x00", value)
        try:
            words = shlex.split(masked)
        except ValueError:
            words = masked.split()
        for word in words:
            key, eq, rest = word.partition("=")
            if eq:
                params[key] = re.sub(
                    "\x00(\\d+)\x00", lambda m: "{{ " + exprs[int(m.group(1))] + " }}", rest
                )
    return {
        str(k): str(v)
        for k, v in params.items()
        if v is not None and not isinstance(v, dict | list)
    }


def _dq(value: str) -> str:
    """``value`` in double quotes, ``$`` left live (``{{ item }}`` renders as an expansion)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def _effect_of(module: str, value: Any, args: Any) -> str | None:
    """The shell command a module's task amounts to, for the guard-rail (None: nothing it
    judges)."""
    p = _params(value, args)
    q = _dq  # double quotes: a Jinja value rendered into it stays an unknown value
    state = p.get("state", "")
    if module == "file":
        path = p.get("path") or p.get("dest") or p.get("name")
        return f"rm -rf -- {q(path)}" if path and state == "absent" else None
    if module in ("copy", "template"):
        dest = p.get("dest")
        if not dest or p.get("validate"):
            return None  # ``validate: visudo -cf %s``: the new file is checked before it lands
        if "content" in p:
            return f"printf '%s\\n' {q(p['content'])} > {q(dest)}"
        return f"cp -- {q(p.get('src') or 'knm-file')} {q(dest)}"
    if module == "filesystem":
        dev = p.get("dev")
        if not dev:
            return None
        if state == "absent":
            return f"wipefs -a {q(dev)}"
        return f"mkfs -t {q(p.get('fstype') or 'ext4')} {q(dev)}"
    if module == "parted":
        device = p.get("device")
        return f"parted -s {q(device)} rm 1" if device and state != "info" else None
    if module == "lvol":
        target = f"{p.get('vg', '')}/{p.get('lv', '')}"
        if state == "absent":
            return f"lvremove -f {q(target)}"
        if p.get("size", "").startswith("-"):
            return f"lvreduce -L {q(p['size'])} {q(target)}"
        return None
    if module == "lvg":
        return f"vgremove -f {q(p.get('vg', ''))}" if state == "absent" else None
    if module == "zfs":
        return f"zfs destroy {q(p.get('name', ''))}" if state == "absent" else None
    if module == "cron":
        return p.get("job") if state != "absent" else None
    if module == "at":
        return p.get("command") if state != "absent" else None
    if module == "get_url" and p.get("url") and p.get("dest"):
        return f"curl -fsSL -o {q(p['dest'])} {q(p['url'])}"
    return None


def play_scripts(content: str, extra_vars: Mapping[str, Any] | None = None) -> list[str]:
    """Each play's commands in the order they run, one subshell per task, as one script: what
    one task leaves for the next (a file it fetched) is seen. Plays of one task are left out
    (``shell_tasks`` has them)."""
    scripts = []
    for index, play in enumerate(_plays(content), start=1):
        single = _play_tasks(play, index, extra_vars)
        if len(single) > 1:
            scripts.append("\n".join(f"(\n{task.command}\n)" for task in single))
    return scripts


_STATEMENT = re.compile(r"\{%-?\s*(.*?)\s*-?%\}", re.S)
_COMMENT = re.compile(r"\{#.*?#\}", re.S)
#: Where a command begins: the start, or after ``;``, ``&``, ``|``, ``(``, a newline ...
_COMMAND_START = re.compile(r"(?:^|[;&|(\n`]|\$\(|\b(?:then|do|else)\s)\s*$")
_COMMAND_END = re.compile(r"^\s*(?:$|[;&|)\n`])")


def render(command: str, variables: Mapping[str, str]) -> str:
    """Jinja expressions replaced by plain values where they are known, else by an unknown
    shell value (``$__knm_jinja``: anything, as far as the guard-rail is concerned); one that is
    a whole command by itself becomes ``eval`` of that unknown text. Statements
    (``{% if %}``, ``{% raw %}``) and comments are dropped: what they hold is judged as text."""
    command = _COMMENT.sub("", command)
    command = _STATEMENT.sub("", command)
    out: list[str] = []
    last = 0
    for match in _JINJA.finditer(command):
        out.append(command[last : match.start()])
        last = match.end()
        expression = match.group(1)
        if _SIMPLE.match(expression) and expression in variables:
            out.append(variables[expression])
        elif _COMMAND_START.search("".join(out)) and _COMMAND_END.match(command[last:]):
            out.append('eval "${__knm_jinja}"')
        else:
            out.append("${__knm_jinja}")
    out.append(command[last:])
    return "".join(out)
