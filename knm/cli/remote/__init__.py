"""Remote commands: they speak HTTP to a knm server through ``knm.client``.

``register(subparsers)`` adds ``login``, ``logout``, ``apply``, ``get`` and the nouns ``config`` (contexts: which
server and login to use, kept on this machine), ``ssh``, ``ansible``,
``script``, ``workflow``, ``k8s``, ``task``, ``playbook``, ``cluster``, ``credential``, ``user``,
``token``, ``audit``, ``hostkey``, ``schedule``, ``notification`` and ``window``.
Exit codes are listed in ``knm.cli.remote.session``.
"""

from __future__ import annotations

import argparse
from typing import Any

from knm.cli.remote import (
    apply,
    audit,
    auth,
    clusters,
    config,
    content,
    credentials,
    get,
    hostkeys,
    node_changes,
    notifications,
    run,
    schedules,
    session,
    tasks,
    tokens,
    users,
    windows,
)

NOUNS = {
    "ssh": "run commands over SSH",
    "ansible": "run playbooks",
    "script": "the script library and script runs",
    "workflow": "workflows: definitions, runs, approvals",
    "k8s": "Kubernetes node actions",
    "task": "tasks of every kind",
    "playbook": "the playbook library",
    "cluster": "clusters and their nodes",
    "credential": "SSH credentials",
    "user": "users and their roles",
    "token": "API tokens",
    "audit": "the audit log",
    "config": "contexts: the servers and logins to use",
    "hostkey": "pinned SSH host keys of nodes",
    "schedule": "requests started at cron times or intervals",
    "notification": "webhook, Slack and email notifications of events",
    "window": "maintenance windows: when disruptive rolls may run",
}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parent = session.common_parent()
    auth.register(subparsers, parent)
    apply.register(subparsers, parent)
    get.register(subparsers, parent)
    nouns = {}
    for name, text in NOUNS.items():
        parser = subparsers.add_parser(name, help=text)
        nouns[name] = parser.add_subparsers(
            dest=f"{name}_command", metavar="COMMAND", required=True, parser_class=session.Parser
        )
    config.register(nouns, parent)
    run.register(nouns, parent)
    node_changes.register(nouns, parent)
    content.register(nouns, parent)
    tasks.register(nouns, parent)
    clusters.register(nouns, parent)
    credentials.register(nouns, parent)
    users.register(nouns, parent)
    tokens.register(nouns, parent)
    audit.register(nouns, parent)
    hostkeys.register(nouns, parent)
    schedules.register(nouns, parent)
    notifications.register(nouns, parent)
    windows.register(nouns, parent)
