"""The idle connection pool: bounded, oldest out first, expired by TTL, counted as it goes."""

from __future__ import annotations

import time

from knm.plugins.ssh.connect import KEEPALIVE_COUNT_MAX, KEEPALIVE_INTERVAL
from knm.plugins.ssh.pool import ConnectionPool, PoolKey


class FakeConn:
    def __init__(self) -> None:
        self.closed = False
        #: (interval, count_max) as last set; a new connection has keepalives on.
        self.keepalive: tuple[float, int | None] = (KEEPALIVE_INTERVAL, KEEPALIVE_COUNT_MAX)

    def set_keepalive(self, interval: float, count_max: int | None = None) -> None:
        self.keepalive = (interval, count_max)

    def close(self) -> None:
        self.closed = True

    def is_closed(self) -> bool:
        return self.closed


def key(address: str, owner: int = 1) -> PoolKey:
    return PoolKey(owner, address, 22, "user", 1, "digest")


def test_the_pool_counts_what_it_holds_through_put_take_evict_and_expire() -> None:
    pool = ConnectionPool()
    conns = [FakeConn() for _ in range(4)]
    for i, conn in enumerate(conns[:3]):
        pool.put(key(f"10.0.0.{i}"), conn, size=3, ttl=60)  # type: ignore[arg-type]
    assert len(pool) == 3
    pool.put(key("10.0.0.9"), conns[3], size=3, ttl=60)  # type: ignore[arg-type]
    assert len(pool) == 3 and conns[0].closed  # the oldest made room
    assert pool.take(key("10.0.0.1")) is conns[1]
    assert pool.take(key("10.0.0.1")) is None
    assert len(pool) == 2
    conns[2].close()
    pool.expire(owner=1)  # the closed one is forgotten
    assert len(pool) == 1
    pool.put(key("10.0.0.5"), FakeConn(), size=10, ttl=0.0)  # type: ignore[arg-type]
    time.sleep(0.01)
    pool.expire(owner=1)
    assert len(pool) == 1
    pool.close_owner(1)
    assert len(pool) == 0 and conns[3].closed


def test_an_idle_connection_sends_no_keepalives_until_it_is_woken_at_work_again() -> None:
    pool = ConnectionPool()
    conn = FakeConn()
    pool.put(key("10.0.0.1"), conn, size=3, ttl=60)  # type: ignore[arg-type]
    assert conn.keepalive[0] == 0
    assert pool.take(key("10.0.0.1")) is conn
    assert conn.keepalive[0] == 0  # the caller checks it first: a dead one is not woken
    pool.wake(conn)  # type: ignore[arg-type]
    assert conn.keepalive == (KEEPALIVE_INTERVAL, KEEPALIVE_COUNT_MAX)


def test_expiring_the_due_closes_only_what_outlived_its_ttl_and_skips_what_was_taken_since() -> (
    None
):
    pool = ConnectionPool()
    old, fresh, taken = FakeConn(), FakeConn(), FakeConn()
    pool.put(key("10.0.0.1"), old, size=10, ttl=0.0)  # type: ignore[arg-type]
    pool.put(key("10.0.0.2"), fresh, size=10, ttl=3600)  # type: ignore[arg-type]
    pool.put(key("10.0.0.3"), taken, size=10, ttl=0.0)  # type: ignore[arg-type]
    assert pool.take(key("10.0.0.3")) is taken
    # Back in the pool for longer: its first, overdue entry must not close it.
    pool.put(key("10.0.0.3"), taken, size=10, ttl=3600)  # type: ignore[arg-type]
    time.sleep(0.01)
    pool.expire_due(owner=1)
    assert old.closed and not fresh.closed and not taken.closed
    assert len(pool) == 2 and pool.closed_idle == 1
    assert pool.take(key("10.0.0.1")) is None
    assert pool.take(key("10.0.0.3")) is taken


def test_a_pool_whose_connections_keep_coming_back_does_not_grow_its_expiry_heap() -> None:
    pool = ConnectionPool()
    conn = FakeConn()
    for _ in range(1000):
        pool.put(key("10.0.0.1"), conn, size=10, ttl=3600)  # type: ignore[arg-type]
        assert pool.take(key("10.0.0.1")) is conn
    pool.put(key("10.0.0.1"), conn, size=10, ttl=3600)  # type: ignore[arg-type]
    assert len(pool._due[1]) <= 4 * len(pool) + 65
