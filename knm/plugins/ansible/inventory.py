"""The run's inventory, built from the resolved nodes and the credential.

Each node is a host named after the node, with ``ansible_host``/``ansible_port``/
``ansible_user`` from resolution and the credential. Labels become host vars: all of them in
``node_labels`` (a dict), and each one whose key makes a valid name as ``label_<key>`` (``.``,
``/`` and ``-`` turned into ``_``). ``node-role.kubernetes.io/<role>`` labels make groups named
after the role (``control-plane`` → ``control_plane``).

Secrets are never a file of the run: a private key (decrypted here when it has a passphrase)
goes to the run's own ssh-agent (``agent.py``), a password to ansible-playbook's
``--ask-pass``/``--ask-become-pass`` prompts (``passwords.py``).

Every host uses knm's shell plugin (``ansible_shell_type``, see ``remote.py``), which marks the
run's processes on the nodes.
"""

from __future__ import annotations

import re
from typing import Any

import asyncssh
import msgspec

from knm.core.tasks import TargetNode
from knm.plugins.ansible.remote import SHELL_TYPE

ROLE_PREFIX = "node-role.kubernetes.io/"
_RESERVED_GROUPS = frozenset({"all", "ungrouped", "localhost"})


class Inventory(msgspec.Struct, kw_only=True):
    #: The host file (no secrets), as YAML-compatible JSON.
    hosts: dict[str, Any]
    #: The private key without a passphrase, for the run's ssh-agent; "" when none.
    agent_key: str = ""
    #: The password ansible-playbook asks for (login and become); "" when none.
    password: str = ""

    def __repr__(self) -> str:
        return f"Inventory(hosts={self.hosts!r}, <secrets hidden>)"


def safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else ""


def host_vars(node: TargetNode, username: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ansible_host": node.address,
        "ansible_port": node.port or 22,
        "ansible_user": username,
        "node_labels": dict(node.labels),
    }
    for key, value in sorted(node.labels.items()):
        name = safe_name(key)
        if name:
            values[f"label_{name}"] = value
    return values


def groups_of(nodes: list[TargetNode]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for key in node.labels:
            if key.startswith(ROLE_PREFIX):
                group = safe_name(key.removeprefix(ROLE_PREFIX))
                if group and group not in _RESERVED_GROUPS and group not in _host_names(nodes):
                    groups.setdefault(group, {"hosts": {}})["hosts"][node.name] = None
    return groups


def _host_names(nodes: list[TargetNode]) -> set[str]:
    return {node.name for node in nodes}


def unlocked_key(private_key: str, passphrase: str | None) -> str:
    """The key in OpenSSH format without a passphrase (it only ever reaches ssh-agent)."""
    key = asyncssh.import_private_key(private_key, passphrase or None)
    return key.export_private_key("openssh").decode()


def build(nodes: list[TargetNode], credential: Any) -> Inventory:
    hosts = {node.name: host_vars(node, credential.username) for node in nodes}
    inventory: dict[str, Any] = {
        "all": {"hosts": hosts, "vars": {"ansible_shell_type": SHELL_TYPE}}
    }
    children = groups_of(nodes)
    if children:
        inventory["all"]["children"] = children
    agent_key = ""
    if credential.private_key:
        agent_key = unlocked_key(credential.private_key, credential.passphrase)
    return Inventory(hosts=inventory, agent_key=agent_key, password=credential.password or "")
