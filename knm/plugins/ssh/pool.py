"""Idle SSH connections kept for reuse, keyed by everything that makes a login the same.

The key is (app, address, port, user, credential id, digest of the credential's secrets, SSH
client library) —
never host:port alone, so a connection is only reused for the very login that opened it. Each
idle connection lives at most ``pool_idle_ttl`` seconds; the pool holds at most
``connection_pool_size`` of them (the oldest goes first).

An idle connection sends no keepalives: they cost a round of CPU on both ends every 30 s per
connection (~160 µs on knm's side: 5,000 pooled connections kept ~3 % of a CPU busy doing
nothing else), and they would not find a dead one within the default TTL anyway (60 s, against
30 s × 3 unanswered). A connection that died idle is found when it is next used and replaced
before anything runs on it; keepalives resume the moment it is checked out. Behind a NAT or
firewall that forgets idle flows sooner than ``pool_idle_ttl``, lower the TTL.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any

import asyncssh
import msgspec

from knm.plugins.ssh.connect import KEEPALIVE_COUNT_MAX, KEEPALIVE_INTERVAL


class PoolKey(msgspec.Struct, frozen=True):
    owner: int
    address: str
    port: int
    username: str
    credential_id: int
    secret: str
    #: The SSH client library that opened it (the settings' ``client``): switching clients
    #: never reuses the other one's connections.
    client: str = "asyncssh"


class _Idle(msgspec.Struct):
    conn: Any
    since: float
    ttl: float


class ConnectionPool:
    def __init__(self) -> None:
        self._idle: dict[PoolKey, list[_Idle]] = {}
        self.closed_idle = 0
        # Kept, not summed: ``put`` asks for it once per connection of a 1,000-node task.
        self._count = 0
        #: Per owner, a heap of (expiry, order, key, idle): the reaper looks at the connections
        #: that are due, not at all of them every second (at 5,000 idle connections a full scan
        #: took ~10-30 ms of the event loop each time). An entry whose connection was taken
        #: meanwhile is skipped when it comes up.
        self._due: dict[int, list[tuple[float, int, PoolKey, _Idle]]] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return self._count

    def take(self, key: PoolKey) -> asyncssh.SSHClientConnection | None:
        """The most recently used idle connection for ``key``, alive or not: the caller checks
        it (``is_closed``: one peek at the socket for a libssh2 connection) and, if it is kept,
        turns its keepalives back on (``wake``)."""
        items = self._idle.get(key)
        if not items:
            return None
        idle = items.pop()
        self._count -= 1
        if not items:
            del self._idle[key]
        return idle.conn

    @staticmethod
    def wake(conn: asyncssh.SSHClientConnection) -> None:
        """A connection taken from the pool back at work: keepalives on again (``put`` turned
        them off while it idled)."""
        conn.set_keepalive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT_MAX)

    def put(self, key: PoolKey, conn: asyncssh.SSHClientConnection, size: int, ttl: float) -> None:
        if size <= 0:
            conn.close()
            return
        while self._count >= size:
            self._evict_oldest()
        conn.set_keepalive(0)
        idle = _Idle(conn=conn, since=time.monotonic(), ttl=ttl)
        self._idle.setdefault(key, []).append(idle)
        self._count += 1
        due = self._due.setdefault(key.owner, [])
        heapq.heappush(due, (idle.since + ttl, next(self._order), key, idle))
        if len(due) > 4 * self._count + 64:
            self._rebuild_due(key.owner)

    def _rebuild_due(self, owner: int) -> None:
        """Drops the entries of connections taken since (a busy pool with a long TTL)."""
        self._due[owner] = [
            (idle.since + idle.ttl, next(self._order), key, idle)
            for key, items in self._idle.items()
            if key.owner == owner
            for idle in items
        ]
        heapq.heapify(self._due[owner])

    def _evict_oldest(self) -> None:
        oldest = min(self._idle, key=lambda k: self._idle[k][0].since)
        items = self._idle[oldest]
        items.pop(0).conn.close()
        self._count -= 1
        if not items:
            del self._idle[oldest]

    def expire_due(self, owner: int) -> None:
        """Closes ``owner``'s connections idle beyond their TTL, looking only at those due."""
        due = self._due.get(owner)
        now = time.monotonic()
        while due and due[0][0] < now:
            _, _, key, idle = heapq.heappop(due)
            items = self._idle.get(key)
            if not items:
                continue
            for index, held in enumerate(items):
                if held is idle:
                    del items[index]
                    if not items:
                        del self._idle[key]
                    idle.conn.close()
                    self.closed_idle += 1
                    self._count -= 1
                    break

    def expire(self, owner: int) -> None:
        """Closes ``owner``'s connections idle beyond their TTL; forgets the ones found closed
        (a scan of every idle connection of ``owner``: the reaper does it now and then)."""
        now = time.monotonic()
        for key in [k for k in self._idle if k.owner == owner]:
            keep = []
            for idle in self._idle[key]:
                if now - idle.since > idle.ttl or idle.conn.is_closed():
                    idle.conn.close()
                    self.closed_idle += 1
                    self._count -= 1
                else:
                    keep.append(idle)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def close_owner(self, owner: int) -> None:
        self._due.pop(owner, None)
        for key in [k for k in self._idle if k.owner == owner]:
            for idle in self._idle.pop(key):
                idle.conn.close()
                self._count -= 1
