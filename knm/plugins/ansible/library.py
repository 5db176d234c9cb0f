"""The playbook library: the ``playbook`` content kind, its validation and the builtins.

A playbook's ``content`` must parse as YAML into a list of plays, every task that runs shell
(``command``, ``shell``, ``raw``, ``script``, ``expect`` ...: ``shell_tasks.py``) must pass the
command guard-rail, and it must pass ``ansible-playbook --syntax-check``. The check runs as the run user in a scratch directory
(a playbook can import files, and its errors quote them) and costs about a second, so results
are cached by content hash.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
import yaml

from knm.core import policy
from knm.core.content import BuiltinContent, ContentDraft, ContentKind
from knm.core.errors import ErrorDetail, FeatureUnavailable
from knm.core.policy import CommandContext
from knm.plugins.ansible import runner, targets_host, toolchain
from knm.plugins.ansible.schemas import AnsibleSettings
from knm.plugins.ansible.shell_tasks import play_scripts, shell_tasks
from knm.plugins.ansible.toolchain import Toolchain

if TYPE_CHECKING:
    from knm.core.state import Knm

_PLAY_BODIES = ("tasks", "roles", "pre_tasks", "post_tasks", "handlers")
_CACHE_SIZE = 512
_MESSAGE_CAP = 2000
#: content hash → the syntax check's problem ("" when the playbook passed).
_checked: OrderedDict[str, str] = OrderedDict()


#: Where Ansible's messages say a problem is ("… line 4, column 7, but may be elsewhere").
_ANSIBLE_PLACE = re.compile(r"line (\d+), column (\d+)")


def _at(message: str, mark: Any = None) -> ErrorDetail:
    """A problem in ``content``, at a YAML mark (0-based) when there is one."""
    if mark is None:
        return ErrorDetail(field="content", message=message)
    return ErrorDetail(field="content", line=mark.line + 1, column=mark.column + 1, message=message)


def located_structure_problems(content: str) -> list[ErrorDetail]:
    """Why ``content`` is not a list of plays (empty when it is), each at its line."""
    try:
        plays = yaml.safe_load(content)
        # The same text composed again keeps each play's place.
        root = yaml.compose(content, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return [_at(f"content is not valid YAML: {exc}", getattr(exc, "problem_mark", None))]
    if not isinstance(plays, list) or not plays:
        return [_at("content must be a YAML list of plays", root.start_mark if root else None)]
    marks = [node.start_mark for node in root.value] if isinstance(root, yaml.SequenceNode) else []
    problems = []
    for number, play in enumerate(plays, 1):
        mark = marks[number - 1] if number <= len(marks) else None
        if not isinstance(play, dict):
            problems.append(_at(f"play {number} must be a mapping", mark))
        elif "import_playbook" in play or "ansible.builtin.import_playbook" in play:
            continue
        elif "hosts" not in play:
            problems.append(_at(f"play {number} has no hosts", mark))
        elif not any(key in play for key in _PLAY_BODIES):
            problems.append(_at(f"play {number} has no tasks or roles", mark))
    return problems


def structure_problems(content: str) -> list[str]:
    """Why ``content`` is not a list of plays (empty when it is)."""
    return [problem.message for problem in located_structure_problems(content)]


def syntax_detail(message: str) -> ErrorDetail:
    """The syntax check's complaint, at the line and column Ansible names (if it does)."""
    found = _ANSIBLE_PLACE.search(message)
    if found is None:
        return ErrorDetail(field="content", message=message)
    line, column = int(found.group(1)), int(found.group(2))
    return ErrorDetail(field="content", line=line, column=column, message=message)


def count_tasks(content: str) -> int:
    """Tasks a run of ``content`` is expected to start per host (roles count as one)."""
    try:
        plays = yaml.safe_load(content)
    except yaml.YAMLError:
        return 1

    def tasks_in(items: Any) -> int:
        if not isinstance(items, list):
            return 0
        total = 0
        for item in items:
            if isinstance(item, dict) and "block" in item:
                total += tasks_in(item.get("block")) + tasks_in(item.get("always"))
            else:
                total += 1
        return total

    total = 0
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        total += 1 if play.get("gather_facts", True) not in (False, "false", "no") else 0
        total += len(play.get("roles") or []) if isinstance(play.get("roles"), list) else 0
        for key in ("pre_tasks", "tasks", "post_tasks"):
            total += tasks_in(play.get(key))
    return max(total, 1)


async def syntax_problem(
    settings: AnsibleSettings, content: str, tools: Toolchain | None = None
) -> str:
    """Ansible's complaint about ``content`` ("" when it passes), cached by content hash."""
    playbook = tools.playbook if tools is not None else settings.binary_path
    key = hashlib.sha256(f"{playbook}\0{content}".encode()).hexdigest()
    if key in _checked:
        _checked.move_to_end(key)
        return _checked[key]
    problem = await runner.syntax_check(settings, content, tools)
    if problem is None:  # the check itself could not run to its end: do not remember that
        return "the syntax check did not finish in time; try again"
    _checked[key] = problem
    while len(_checked) > _CACHE_SIZE:
        _checked.popitem(last=False)
    return problem


async def shell_problems(
    knm: Knm, content: str, context: CommandContext, extra_vars: dict[str, Any] | None = None
) -> list[ErrorDetail]:
    """The command guard-rail on every task of ``content`` that runs shell, each at the line
    where its command is written (when it is written there as is)."""
    found = []
    for task in shell_tasks(content, extra_vars):
        for violation in (await policy.violations(knm, task.command, context))[:1]:
            line, column = _place_of(content, task.command.splitlines()[0] if task.command else "")
            message = f"{violation.message} ({task.module} task, {task.where})"
            found.append(ErrorDetail(field="content", line=line, column=column, message=message))
    if found:
        return found
    for script in play_scripts(content, extra_vars):  # what one task leaves for the next
        found.extend(
            ErrorDetail(field="content", message=f"{violation.message} (across the play's tasks)")
            for violation in (
                await policy.violations(knm, script, context, limit=policy.MAX_SCRIPT_BYTES)
            )[:1]
        )
    return found


def _place_of(content: str, text: str) -> tuple[int | None, int | None]:
    at = content.find(text) if text else -1
    if at < 0:
        return None, None
    before = content[:at]
    return before.count("\n") + 1, at - (before.rfind("\n") + 1) + 1


async def validate_playbook(knm: Knm, draft: ContentDraft) -> list[ErrorDetail]:
    content: str = draft.body
    problems = located_structure_problems(content)
    if problems:
        return problems
    problems = await shell_problems(knm, content, CommandContext(kind="ansible", cluster_name=""))
    if problems:
        return problems
    settings: AnsibleSettings = await knm.features.settings("ansible")
    if found := targets_host.refusals(content, settings.allow_local_plays):
        return [ErrorDetail(field="content", message=message) for message in found]
    tools = toolchain.for_app(knm)
    chain = await tools.get(settings)  # 503 when Ansible cannot run here
    try:
        problem = await syntax_problem(settings, content, chain)
    except FeatureUnavailable:  # it could not start after all: 503, and checked again
        tools.forget(settings)
        raise
    if problem:
        return [syntax_detail(f"ansible-playbook --syntax-check: {problem[:_MESSAGE_CAP]}")]
    return []


PLAYBOOK = ContentKind(
    kind="playbook",
    plural="playbooks",
    route="/automation/ansible/playbooks",
    label="Playbook",
    validate=validate_playbook,
    max_body_bytes=1024 * 1024,
    feature="ansible",
)


class _Shipped(msgspec.Struct, frozen=True):
    file: str
    name: str
    description: str
    category: str
    tags: tuple[str, ...]


#: In id order on a fresh install: the read-only one first, so a client example that runs
#: "playbook 1" changes nothing.
BUILTINS = (
    _Shipped("node_diagnostics.yml", "Node diagnostics",
             "Read-only facts: OS, kernel, uptime, load, memory, disks, kubelet and runtime state.",
             "diagnostics", ("read-only", "diagnostics")),
    _Shipped("system_upgrade.yml", "System upgrade",
             "Upgrade every package (apt or dnf/yum); reboots only when reboot_if_needed is true.",
             "maintenance", ("upgrade", "packages")),
    _Shipped("security_patches.yml", "Security patches",
             "Install security updates only (unattended-upgrades on apt, dnf/yum --security).",
             "security", ("security", "packages")),
    _Shipped("kernel_upgrade.yml", "Kernel upgrade",
             "Upgrade the kernel packages; reboots when needed if reboot_if_needed is true.",
             "maintenance", ("kernel", "reboot")),
    _Shipped("container_runtime_restart.yml", "Container runtime restart",
             "Restart containerd or docker (whichever runs) and wait until it answers again.",
             "kubernetes", ("containerd", "docker")),
    _Shipped("time_sync.yml", "Time sync",
             "Point chrony (or ntpd) at ntp_server and wait until the clock is synchronised.",
             "system", ("ntp", "chrony")),
)  # fmt: skip


def builtin_text(file: str) -> str:
    return resources.files("knm.plugins.ansible").joinpath("builtin", file).read_text()


def builtin_playbooks() -> list[BuiltinContent]:
    return [
        BuiltinContent(
            kind=PLAYBOOK.kind,
            name=item.name,
            body=builtin_text(item.file),
            description=item.description,
            category=item.category,
            tags=list(item.tags),
        )
        for item in BUILTINS
    ]
