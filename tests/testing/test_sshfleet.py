"""The real-OpenSSH test fleet: every node, auth method and fault behaves as documented."""

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

from knm.core.processes import process_gone
from knm.testing import sshfleet
from knm.testing.sshfleet import (
    FleetNode,
    SshdNotInstalledError,
    SshFleet,
    active_fleet_dirs,
    loopback_address,
    loopback_index,
    ssh_fleet,
)

# Generous: "eventually" on a busy 2-core machine, never a timing assertion.
CONNECT_TIMEOUT = 30.0
EVENTUALLY = 30.0
# Short on purpose: the silent node must be given up on by the client's own timeout.
SILENT_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    with ssh_fleet(tmp_path_factory.mktemp("sshfleet"), nodes=3) as started:
        yield started


def _connect(
    fleet: SshFleet, node: FleetNode, **options: Any
) -> AbstractAsyncContextManager[asyncssh.SSHClientConnection]:
    options.setdefault("username", fleet.username)
    options.setdefault("known_hosts", str(fleet.known_hosts_path))
    options.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return asyncssh.connect(node.address, port=node.port, **options)


def test_nodes_are_distinct_loopback_addresses(fleet: SshFleet) -> None:
    faults = [fleet.refused_node(), fleet.silent_node()]
    addresses = [node.address for node in [*fleet.nodes, *faults]]
    assert [node.name for node in fleet.nodes] == ["node1", "node2", "node3"]
    assert addresses == [loopback_address(i) for i in range(2, 7)]
    assert all(address.startswith("127.") for address in addresses)
    assert {node.port for node in [*fleet.nodes, *faults]} == {fleet.port}
    assert fleet.nodes[0].host_key_public.startswith("ssh-ed25519 ")
    assert loopback_index(loopback_address(300)) == 300


async def test_password_login_on_every_node(fleet: SshFleet) -> None:
    async def run_on(node: FleetNode) -> asyncssh.SSHCompletedProcess:
        async with _connect(fleet, node, password=fleet.password) as conn:
            return await conn.run("uname -n; echo hi; whoami", check=True)

    results = await asyncio.gather(*(run_on(node) for node in fleet.nodes))
    for result in results:
        assert result.stdout == f"{os.uname().nodename}\nhi\n{fleet.username}\n"
        assert result.stderr == ""


async def test_key_login(fleet: SshFleet) -> None:
    assert fleet.private_key_pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = asyncssh.import_private_key(fleet.private_key_pem)
    async with _connect(fleet, fleet.nodes[1], client_keys=[key]) as conn:
        result = await conn.run("echo hi", check=True)
    assert result.stdout == "hi\n"


async def test_encrypted_pkcs8_key_login(fleet: SshFleet) -> None:
    key = asyncssh.import_private_key(fleet.encrypted_private_key_pkcs8_pem, fleet.key_passphrase)
    async with _connect(fleet, fleet.nodes[2], client_keys=[key]) as conn:
        result = await conn.run("echo hi", check=True)
    assert result.stdout == "hi\n"


async def test_encrypted_openssh_key_login(fleet: SshFleet) -> None:
    assert fleet.encrypted_private_key_pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # asyncssh decrypts ssh-keygen's own format only with the optional bcrypt package.
    pytest.importorskip("bcrypt", reason="bcrypt is needed for encrypted OpenSSH keys")
    with pytest.raises(asyncssh.KeyEncryptionError):
        asyncssh.import_private_key(fleet.encrypted_private_key_pem, "not the passphrase")
    key = asyncssh.import_private_key(fleet.encrypted_private_key_pem, fleet.key_passphrase)
    async with _connect(fleet, fleet.nodes[0], client_keys=[key]) as conn:
        result = await conn.run("echo hi", check=True)
    assert result.stdout == "hi\n"


async def test_wrong_password_is_denied(fleet: SshFleet) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(fleet, fleet.nodes[0], password="not-the-password"):
            pass


async def test_refused_node(fleet: SshFleet) -> None:
    with pytest.raises(ConnectionRefusedError):
        async with _connect(fleet, fleet.refused_node(), password=fleet.password):
            pass


async def test_silent_node_times_out(fleet: SshFleet) -> None:
    async def attempt() -> None:
        async with _connect(
            fleet,
            fleet.silent_node(),
            password=fleet.password,
            connect_timeout=SILENT_TIMEOUT,
            login_timeout=SILENT_TIMEOUT,
        ):
            pass

    task = asyncio.create_task(attempt())
    # The outer bound only keeps a regression from hanging the suite; the error must come
    # from the client's own connect timeout.
    done, _ = await asyncio.wait({task}, timeout=EVENTUALLY)
    if not done:
        task.cancel()
    assert task in done, "the connect timeout did not fire"
    assert isinstance(task.exception(), asyncio.TimeoutError)


async def test_sudo_with_password(fleet: SshFleet) -> None:
    assert fleet.sudoers_path.exists()
    async with _connect(fleet, fleet.nodes[0], password=fleet.password) as conn:
        with_password = await conn.run("sudo -S -p '' id -u", input=f"{fleet.password}\n")
        without_password = await conn.run("sudo -n id -u")
        not_allowed = await conn.run("sudo -S -p '' cat /etc/shadow", input=f"{fleet.password}\n")
    assert (with_password.exit_status, with_password.stdout) == (0, "0\n")
    assert without_password.exit_status != 0
    assert without_password.stdout == ""
    assert not_allowed.exit_status != 0
    assert not_allowed.stdout == ""


async def test_only_stock_accept_env(fleet: SshFleet) -> None:
    env = {"LANG": "C.UTF-8", "LC_KNM_TEST": "lc", "KNM_TEST_VAR": "leaked"}
    async with _connect(fleet, fleet.nodes[0], password=fleet.password, env=env) as conn:
        result = await conn.run(
            'echo "$LANG ${LC_KNM_TEST-unset} ${KNM_TEST_VAR-unset}"', check=True
        )
    assert result.stdout == "C.UTF-8 lc unset\n"


async def test_sessions_keep_temp_files_in_the_fleets_own_dir(fleet: SshFleet) -> None:
    async with _connect(fleet, fleet.nodes[0], password=fleet.password) as conn:
        result = await conn.run(
            "python3 -c 'import tempfile; print(tempfile.mkdtemp(prefix=\"left-\"))'", check=True
        )
    made = Path(result.stdout.strip())
    # What a command killed mid-run leaves goes with the fleet, not into the machine's /tmp.
    assert made.parent == fleet.session_tmp
    assert fleet.session_tmp.is_relative_to(fleet.public_dir)


async def test_hanging_command_is_cut_by_client_timeout(fleet: SshFleet) -> None:
    async with _connect(fleet, fleet.nodes[1], password=fleet.password) as conn:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.run(fleet.commands.hang), timeout=1.0)
        # The connection survives a command given up on by the client.
        result = await conn.run("echo still-here", check=True)
    assert result.stdout == "still-here\n"


async def test_killed_session_drops_the_connection(fleet: SshFleet) -> None:
    async with _connect(fleet, fleet.nodes[2], password=fleet.password) as conn:
        result = await asyncio.wait_for(conn.run(fleet.commands.kill_connection), EVENTUALLY)
        # The command was cut: no exit status ever came, only what it printed first.
        assert result.exit_status is None
        assert result.stdout == "started\n"
        await asyncio.wait_for(conn.wait_closed(), EVENTUALLY)
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.ConnectionLost)):
            await conn.run("true")


async def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    # 17 nodes: more than one sshd process (16 listen addresses each).
    fleet = SshFleet(tmp_path, nodes=17)
    fleet.start()
    try:
        assert len(fleet.sshd_pids()) == 2
        last = fleet.nodes[-1]
        assert last.address == loopback_address(18)
        async with _connect(fleet, last, password=fleet.password) as conn:
            hanging = await conn.create_process(fleet.commands.hang)
            deadline = asyncio.get_running_loop().time() + EVENTUALLY
            while not any(p.name() == "sleep" for p in fleet.session_processes()):
                assert asyncio.get_running_loop().time() < deadline, "hang command never ran"
                await asyncio.sleep(0.05)
            listeners = [psutil.Process(pid) for pid in fleet.sshd_pids()]
            started = listeners + [
                child for proc in listeners for child in proc.children(recursive=True)
            ]
            started += fleet.session_processes()
            fleet.stop()
            hanging.close()
    finally:
        fleet.stop()
    fleet.stop()  # twice is harmless
    assert all(process_gone(proc) for proc in started)
    # Shared with the other fleets still running (the module's): the last one removes it.
    assert fleet.sudoers_path.exists() == bool(active_fleet_dirs())
    assert not fleet.public_dir.exists()
    assert not fleet.session_tmp.exists()
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(fleet.dir) in arg for arg in proc.info["cmdline"] or []) and not process_gone(
            proc
        ):
            leftovers.append(proc)
    assert leftovers == []


def test_missing_sshd_fails_clearly(tmp_path: Path) -> None:
    fleet = SshFleet(tmp_path, nodes=1, sshd_path=tmp_path / "no-such-sshd")
    with pytest.raises(SshdNotInstalledError, match="openssh-server"):
        fleet.start()
    fleet.stop()


def test_a_live_owner_stays_live_when_the_wall_clock_is_stepped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another run's fleet asks whether this one's owner lives before it removes the shared
    sudoers file; a clock stepped meanwhile (NTP on a VM: the boot time the kernel reports
    moves with it) must not make the owner look dead."""
    written = sshfleet._owner_token(os.getpid())
    stepped = psutil.boot_time() + 1.5
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: stepped)
    assert sshfleet._owner_token(os.getpid()) == written
    assert sshfleet._owner_token(2**22 + 7) == f"{2**22 + 7} 0"  # no such process
