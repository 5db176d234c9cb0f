"""The run's inventory, built from the resolved nodes and the credential.

Each node is a host named after the node, with ``ansible_host``/``ansible_port``/
``ansible_user`` from resolution and the credential. Labels become host vars: all of them in
``node_labels`` (a dict), and each one whose key makes a valid name as ``label_<key>`` (``.``,
``/`` and ``-`` turned into ``_``). ``node-role.kubernetes.io/<role>`` labels make groups named
after the role (``control-plane`` → ``control_plane``).

Secrets never go into the host file: a password goes into ``group_vars/all.yml`` (0600, the run
user's) marked ``!unsafe`` so Ansible never templates it. A private key without a passphrase is
written to the run's key file (``keys/node``, 0600, the run user's, removed with the run); one
with a passphrase is decrypted here and handed to ansible-runner's ssh-agent (``env/ssh_key``,
read through a FIFO, so the decrypted key is never on disk) — starting an agent costs every
run time, so only a passphrase is worth it.

Every host uses knm's shell plugin (``ansible_shell_type``, see ``remote.py``), which marks the
run's processes on the nodes.
"""

from __future__ import annotations

import json
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
    #: ``group_vars/all.yml`` text (secrets), "" when there are none.
    secret_vars: str = ""
    #: A decrypted private key for ssh-agent (it had a passphrase), "" when none.
    agent_key: str = ""
    #: A private key without passphrase for the key file, "" when none.
    key_file: str = ""


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
    secret_lines = []
    if credential.password:
        # JSON strings are valid YAML double-quoted scalars; !unsafe stops templating.
        quoted = json.dumps(credential.password)
        secret_lines.append(f"ansible_password: !unsafe {quoted}")
        secret_lines.append(f"ansible_become_password: !unsafe {quoted}")
    agent_key = key_file = ""
    if credential.private_key and credential.passphrase:
        agent_key = unlocked_key(credential.private_key, credential.passphrase)
    elif credential.private_key:
        key_file = unlocked_key(credential.private_key, None)
    return Inventory(
        hosts=inventory,
        secret_vars="\n".join(secret_lines) + "\n" if secret_lines else "",
        agent_key=agent_key,
        key_file=key_file,
    )
