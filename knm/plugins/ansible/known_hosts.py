"""Host key checking for Ansible runs, following the SSH plugin's ``host_key_policy``.

- ``off``: no checking.
- ``tofu``: each node's key pinned by the SSH plugin goes into the run's ``known_hosts``; a
  node with no pin yet is scanned (asyncssh) and its key pinned through the SSH plugin's pin
  store, so SSH tasks and Ansible runs trust the same key.
- ``strict``: pinned keys and the cert authorities covering the cluster; nothing is scanned.

ssh then runs with ``StrictHostKeyChecking=yes`` against that file only. Without the SSH
plugin (no pin store), ``tofu`` scans every node for this run alone.

A cluster's bastion is one more host, pinned as ``@bastion`` like the SSH plugin does. Its
nodes may be out of knm's reach, so under ``tofu`` the ones with no pin are scanned through
the bastion (an asyncssh connection with the bastion's credential, its key checked and pinned
by the SSH plugin's rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncssh
import msgspec

from knm.core.tasks import TargetNode

log = logging.getLogger("knm.ansible")
SCAN_TIMEOUT = 10.0
#: The SSH plugin's node name for a cluster's bastion.
BASTION = "@bastion"


class HostKeys(msgspec.Struct, kw_only=True):
    policy: str
    #: known_hosts text ("" under ``off``).
    text: str = ""
    #: Nodes whose key was pinned before (a mismatch there is ``host_key_changed``).
    pinned: set[str] = msgspec.field(default_factory=set)


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


async def _ssh_settings(knm: Any) -> Any:
    with contextlib.suppress(Exception):
        return await knm.features.settings("ssh")
    return None


async def _scan(address: str, port: int, tunnel: Any = None) -> asyncssh.SSHKey | None:
    try:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(address, port, tunnel=tunnel), SCAN_TIMEOUT
        )
    except (OSError, asyncssh.Error, TimeoutError):
        return None


async def _tunnel(knm: Any, settings: Any, cluster: str, jump: Any) -> Any:
    """A logged-in connection to the bastion to scan nodes through, or None."""
    if settings is None:
        return None
    try:
        from knm.plugins.ssh.connect import open_connection
        from knm.plugins.ssh.errors import TransportError
        from knm.plugins.ssh.hostkeys import BASTION, HostKeyCheck
    except ImportError:  # pragma: no cover - the ssh plugin ships with knm
        return None
    check = HostKeyCheck(knm.pool, settings, cluster, BASTION, jump.address, jump.port)
    try:
        return await open_connection(
            address=jump.address, port=jump.port, credential=jump.credential, check=check,
            connect_timeout=getattr(settings, "connect_timeout", SCAN_TIMEOUT),
        )  # fmt: skip
    except TransportError as exc:
        log.info("cannot scan host keys through the bastion of %s: %s", cluster, exc.message)
        return None


async def host_keys(knm: Any, cluster: str, nodes: list[TargetNode], jump: Any = None) -> HostKeys:
    """The run's host keys; ``jump`` is the cluster's ``bastion.Jump`` or None."""
    settings = await _ssh_settings(knm)
    policy = getattr(settings, "host_key_policy", "tofu")
    if policy == "off":
        return HostKeys(policy="off")
    try:
        from knm.plugins.ssh import hostkeys as pins
    except ImportError:  # pragma: no cover - the ssh plugin ships with knm
        pins = None
    store = pins if settings is not None else None
    lines: list[str] = []
    pinned: set[str] = set()
    tunnel: Any = None
    tunnel_lock = asyncio.Lock()

    async def scan(node: TargetNode, port: int) -> asyncssh.SSHKey | None:
        nonlocal tunnel
        if jump is None or node.name == BASTION:
            return await _scan(node.address, port)
        async with tunnel_lock:
            if tunnel is None:
                tunnel = await _tunnel(knm, settings, cluster, jump) or False
        if tunnel is False:
            return None
        return await _scan(node.address, port, tunnel)

    async def one(node: TargetNode) -> None:
        port = node.port or 22
        pattern = host_pattern(node.address, port)
        pin = await store.get_pin(knm.pool, cluster, node.name) if store else None
        if pin is not None:
            pinned.add(node.name)
            lines.append(f"{pattern} {pin.public_key}")
            return
        if policy == "strict":
            return
        key = await scan(node, port)
        if key is None:
            return  # unreachable now; ssh will say so
        if store is not None:
            held = await store.pin(knm.pool, cluster, node.name, key, node.address, port)
            if held.public_key != store.key_line(key):
                pinned.add(node.name)
            lines.append(f"{pattern} {held.public_key}")
        else:
            lines.append(f"{pattern} {' '.join(key.export_public_key().decode().split()[:2])}")

    try:
        if jump is not None:
            # First: scanning through the bastion checks its key against this pin.
            await one(TargetNode(name=BASTION, address=jump.address, port=jump.port))
        await asyncio.gather(*(one(node) for node in nodes))
    finally:
        if tunnel:
            tunnel.close()
    if policy == "strict":
        for authority in getattr(settings, "cert_authorities", []):
            if authority.covers(cluster):
                lines.append(f"@cert-authority * {authority.public_key.strip()}")
    return HostKeys(policy=policy, text="".join(f"{line}\n" for line in lines), pinned=pinned)


def ssh_args(keys: HostKeys, known_hosts_path: str) -> str:
    if keys.policy == "off":
        return "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    return (
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts_path} "
        "-o GlobalKnownHostsFile=/dev/null"
    )
