"""Host key pinning: the ``ssh_host_keys`` table and the ``host_key_policy`` rules.

A pin belongs to (cluster, node name). Under ``tofu`` the first key a node shows is pinned and
any other key later fails that node with ``host_key_changed`` — checked by asyncssh during the
key exchange, before any credential is sent. ``strict`` accepts only pinned keys or host
certificates signed by a configured CA; ``off`` accepts anything (with one warning per process).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncssh

from knm.core.transport import TransportError
from knm.plugins.ssh.schemas import HostKeyPin, SshSettings

log = logging.getLogger("knm.ssh")

#: The node name under which a cluster's jump host is pinned.
BASTION = "@bastion"
_COLUMNS = "cluster_name, node, key_type, fingerprint, public_key, address, port, created_at"
_warned_off = False

#: What ``asyncssh.connect(known_hosts=...)`` takes: None, or (host keys, CA keys, revoked).
KnownHosts = tuple[list[Any], list[Any], list[Any]] | None


def key_line(key: asyncssh.SSHKey) -> str:
    """The key as "<type> <base64>", without a comment, for comparing and storing."""
    return " ".join(key.export_public_key().decode().split()[:2])


def _pin(record: Any) -> HostKeyPin:
    return HostKeyPin(**dict(record))


async def get_pin(conn: Any, cluster: str, node: str) -> HostKeyPin | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM ssh_host_keys WHERE cluster_name = $1 AND node = $2", cluster, node
    )
    return None if record is None else _pin(record)


async def cluster_pins(conn: Any, cluster: str) -> dict[str, HostKeyPin]:
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM ssh_host_keys WHERE cluster_name = $1", cluster
    )
    return {r["node"]: _pin(r) for r in records}


class PinCache:
    """One cluster's pins as one task sees them: read with one query on first use, instead of
    one query per node (and per pooled connection reused), and kept up to date with the pins
    this task makes. A pin an admin changes while the task runs applies from the next task."""

    def __init__(self, pool: Any, cluster: str) -> None:
        self.pool = pool
        self.cluster = cluster
        self._pins: asyncio.Future[dict[str, HostKeyPin]] | None = None

    def _loaded(self) -> bool:
        pins = self._pins
        return pins is not None and pins.done() and not pins.cancelled() and not pins.exception()

    async def get(self, node: str) -> HostKeyPin | None:
        if self._pins is None or (self._pins.done() and not self._loaded()):
            # First use, or the last read failed: (re)read, once for every node waiting.
            self._pins = asyncio.ensure_future(cluster_pins(self.pool, self.cluster))
        return (await asyncio.shield(self._pins)).get(node)

    def put(self, pinned: HostKeyPin) -> None:
        if self._pins is not None and self._loaded():
            self._pins.result()[pinned.node] = pinned


async def pin(
    conn: Any, cluster: str, node: str, key: asyncssh.SSHKey, address: str, port: int
) -> HostKeyPin:
    """Pins ``key`` unless a key is pinned already; returns the pin that holds afterwards.

    Two first connections racing with different keys: the first insert wins, the other caller
    sees the winner's key and fails."""
    record = await conn.fetchrow(
        f"""INSERT INTO ssh_host_keys (cluster_name, node, key_type, fingerprint, public_key,
                                       address, port)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (cluster_name, node) DO NOTHING RETURNING {_COLUMNS}""",
        cluster, node, key.get_algorithm(), key.get_fingerprint(), key_line(key), address, port,
    )  # fmt: skip
    if record is not None:
        log.info("pinned host key %s of %s/%s", key.get_fingerprint(), cluster, node)
        return _pin(record)
    existing = await get_pin(conn, cluster, node)
    assert existing is not None
    return existing


async def set_pin(conn: Any, cluster: str, node: str, key: asyncssh.SSHKey) -> HostKeyPin:
    """An admin's pin: replaces whatever was pinned."""
    record = await conn.fetchrow(
        f"""INSERT INTO ssh_host_keys (cluster_name, node, key_type, fingerprint, public_key)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (cluster_name, node) DO UPDATE SET key_type = EXCLUDED.key_type,
                fingerprint = EXCLUDED.fingerprint, public_key = EXCLUDED.public_key,
                created_at = now()
            RETURNING {_COLUMNS}""",
        cluster, node, key.get_algorithm(), key.get_fingerprint(), key_line(key),
    )  # fmt: skip
    return _pin(record)


async def forget(conn: Any, cluster: str, node: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM ssh_host_keys WHERE cluster_name = $1 AND node = $2 RETURNING node",
        cluster, node,
    )  # fmt: skip
    return deleted is not None


async def list_pins(
    conn: Any, cluster: str | None, limit: int, offset: int
) -> tuple[int, list[HostKeyPin]]:
    where, args = ("WHERE cluster_name = $1", [cluster]) if cluster else ("", [])
    total = await conn.fetchval(f"SELECT count(*) FROM ssh_host_keys {where}", *args)
    n = len(args)
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM ssh_host_keys {where} ORDER BY cluster_name, node "
        f"LIMIT ${n + 1} OFFSET ${n + 2}",
        *args, limit, offset,
    )  # fmt: skip
    return total, [_pin(r) for r in records]


def _offer(trusted: list[asyncssh.SSHKey], authorities: list[Any]) -> list[str]:
    """Host key algorithms to offer: the trusted ones first, then every other one.

    Offering only the pinned key's algorithm would make a node rebuilt with another key type
    fail the key exchange (an "unreachable" node) instead of failing the key check."""
    from asyncssh.public_key import get_default_certificate_algs, get_default_public_key_algs

    first = [alg for key in trusted for alg in key.sig_algorithms]
    if authorities:
        first = [*get_default_certificate_algs(), *first]
    rest = list(get_default_public_key_algs())
    if not authorities:
        # Without a CA a certificate can never verify: never ask a node for one.
        first = [alg for alg in first if b"-cert-" not in alg]
    return list(dict.fromkeys(alg.decode() for alg in [*first, *rest]))


class HostKeyCheck:
    """The host key rules for one connection to (cluster, node): what asyncssh is told to trust
    before connecting, and what is pinned or compared once it is connected."""

    def __init__(
        self, pool: Any, settings: SshSettings, cluster: str, node: str, address: str, port: int,
        pins: PinCache | None = None,
    ) -> None:  # fmt: skip
        self.pool = pool
        #: The task's pins of the cluster; None reads this node's pin from the database.
        self.pins = pins
        self.policy = settings.host_key_policy
        self.authorities = [ca for ca in settings.cert_authorities if ca.covers(cluster)]
        self.cluster = cluster
        self.node = node
        self.address = address
        self.port = port
        self.pinned: HostKeyPin | None = None
        #: ``server_host_key_algs`` for asyncssh (None: its default).
        self.algorithms: list[str] | None = None

    def _label(self) -> str:
        return "the bastion" if self.node == BASTION else f"node {self.node}"

    async def _current(self) -> HostKeyPin | None:
        if self.pins is not None:
            return await self.pins.get(self.node)
        return await get_pin(self.pool, self.cluster, self.node)

    async def _pin(self, key: asyncssh.SSHKey) -> HostKeyPin:
        held = await pin(self.pool, self.cluster, self.node, key, self.address, self.port)
        if self.pins is not None:
            self.pins.put(held)
        return held

    async def known_hosts(self) -> KnownHosts:
        """The ``known_hosts`` argument for ``asyncssh.connect``; raises when strict refuses."""
        global _warned_off
        if self.policy == "off":
            if not _warned_off:
                _warned_off = True
                log.warning("SSH host key checking is off: any host key is accepted")
            return None
        self.pinned = await self._current()
        # Key objects, not text: asyncssh reads a string in these lists as a file name.
        trusted = [asyncssh.import_public_key(self.pinned.public_key)] if self.pinned else []
        if self.policy == "strict":
            authorities = [asyncssh.import_public_key(ca.public_key) for ca in self.authorities]
            if not trusted and not authorities:
                raise TransportError(
                    "host_key_unknown",
                    f"no host key is pinned for {self._label()} of cluster {self.cluster} and "
                    "the strict host key policy accepts no other; pin one "
                    f"(PUT /api/v1/automation/ssh/host-keys/{self.cluster}/{self.node}) or "
                    "configure a cert authority",
                )
            self.algorithms = _offer(trusted, authorities)
            return (trusted, authorities, [])
        if not trusted:
            return None
        self.algorithms = _offer(trusted, [])
        return (trusted, [], [])

    def rejected(self) -> TransportError:
        """The error for asyncssh's ``HostKeyNotVerifiable``."""
        if self.pinned is not None:
            return TransportError(
                "host_key_changed",
                f"the host key of {self._label()} does not match the key pinned for it "
                f"({self.pinned.fingerprint}); if it was rebuilt, forget the pin: DELETE "
                f"/api/v1/automation/ssh/host-keys/{self.cluster}/{self.node}",
            )
        return TransportError(
            "host_key_unknown",
            f"the host key of {self._label()} is neither pinned nor signed by a trusted "
            "cert authority (strict host key policy)",
        )

    def wants_key(self) -> bool:
        """Whether ``accept`` looks at the key: only to pin a first-seen one (tofu)."""
        return self.policy == "tofu" and self.pinned is None

    async def accept(self, key: asyncssh.SSHKey | None) -> None:
        """After connecting: pin a first-seen key (tofu), or fail if the pin moved meanwhile."""
        if self.policy == "off" or key is None:
            return
        if self.pinned is not None:
            return  # asyncssh checked the key against the pin
        if self.policy == "strict":
            return  # no pin, so a trusted CA signed it
        held = await self._pin(key)
        if held.public_key != key_line(key):
            self.pinned = held
            raise self.rejected()

    async def matches(self, key: asyncssh.SSHKey | None) -> bool:
        """Whether an already open (pooled) connection may serve (cluster, node) now."""
        if self.policy == "off":
            return True
        current = await self._current()
        if current is None:
            if self.policy == "strict" or key is None:
                return False
            held = await self._pin(key)
            return held.public_key == key_line(key)
        return key is not None and current.public_key == key_line(key)
