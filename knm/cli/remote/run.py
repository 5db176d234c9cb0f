"""Commands that start tasks: ``knm ssh run``, ``knm ansible run``, ``knm script run``,
``knm workflow run|approve|reject|resume`` and ``knm k8s drain|cordon|uncordon`` (``label``,
``taint`` and ``wait-ready`` are in ``node_changes``).

Each follows its task to the end (see ``tasks.follow``) unless ``--detach``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import content
from knm.cli.remote.credentials import resolve_credential
from knm.cli.remote.session import command, done, key_values, reference
from knm.cli.remote.tasks import add_start_options, add_target_options, started, targets

if TYPE_CHECKING:
    from knm.client.sync import Client


def _common(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    fields = targets(args)
    if getattr(args, "credential", None):
        fields["credential_id"] = resolve_credential(client, args.credential)
    return fields


@command
def ssh_run(args: argparse.Namespace, client: Client) -> int:
    task = client.ssh.execute(
        args.cluster,
        " ".join(args.remote_command),
        sudo=args.sudo or None,
        idempotency_key=args.idempotency_key,
        **_common(args, client),
    )
    return started(args, client, task)


@command
def ansible_run(args: argparse.Namespace, client: Client) -> int:
    playbook_id = content.resolve(client.playbooks, args.playbook)
    task = client.ansible.run(
        playbook_id,
        args.cluster,
        extra_vars=key_values(args.extra_var, typed=True) or None,
        extra_args=args.extra_args,
        idempotency_key=args.idempotency_key,
        **_common(args, client),
    )
    return started(args, client, task)


@command
def stored_run(args: argparse.Namespace, client: Client) -> int:
    """``knm script run`` and ``knm workflow run``: a stored item of ``args.noun`` run with its
    ``-p`` parameters."""
    api = client.scripts if args.noun == "script" else client.workflows
    task = api.execute(
        content.resolve(api, getattr(args, args.noun)),
        args.cluster,
        parameters=key_values(args.param) or None,
        idempotency_key=args.idempotency_key,
        **_common(args, client),
    )
    return started(args, client, task)


@command
def workflow_decide(args: argparse.Namespace, client: Client) -> int:
    decide = client.workflows.approve if args.decision == "approve" else client.workflows.reject
    decision = decide(args.task_id, args.step_id, args.comment)
    return done(args, decision, f"{decision.task_id}: step {decision.step_id} {decision.decision}")


@command
def workflow_resume(args: argparse.Namespace, client: Client) -> int:
    task = client.workflows.resume(args.task_id, key_values(args.param) or None)
    return started(args, client, task)


@command
def k8s_action(args: argparse.Namespace, client: Client) -> int:
    args.nodes = [*(args.nodes or []), *args.node_names]
    task = client.k8s.execute(
        args.action,
        args.cluster,
        params=key_values(args.param, typed=True) or None,
        idempotency_key=args.idempotency_key,
        **targets(args),
    )
    return started(args, client, task)


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    p = nouns["ssh"].add_parser(
        "run", parents=[parent], help="run a command on nodes: knm ssh run -c C -n N -- df -h"
    )
    add_target_options(p)
    p.add_argument("--sudo", action="store_true", help="run as root through sudo")
    p.add_argument("remote_command", nargs="+", metavar="COMMAND", help="after --")
    p.set_defaults(func=ssh_run)

    p = nouns["ansible"].add_parser("run", parents=[parent], help="run a stored playbook")
    live(
        p.add_argument("playbook", type=reference("playbook"), help="playbook id or name"),
        "playbook",
    )
    add_target_options(p)
    p.add_argument("-e", "--extra-var", action="append", metavar="KEY=VALUE")
    p.add_argument("--extra-args", help="extra ansible-playbook arguments, as --extra-args=--check")
    p.set_defaults(func=ansible_run)

    for noun, text in (("script", "run a stored script"), ("workflow", "run a workflow")):
        p = nouns[noun].add_parser("run", parents=[parent], help=text)
        live(p.add_argument(noun, type=reference(noun), help=f"{noun} id or name"), noun)
        add_target_options(p)
        p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
        p.set_defaults(func=stored_run, noun=noun)

    wf = nouns["workflow"]
    for decision in ("approve", "reject"):
        p = wf.add_parser(decision, parents=[parent], help=f"{decision} a waiting approval step")
        live(p.add_argument("task_id", type=reference("task")), "task")
        p.add_argument("step_id")
        p.add_argument("--comment", default="")
        p.set_defaults(func=workflow_decide, decision=decision)
    p = wf.add_parser(
        "resume", parents=[parent], help="run a failed workflow again from where it stopped"
    )
    live(p.add_argument("task_id", type=reference("task")), "task")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE")
    add_start_options(p)
    p.set_defaults(func=workflow_resume)

    for action in ("drain", "cordon", "uncordon"):
        # ``words``: node names before, between and after the options, as kubectl takes them.
        p = nouns["k8s"].add_parser(
            action, parents=[parent], words="node_names", help=f"{action} nodes"
        )
        p.add_argument("node_names", nargs="*", metavar="NODE", help="node names, anywhere")
        add_target_options(p, credential=False)
        p.add_argument(
            "-p", "--param", action="append", metavar="KEY=VALUE", help="action parameter"
        )
        p.set_defaults(func=k8s_action, action=action)
