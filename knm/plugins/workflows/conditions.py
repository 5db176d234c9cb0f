"""Node conditions a step needs, what a step does to a node, and how to tell from its text.

A step may declare ``requires: [cordoned, drained]`` and ``reboots: true``; ``k8s`` actions carry
their own: ``cordon`` and ``drain`` establish ``cordoned`` (and ``drained``), an ``uncordon``
after a step that reboots needs that node's reboot confirmed by a new boot id. A step that
reboots implicitly requires ``cordoned`` and ``drained``. The engine checks them on each node's
live state right before the step runs there (:mod:`knm.plugins.workflows.gate`).

Whether a command, script or playbook reboots is read from its text: a command that runs
``reboot``/``shutdown``/``poweroff``/``halt``/``systemctl reboot``/``init 6``/``kexec -e``/
a sysrq ``b`` (after unwrapping ``sudo``, ``nohup``, ``sh -c`` … with the guard-rail's parser),
or a playbook task using the ``reboot`` module or running such a command. A step that does so
without ``reboots: true`` is refused when the workflow is saved, and again as rendered at run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from knm.core import shellparse
from knm.plugins.workflows.definition import Step

CORDONED, DRAINED = "cordoned", "drained"
#: ``k8s`` actions that establish ``cordoned`` (and, for drain, ``drained``) on their nodes.
ESTABLISHING = frozenset({"cordon", "drain"})
_POWER_VERBS = frozenset({"reboot", "poweroff", "halt", "kexec", "soft-reboot"})
_POWER_TARGETS = frozenset(f"{verb}.target" for verb in _POWER_VERBS)
_REBOOT_MODULES = frozenset(
    {"reboot", "ansible.builtin.reboot", "ansible.legacy.reboot", "community.general.shutdown",
     "ansible.builtin.shutdown"}
)  # fmt: skip
_SHELL_MODULES = frozenset(
    {"command", "shell", "raw", "ansible.builtin.command", "ansible.builtin.shell",
     "ansible.builtin.raw", "ansible.legacy.command", "ansible.legacy.shell"}
)  # fmt: skip
HINT = (
    'it may reboot the node: say so with "reboots": true, so the engine checks the node is '
    "cordoned and drained first and waits for a new boot id before giving it back"
)


def k8s_action(step: Step) -> str | None:
    if step.common.type != "k8s":
        return None
    action = step.fields.get("action")
    return action if isinstance(action, str) else None


def required(step: Step) -> set[str]:
    """The node conditions ``step`` needs before it runs on a node."""
    needed = set(step.common.requires)
    if step.common.reboots:
        needed |= {CORDONED, DRAINED}
    return needed


def establishes(step: Step) -> bool:
    return k8s_action(step) in ESTABLISHING


def ancestors(step: Step, steps: dict[str, Step]) -> set[str]:
    seen: set[str] = set()
    todo = list(step.common.depends_on)
    while todo:
        current = todo.pop()
        if current in seen or current not in steps:
            continue
        seen.add(current)
        todo.extend(steps[current].common.depends_on)
    return seen


def needs_new_boot(step: Step, steps: dict[str, Step]) -> bool:
    """An ``uncordon`` after a step that reboots: gives a node back only once it rebooted."""
    if k8s_action(step) != "uncordon":
        return False
    return any(steps[a].common.reboots for a in ancestors(step, steps))


def touches_cordons(steps: Iterable[Step]) -> bool:
    """Whether a workflow cordons nodes (so a node cordoned by hand is in its way)."""
    return any(establishes(s) or required(s) for s in steps)


# --- reading what a command does -----------------------------------------------------------


def _reboots(program: str, args: list[str]) -> bool:
    if not program:
        return False
    if program in ("reboot", "poweroff", "halt"):
        return "--help" not in args
    if program == "shutdown":
        return not ({"-c", "--help"} & set(args))
    if program in ("systemctl", "loginctl"):
        return any(a in _POWER_VERBS or a in _POWER_TARGETS for a in args)
    if program in ("init", "telinit"):
        return any(a in ("0", "6") for a in args)
    if program == "kexec":
        return any(a in ("-e", "--exec") for a in args)
    return False


def reboot_commands(text: str) -> list[str]:
    """The commands in ``text`` (a command line or a script) that reboot or power off."""
    found = []
    for command in shellparse.analyze(text).commands:
        # Words are what each may be; an unknown part is blanked (``value``), wrappers peeled.
        if _reboots(command.program, [word.value for word in command.words[1:]]):
            found.append(command.text)
            continue
        for _, target in command.redirects:
            if any(alt.rstrip("/") == "/proc/sysrq-trigger" for alt in target.alts):
                found.append(f"{command.text} > {target.value}")
    return found


def _tasks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from _tasks(node[key])
        if not any(k in node for k in ("hosts", "block")):
            yield node


def playbook_reboots(content: str) -> list[str]:
    """The tasks of a playbook that reboot (the ``reboot`` module, or a shell that does)."""
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError:
        return []
    found = []
    for task in _tasks(doc):
        name = str(task.get("name", "a task"))
        for module, args in task.items():
            if module in _REBOOT_MODULES:
                found.append(f"{name} ({module})")
            elif module in _SHELL_MODULES:
                text = args.get("cmd", "") if isinstance(args, dict) else args
                if isinstance(text, str) and reboot_commands(text):
                    found.append(f"{name} ({module}: {text.strip()})")
    return found
