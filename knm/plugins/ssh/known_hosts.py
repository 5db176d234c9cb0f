"""Host keys for an external ssh client (Ansible's), following the ``host_key_policy``;
served as ``SshTransport.host_keys`` (the core ``Transport`` contract).

- ``off``: no checking.
- ``tofu``: each node's pinned key goes into the ``known_hosts`` text; a node with no pin yet
  is scanned (asyncssh) and its key pinned, so SSH tasks and Ansible runs trust the same key.
- ``strict``: pinned keys and the cert authorities covering the cluster; nothing is scanned.

A cluster's bastion is one more host, pinned as ``@bastion``. Its nodes may be out of knm's
reach, so under ``tofu`` the ones with no pin are scanned through the bastion (an asyncssh
connection with the bastion's credential, its key checked and pinned by the same rules).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import asyncssh

from knm.core.tasks import TargetNode
from knm.core.transport import HostKeys, TransportError
from knm.plugins.ssh import hostkeys as store
from knm.plugins.ssh.connect import open_connection
from knm.plugins.ssh.hostkeys import BASTION, HostKeyCheck

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.ssh")
SCAN_TIMEOUT = 10.0


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


async def _scan(address: str, port: int, tunnel: Any = None) -> asyncssh.SSHKey | None:
    try:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(address, port, tunnel=tunnel), SCAN_TIMEOUT
        )
    except (OSError, asyncssh.Error, TimeoutError):
        return None


async def _tunnel(knm: Knm, settings: Any, cluster: str, jump: Any) -> Any:
    """A logged-in connection to the bastion to scan nodes through, or None."""
    check = HostKeyCheck(knm.pool, settings, cluster, BASTION, jump.address, jump.port)
    try:
        return await open_connection(
            address=jump.address, port=jump.port, credential=jump.credential, check=check,
            connect_timeout=getattr(settings, "connect_timeout", SCAN_TIMEOUT),
        )  # fmt: skip
    except TransportError as exc:
        log.info("cannot scan host keys through the bastion of %s: %s", cluster, exc.message)
        return None


async def host_keys(knm: Knm, cluster: str, nodes: list[TargetNode], jump: Any = None) -> HostKeys:
    """The run's host keys; ``jump`` is the cluster's ``bastion.Jump`` or None."""
    settings = await knm.features.settings("ssh")
    policy = settings.host_key_policy
    if policy == "off":
        return HostKeys(policy="off")
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
        pin = await store.get_pin(knm.pool, cluster, node.name)
        if pin is not None:
            pinned.add(node.name)
            lines.append(f"{pattern} {pin.public_key}")
            return
        if policy == "strict":
            return
        key = await scan(node, port)
        if key is None:
            return  # unreachable now; ssh will say so
        held = await store.pin(knm.pool, cluster, node.name, key, node.address, port)
        if held.public_key != store.key_line(key):
            pinned.add(node.name)
        lines.append(f"{pattern} {held.public_key}")

    try:
        if jump is not None:
            # First: scanning through the bastion checks its key against this pin.
            await one(TargetNode(name=BASTION, address=jump.address, port=jump.port))
        await asyncio.gather(*(one(node) for node in nodes))
    finally:
        if tunnel:
            tunnel.close()
    if policy == "strict":
        for authority in settings.cert_authorities:
            if authority.covers(cluster):
                lines.append(f"@cert-authority * {authority.public_key.strip()}")
    return HostKeys(policy=policy, text="".join(f"{line}\n" for line in lines), pinned=pinned)
