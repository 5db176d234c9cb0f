"""``knm k8s label|taint|wait-ready``: node changes in kubectl's words, run as ``k8s`` tasks.

    knm k8s label production w1 w2 env=prod tier-            # set env, remove tier
    knm k8s taint production w1 dedicated=gpu:NoSchedule     # add a taint
    knm k8s taint production w1 dedicated-                   # remove every dedicated taint
    knm k8s wait-ready production w1 --timeout 10m

The API takes one change per task kind (``label``, ``unlabel``) and one taint per task
(``taint``, ``untaint``), so a command line naming several runs one task after another, each
followed like any run command; the first that does not succeed stops the rest. The cluster is
the first word unless ``-c`` names it; a word with ``=``, ``:`` or a trailing ``-`` is a change
(a node's name can hold none of them), any other word is a node.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knm.cli.remote.session import OK, UsageError, command, error
from knm.cli.remote.tasks import add_target_options, started, targets

if TYPE_CHECKING:
    from knm.client.sync import Client

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
LABEL_SYNTAX = "KEY=VALUE to set, KEY- to remove (env=prod tier-)"
TAINT_SYNTAX = (
    "KEY[=VALUE]:EFFECT to add, KEY- or KEY:EFFECT- to remove (dedicated=gpu:NoSchedule dedicated-)"
)


@dataclass(frozen=True)
class Change:
    """One ``k8s`` task to run: its action, params, and how the user wrote it."""

    action: str
    params: dict[str, Any]
    words: str


def is_change(word: str) -> bool:
    return "=" in word or ":" in word or word.endswith("-")


def split_words(
    args: argparse.Namespace, *, changes: bool = True
) -> tuple[str, list[str], list[str]]:
    """``(cluster, nodes, change words)`` from the positional words and ``-c``."""
    words = list(args.words)
    cluster = args.cluster
    if cluster is None:
        if not words or (changes and is_change(words[0])):
            raise UsageError(f"give the cluster first: {args.prog} {args.syntax}")
        cluster = words.pop(0)
    found = [w for w in words if changes and is_change(w)]
    nodes = [w for w in words if not (changes and is_change(w))]
    return cluster, nodes, found


def _key_problem(key: str) -> str | None:
    from knm.wire.labels import label_key_problem

    return label_key_problem(key)


def _value_problem(value: str) -> str | None:
    from knm.wire.labels import label_value_problem

    return label_value_problem(value)


def label_changes(words: list[str]) -> list[Change]:
    """The ``label`` and ``unlabel`` tasks that make the labels of ``words``."""
    if not words:
        raise UsageError(f"give at least one label: {LABEL_SYNTAX}")
    sets: dict[str, str] = {}
    removes: list[str] = []
    for word in words:
        if word.endswith("-") and "=" not in word:
            key = word[:-1]
            if key in sets:
                raise UsageError(f"label {key}: both set ({key}={sets[key]}) and removed ({word})")
            problem = _key_problem(key)
            if problem:
                raise UsageError(f"{word}: {problem}")
            removes.append(key)
            continue
        key, sep, value = word.partition("=")
        if not sep:
            raise UsageError(f"{word!r} is not a label change: {LABEL_SYNTAX}")
        if key in removes:
            raise UsageError(f"label {key}: both set ({word}) and removed ({key}-)")
        if key in sets and sets[key] != value:
            raise UsageError(f"label {key}: set twice ({key}={sets[key]} and {word})")
        for problem in (_key_problem(key), _value_problem(value)):
            if problem:
                raise UsageError(f"{word}: {problem}")
        sets[key] = value
    found = []
    if sets:
        text = " ".join(f"{k}={v}" for k, v in sets.items())
        found.append(Change("label", {"labels": sets}, text))
    if removes:
        found.append(Change("unlabel", {"keys": removes}, " ".join(f"{k}-" for k in removes)))
    return found


def _effect(word: str, effect: str) -> str:
    if effect not in EFFECTS:
        raise UsageError(f"taint {word}: unknown effect {effect!r}; valid: {', '.join(EFFECTS)}")
    return effect


def taint_changes(words: list[str]) -> list[Change]:
    """One ``taint`` task per taint to add, then one ``untaint`` task per taint to remove."""
    if not words:
        raise UsageError(f"give at least one taint: {TAINT_SYNTAX}")
    adds: dict[tuple[str, str], Change] = {}
    removes: dict[tuple[str, str | None], Change] = {}
    for word in words:
        if word.endswith("-"):
            key, _, effect = word[:-1].partition(":")
            params: dict[str, Any] = {"key": key}
            if effect:
                params["effect"] = _effect(word, effect)
            problem = _key_problem(key)
            if problem:
                raise UsageError(f"taint {word}: {problem}")
            removes[(key, effect or None)] = Change("untaint", params, word)
            continue
        pair, sep, effect = word.rpartition(":")
        if not sep:
            raise UsageError(
                f"taint {word}: give its effect ({', '.join(EFFECTS)}): {TAINT_SYNTAX}"
            )
        key, _, value = pair.partition("=")
        _effect(word, effect)
        for problem in (_key_problem(key), _value_problem(value)):
            if problem:
                raise UsageError(f"taint {word}: {problem}")
        if (key, effect) in adds and adds[(key, effect)].words != word:
            raise UsageError(
                f"taint {key}:{effect}: added twice ({adds[(key, effect)].words}, {word})"
            )
        adds[(key, effect)] = Change("taint", {"key": key, "value": value, "effect": effect}, word)
    for key, effect in removes:
        clash = [c.words for (k, e), c in adds.items() if k == key and effect in (None, e)]
        if clash:
            removed = removes[(key, effect)].words
            raise UsageError(f"taint {key}: both added ({clash[0]}) and removed ({removed})")
    return [*adds.values(), *removes.values()]


def _idempotency_key(args: argparse.Namespace, index: int, count: int) -> str | None:
    # Each task of a multi-change command needs its own key, or the server would answer the
    # second start with the first task.
    key = args.idempotency_key
    return key if key is None or count == 1 else f"{key}-{index + 1}"


def run_changes(args: argparse.Namespace, client: Client, changes: list[Change]) -> int:
    """Start each change's task and follow it; the first that does not succeed stops the rest."""
    from knm.client import TERMINAL

    fields = targets(args)
    for index, change in enumerate(changes):
        task = client.k8s.execute(
            change.action,
            args.cluster,
            params=change.params,
            idempotency_key=_idempotency_key(args, index, len(changes)),
            **fields,
        )
        code = started(args, client, task)
        rest = changes[index + 1 :]
        if not rest or args.detach:
            if code != OK:
                return code
            continue
        if code == OK and client.task(task.task_id).status in TERMINAL:
            continue
        # Failed, cancelled, or detached from with Ctrl-C: nothing more is started.
        why = "did not succeed" if code != OK else "is still running"
        error(f"not started: {' '.join(c.words for c in rest)} (task {task.task_id} {why})")
        return code
    return OK


def _targeted(args: argparse.Namespace, *, changes: bool = True) -> list[str]:
    """Settle ``args.cluster`` and ``args.nodes``; return the change words."""
    cluster, nodes, words = split_words(args, changes=changes)
    args.cluster = cluster
    args.nodes = [*(args.nodes or []), *nodes]
    if not args.nodes and not args.selector:
        raise UsageError(f"give the nodes, or --selector: {args.prog} {args.syntax}")
    return words


@command
def label(args: argparse.Namespace, client: Client) -> int:
    changes = label_changes(_targeted(args))
    return run_changes(args, client, changes)


@command
def taint(args: argparse.Namespace, client: Client) -> int:
    changes = taint_changes(_targeted(args))
    return run_changes(args, client, changes)


@command
def wait_ready(args: argparse.Namespace, client: Client) -> int:
    _targeted(args, changes=False)
    if args.boot_id and not args.after_reboot:
        raise UsageError("--boot-id is the boot id before a reboot: give --after-reboot too")
    params: dict[str, Any] = {"after_reboot": True} if args.after_reboot else {}
    if args.boot_id:
        params["boot_id"] = args.boot_id
    return run_changes(args, client, [Change("wait_ready", params, "wait-ready")])


def _words_parser(
    sub: Any,
    parent: argparse.ArgumentParser,
    name: str,
    syntax: str,
    text: str,
    *,
    metavar: str,
    words_help: str | None = None,
    func: Any,
) -> argparse.ArgumentParser:
    """A ``knm k8s`` command whose cluster, nodes and changes are loose words (kubectl's way),
    with the run commands' target options."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, parents=[parent], usage=f"%(prog)s {syntax} [options]", words="words", help=text
    )
    p.add_argument("words", nargs="*", metavar=metavar, help=words_help)
    add_target_options(p, credential=False, cluster_required=False)
    p.set_defaults(func=func, syntax=syntax, prog=p.prog)
    return p


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["k8s"]
    _words_parser(
        sub, parent, "label", "[CLUSTER] NODE... KEY=VALUE... KEY-...",
        "set or remove node labels: knm k8s label C N env=prod tier-",
        metavar="CLUSTER NODE... LABEL", words_help=LABEL_SYNTAX, func=label,
    )  # fmt: skip
    _words_parser(
        sub, parent, "taint", "[CLUSTER] NODE... KEY[=VALUE]:EFFECT... KEY-...",
        "add or remove node taints: knm k8s taint C N dedicated=gpu:NoSchedule",
        metavar="CLUSTER NODE... TAINT", words_help=TAINT_SYNTAX, func=taint,
    )  # fmt: skip
    p = _words_parser(
        sub, parent, "wait-ready", "[CLUSTER] NODE... [--timeout 10m]",
        "wait until nodes are Ready (--after-reboot: rebooted)",
        metavar="CLUSTER NODE...", func=wait_ready,
    )  # fmt: skip
    p.add_argument(
        "--after-reboot",
        action="store_true",
        help="also wait for a new boot id (the one record_boot_id stored, or --boot-id)",
    )
    p.add_argument("--boot-id", help="the boot id the node had before its reboot")
