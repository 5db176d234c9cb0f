"""The asyncssh fleet server: many addresses, both auth methods, exec semantics, SFTP, stop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncssh
import psutil
import pytest

from knm.core.processes import process_gone, wait_until_gone
from knm.testing.fleet_server import FleetServer, parse_addresses
from knm.testing.sshfleet import FleetNode

CONNECT_TIMEOUT = 30.0
EVENTUALLY = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    with FleetServer(tmp_path_factory.mktemp("fleet-server"), nodes=20) as started:
        yield started


def _connect(
    server: FleetServer, node: FleetNode, **options: Any
) -> AbstractAsyncContextManager[asyncssh.SSHClientConnection]:
    options.setdefault("username", server.username)
    # Host key pinned per node, as knm does with the keys it learned.
    options.setdefault(
        "known_hosts",
        asyncssh.import_known_hosts(f"[{node.address}]:{node.port} {node.host_key_public}\n"),
    )
    options.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return asyncssh.connect(node.address, port=node.port, **options)


async def _stop_while_a_command_runs(
    server: FleetServer, main: psutil.Process
) -> list[psutil.Process]:
    """Stops ``server`` while a command runs on a node; returns every process it had then."""
    async with _connect(server, server.nodes[1], password=server.password) as conn:
        await conn.create_process("sleep 3600")
        deadline = asyncio.get_running_loop().time() + EVENTUALLY
        while not any(p.name() == "sleep" for p in main.children(recursive=True)):
            assert asyncio.get_running_loop().time() < deadline, "command never started"
            await asyncio.sleep(0.05)
        started = [main, *main.children(recursive=True)]
        server.stop()
    return started


def test_parse_addresses() -> None:
    assert parse_addresses(["127.0.1.253-127.0.2.2,127.0.0.9", "127.0.0.9"]) == [
        "127.0.1.253",
        "127.0.1.254",
        "127.0.2.1",
        "127.0.2.2",
        "127.0.0.9",
    ]
    assert len(parse_addresses(["127.0.1.1-127.0.4.250"])) == 3 * 254 + 250
    for outside in ("10.0.0.1", "127.0.0.1-128.0.0.1", "::1"):
        with pytest.raises(ValueError):
            parse_addresses([outside])


async def test_uname_on_every_node_concurrently(server: FleetServer) -> None:
    async def run_on(node: FleetNode) -> asyncssh.SSHCompletedProcess:
        async with _connect(server, node, password=server.password) as conn:
            return await conn.run("uname -n; echo $SSH_CONNECTION")

    results = await asyncio.gather(*(run_on(node) for node in server.nodes))
    assert len(results) == 20
    for node, result in zip(server.nodes, results, strict=True):
        assert result.exit_status == 0, result.stderr
        hostname, connection = str(result.stdout).splitlines()
        assert hostname == os.uname().nodename
        # Each node is really its own listener.
        assert connection.split()[2:] == [node.address, str(node.port)]


async def test_key_auth(server: FleetServer) -> None:
    key = asyncssh.import_private_key(server.private_key_pem)
    async with _connect(server, server.nodes[-1], client_keys=[key]) as conn:
        result = await conn.run("echo hi", check=True)
    assert result.stdout == "hi\n"


async def test_bad_credentials_are_denied(server: FleetServer) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(server, server.nodes[0], password="wrong"):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(server, server.nodes[0], username="other", password=server.password):
            pass
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(server, server.nodes[0], client_keys=[stranger]):
            pass


async def test_stdin_eof_stderr_and_exit_status(server: FleetServer) -> None:
    async with _connect(server, server.nodes[1], password=server.password) as conn:
        # cat ends only when the client's EOF reaches it.
        result = await conn.run("cat; echo oops >&2; exit 3", input="hello\n")
        signalled = await conn.run("kill -TERM $$")
    assert (result.exit_status, result.stdout, result.stderr) == (3, "hello\n", "oops\n")
    assert signalled.exit_signal is not None
    assert signalled.exit_signal[0] == "TERM"


async def test_sftp(server: FleetServer, tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_text("over sftp\n")
    async with (
        _connect(server, server.nodes[2], password=server.password) as conn,
        conn.start_sftp_client() as sftp,
    ):
        await sftp.get(str(source), str(tmp_path / "copy.txt"))
        await sftp.put(str(source), str(tmp_path / "uploaded.txt"))
    assert (tmp_path / "copy.txt").read_text() == "over sftp\n"
    assert (tmp_path / "uploaded.txt").read_text() == "over sftp\n"


async def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = FleetServer(tmp_path, nodes=2, first_address="127.0.9.1")
    server.start()
    try:
        assert server.pid is not None
        main = psutil.Process(server.pid)
        started = await _stop_while_a_command_runs(server, main)
    finally:
        server.stop()
    server.stop()  # twice is harmless
    assert server.pid is None
    assert all(process_gone(proc) for proc in started)


async def test_workers_share_the_addresses_and_stop_with_the_server(tmp_path: Path) -> None:
    server = FleetServer(tmp_path, nodes=4, first_address="127.0.9.11", processes=2)
    server.start()
    try:
        assert server.pid is not None
        main = psutil.Process(server.pid)
        shells: dict[str, int] = {}
        for node in server.nodes:
            async with _connect(server, node, password=server.password) as conn:
                result = await conn.run("echo $PPID", check=True)
            shells[node.address] = int(str(result.stdout))
        workers = {child.pid for child in main.children()}
        # Every n-th address to each worker: two workers, two nodes each.
        assert len(workers) == 2
        assert set(shells.values()) == workers
        assert shells[server.nodes[0].address] == shells[server.nodes[2].address]
        started = await _stop_while_a_command_runs(server, main)
    finally:
        server.stop()
    assert all(process_gone(proc) for proc in started)


async def test_a_worker_that_dies_takes_the_server_down(tmp_path: Path) -> None:
    server = FleetServer(tmp_path, nodes=2, first_address="127.0.9.21", processes=2)
    server.start()
    try:
        assert server.pid is not None
        main = psutil.Process(server.pid)
        first, second = main.children()
        first.kill()
        # Half a fleet answering would fail nodes for a reason outside the code under test.
        assert wait_until_gone([main, second], timeout=EVENTUALLY) == []
    finally:
        server.stop()


async def test_workers_follow_a_server_killed_outright(tmp_path: Path) -> None:
    server = FleetServer(tmp_path, nodes=2, first_address="127.0.9.31", processes=2)
    server.start()
    try:
        assert server.pid is not None
        main = psutil.Process(server.pid)
        workers = main.children()
        assert len(workers) == 2
        main.kill()
        assert wait_until_gone(workers, timeout=EVENTUALLY) == []
    finally:
        server.stop()
