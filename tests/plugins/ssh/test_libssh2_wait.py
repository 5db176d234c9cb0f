"""The libssh2 client's wait on its socket: the reader stays registered between waits and goes
when nobody waits to read, an abort ends a wait under way, and the one keepalive timer per
connection still finds a silent node (a socket pair stands in for the node)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

libssh2 = pytest.importorskip("knm.plugins.ssh.libssh2")

#: asyncio's own loop (``knm worker``) and uvloop (``knm serve``): they order polling and
#: scheduled callbacks differently.
LOOPS = ["asyncio", "uvloop"]


def run(kind: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(body(), 10))
    finally:
        loop.close()


class FakeSession:
    def __init__(self) -> None:
        self.directions = libssh2.LIBSSH2_SESSION_BLOCK_INBOUND
        self.keepalives = 0

    def block_directions(self) -> int:
        return self.directions

    def keepalive_send(self) -> int:
        self.keepalives += 1
        return 0

    def disconnect(self) -> None:
        pass


def connection() -> tuple[Any, socket.socket, FakeSession]:
    ours, node = socket.socketpair()
    ours.setblocking(False)
    session = FakeSession()
    conn = libssh2.Libssh2Connection(session, ours, "127.0.0.1", 22)  # type: ignore[arg-type]
    return conn, node, session


async def wait_and_read(conn: Any) -> None:
    # As ``call`` does: libssh2 reads what woke the wait in the same step.
    await conn.wait()
    conn.sock.recv(16)


@pytest.mark.parametrize("kind", LOOPS)
def test_the_reader_stays_between_waits_and_goes_when_nobody_waits_to_read(kind: str) -> None:
    run(kind, reader_stays)


async def reader_stays() -> None:
    conn, node, _ = connection()
    loop = asyncio.get_running_loop()
    try:
        for _ in range(3):
            waiting = asyncio.ensure_future(wait_and_read(conn))
            await asyncio.sleep(0)
            node.send(b"x")
            await asyncio.wait_for(waiting, 5)
            for _ in range(3):
                await asyncio.sleep(0)
            assert conn._reader_loop is loop
        # Unread data and no wait: the reader goes rather than wake the loop again and again.
        node.send(b"y")
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert conn._reader_loop is None
        # The next wait registers it again, and data already there ends it at once.
        await wait_and_read(conn)
        assert conn._reader_loop is loop
    finally:
        conn.close()
        conn.sock.close()
        node.close()
    assert conn._reader_loop is None and conn._timer is None


@pytest.mark.parametrize("kind", LOOPS)
def test_an_abort_ends_a_wait_under_way(kind: str) -> None:
    run(kind, abort_ends_wait)


async def abort_ends_wait() -> None:
    conn, node, _ = connection()
    try:
        waiting = asyncio.ensure_future(conn.wait())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        conn.abort()
        await asyncio.wait_for(waiting, 5)
        assert conn.is_closed()
    finally:
        conn.sock.close()
        node.close()


@pytest.mark.parametrize("kind", LOOPS)
def test_a_silent_node_gets_keepalives_and_is_lost_after_count_max(kind: str) -> None:
    run(kind, silent_node)


async def silent_node() -> None:
    conn, node, session = connection()
    conn.set_keepalive(0.05, 2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(libssh2.errors.SocketTimeout):
            await asyncio.wait_for(conn.wait(), 5)
        assert session.keepalives == 2
        assert asyncio.get_running_loop().time() - started >= 0.15
        assert conn.is_closed()
    finally:
        conn.sock.close()
        node.close()


@pytest.mark.parametrize("kind", LOOPS)
def test_a_node_that_answers_between_waits_is_not_lost(kind: str) -> None:
    # Waits shorter than the interval, one after another: the one timer moves on with them
    # and never counts their sum as silence.
    run(kind, answering_node)


async def answering_node() -> None:
    conn, node, session = connection()
    conn.set_keepalive(0.1, 0)
    try:
        for _ in range(6):
            waiting = asyncio.ensure_future(wait_and_read(conn))
            await asyncio.sleep(0.04)
            node.send(b"z")
            await asyncio.wait_for(waiting, 5)
        assert session.keepalives == 0
        assert not conn.is_closed()
    finally:
        conn.close()
        conn.sock.close()
        node.close()
