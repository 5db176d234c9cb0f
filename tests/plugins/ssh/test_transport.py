"""The shared SSH transport: pooled connections, dead ones replaced, bastions, stdin, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pwd
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import msgspec
import psutil
import pytest

from knm.core.credentials import DecryptedCredential
from knm.core.tasks import TargetNode
from knm.core.transport import TransportError
from knm.plugins.ssh import libssh2
from knm.plugins.ssh.connect import KEEPALIVE_INTERVAL, SKIPS_CONSTRUCT
from knm.plugins.ssh.libssh2 import Libssh2Connection
from knm.plugins.ssh.limiter import StartRamp
from knm.plugins.ssh.schemas import SshSettings
from knm.plugins.ssh.transport import TRANSPORT, SshTransport, name_local_user
from knm.testing.client import ApiClient
from knm.testing.fleet import FleetCluster, create_fleet_cluster
from knm.testing.tasks import eventually

Runner = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module", params=["asyncssh", "libssh2"])
def ssh_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs with each SSH client (the settings' ``client``)."""
    return str(request.param)


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


def kill_fleet_connections(fleet: FleetCluster) -> int:
    """Kills every SSH connection to the fleet from the server side (not the listeners)."""
    killed = 0
    for pid in fleet.fleet.sshd_pids():
        for child in psutil.Process(pid).children():
            child.kill()
            killed += 1
    psutil.wait_procs(
        [c for pid in fleet.fleet.sshd_pids() for c in psutil.Process(pid).children()], timeout=5
    )
    return killed


class _Features:
    def __init__(self, settings: SshSettings) -> None:
        self._settings = settings

    async def settings(self, kind: str) -> SshSettings:
        return self._settings


class _Knm:
    pool = None

    def __init__(self, settings: SshSettings) -> None:
        self.features = _Features(settings)


@pytest.fixture
async def direct(
    fleet: FleetCluster, ssh_client: str
) -> AsyncIterator[tuple[SshTransport, Any, DecryptedCredential]]:
    """A transport of its own, used directly (no task), with host key checking off."""
    knm = _Knm(SshSettings(host_key_policy="off", client=ssh_client))
    context = SimpleNamespace(
        knm=knm, task_id="ssh-exec-direct", task=SimpleNamespace(cluster_name="direct"), mask=None
    )
    credential = DecryptedCredential(
        id=1, name="direct", username=fleet.fleet.username, auth_type="password", port=22,
        password=fleet.fleet.password,
    )  # fmt: skip
    transport = SshTransport()
    async with transport.lifespan(knm):
        yield transport, context, credential


async def alone(knm_client: ApiClient) -> None:
    """Until the app runs no task: the counters below belong to the process's one transport,
    so a delta means this test's task only if nothing else uses it meanwhile."""
    runner = knm_client.http.app.state["knm"].runner  # type: ignore[attr-defined]

    async def idle() -> bool:
        return not runner.running

    await eventually(idle)


def node(fleet: FleetCluster, index: int = 0) -> TargetNode:
    found = fleet.fleet.nodes[index]
    return TargetNode(name=found.name, address=found.address, port=found.port)


async def test_a_later_task_reuses_a_pooled_connection(
    run_ssh: Runner, knm_client: ApiClient
) -> None:
    await run_ssh(command="true", target_nodes=["node1"])
    await alone(knm_client)
    connects, reuses = TRANSPORT.stats.connects, TRANSPORT.stats.reuses
    status = await run_ssh(command="echo again", target_nodes=["node1"])
    assert status["status"] == "completed"
    assert TRANSPORT.stats.reuses == reuses + 1
    assert TRANSPORT.stats.connects == connects


async def test_a_dead_pooled_connection_is_replaced_transparently(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient
) -> None:
    await run_ssh(command="true")
    await alone(knm_client)
    assert TRANSPORT.idle_count() >= 3
    assert kill_fleet_connections(fleet) >= 3
    replaced, connects = TRANSPORT.stats.dead_replaced, TRANSPORT.stats.connects
    status = await run_ssh(command="echo alive")
    assert status["status"] == "completed", status
    assert {r["stdout"] for r in status["results"]} == {"alive\n"}
    assert TRANSPORT.stats.dead_replaced >= replaced + 3
    assert TRANSPORT.stats.connects == connects + 3


async def test_nodes_behind_a_bastion_are_reached_through_one_bastion_connection(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str],
    ssh_client: str,
) -> None:  # fmt: skip
    first = fleet.fleet.nodes[0]
    nodes = [{"name": n.name, "address": n.address, "port": n.port} for n in fleet.fleet.nodes[1:]]
    cluster = await create_fleet_cluster(
        knm_client, admin_headers, fleet.fleet, f"behind-bastion-{ssh_client}", nodes=nodes,
        bastion={"address": first.address, "port": first.port},
    )  # fmt: skip
    await alone(knm_client)
    bastions = TRANSPORT.stats.bastion_connects
    status = await run_ssh(
        command="echo tunnelled", cluster_name=cluster, target_nodes=["node2", "node3"]
    )
    assert status["status"] == "completed", status
    assert {r["stdout"] for r in status["results"]} == {"tunnelled\n"}
    assert TRANSPORT.stats.bastion_connects == bastions + 1
    pins = (
        await knm_client.get(f"/automation/ssh/host-keys?cluster={cluster}", headers=admin_headers)
    ).json()
    assert {p["node"] for p in pins["data"]["host_keys"]} == {"@bastion", "node2", "node3"}


async def test_an_unreachable_bastion_fails_every_node_saying_so(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str],
    ssh_client: str,
) -> None:  # fmt: skip
    refused = fleet.fleet.refused_node()
    nodes = [{"name": n.name, "address": n.address, "port": n.port} for n in fleet.fleet.nodes]
    cluster = await create_fleet_cluster(
        knm_client, admin_headers, fleet.fleet, f"dead-bastion-{ssh_client}", nodes=nodes,
        bastion={"address": refused.address, "port": refused.port},
    )  # fmt: skip
    status = await run_ssh(command="true", cluster_name=cluster)
    for result in status["results"]:
        assert result["reason"] == "unreachable"
        assert result["message"].startswith("bastion: connection refused")


async def test_run_sends_a_script_on_stdin_and_streams_output(
    direct: Any, fleet: FleetCluster
) -> None:
    transport, context, credential = direct
    out: list[str] = []
    err: list[str] = []
    script = "echo one\necho two >&2\nexit 3\n"
    async with transport.session(context, node(fleet), credential) as conn:
        result = await transport.run(
            conn, "/bin/sh -s", stdin=script, on_stdout=out.append, on_stderr=err.append
        )
    assert (result.exit_code, result.signal) == (3, None)
    assert "".join(out) == "one\n" and "".join(err) == "two\n"


async def test_run_sends_a_stdin_larger_than_the_window_and_closes_it(
    direct: Any, fleet: FleetCluster
) -> None:
    transport, context, credential = direct
    out: list[str] = []
    big = "x" * 3_000_000  # far beyond the channel's window: writing pauses and resumes
    async with transport.session(context, node(fleet), credential) as conn:
        result = await transport.run(conn, "wc -c", stdin=big, on_stdout=out.append)
    assert result.exit_code == 0
    assert "".join(out).strip() == "3000000"


async def test_awaitable_output_callbacks_get_every_piece_in_order(
    direct: Any, fleet: FleetCluster
) -> None:
    transport, context, credential = direct
    out: list[str] = []

    async def slow(text: str) -> None:
        await asyncio.sleep(0)
        out.append(text)

    async with transport.session(context, node(fleet, 1), credential) as conn:
        result = await transport.run(conn, "seq 1 50000", on_stdout=slow)
    assert result.exit_code == 0
    assert "".join(out) == "".join(f"{n}\n" for n in range(1, 50001))


def _broken(text: str) -> None:
    raise RuntimeError("callback broke")


async def _broken_later(text: str) -> None:
    await asyncio.sleep(0)
    raise RuntimeError("callback broke")


@pytest.mark.parametrize("broken", [_broken, _broken_later], ids=["plain", "awaitable"])
async def test_a_failing_output_callback_stops_the_command_and_raises_its_error(
    direct: Any, fleet: FleetCluster, broken: Callable[[str], Any]
) -> None:
    transport, context, credential = direct
    async with transport.session(context, node(fleet, 2), credential) as conn:
        with pytest.raises(RuntimeError, match="callback broke"):
            await transport.run(conn, "echo hello; sleep 3600", on_stdout=broken, timeout=60)
        again = await transport.run(conn, "true")
    assert again.exit_code == 0


async def test_run_times_out_and_the_command_is_stopped(direct: Any, fleet: FleetCluster) -> None:
    transport, context, credential = direct
    async with transport.session(context, node(fleet, 2), credential) as conn:
        with pytest.raises(TransportError) as caught:
            await transport.run(conn, "sleep 3600", timeout=0.5)
        assert caught.value.reason == "timeout"
        again = await transport.run(conn, "echo still usable", on_stdout=lambda text: None)
    assert again.exit_code == 0


async def test_run_with_a_pty_merges_the_streams(direct: Any, fleet: FleetCluster) -> None:
    transport, context, credential = direct
    out: list[str] = []
    async with transport.session(context, node(fleet, 1), credential) as conn:
        result = await transport.run(conn, "echo to-stderr >&2", pty=True, on_stdout=out.append)
    assert result.exit_code == 0
    assert "to-stderr" in "".join(out)


async def test_a_session_holds_one_start_place_from_its_handshake_until_its_command_runs(
    direct: Any, fleet: FleetCluster
) -> None:
    transport, context, credential = direct
    transport.ramp = StartRamp(start=1, step=3600, stale=0)

    async def second() -> int | None:
        async with transport.session(context, node(fleet, 1), credential) as conn:
            return (await transport.run(conn, "true")).exit_code

    async with transport.session(context, node(fleet, 0), credential) as conn:
        assert transport.ramp.in_progress == 1
        later = asyncio.ensure_future(second())
        while not transport.ramp.waiting:
            await asyncio.sleep(0)
        # Connected, this node is not queued again behind the next node's handshake.
        first = await transport.run(conn, "true")
        assert await asyncio.wait_for(later, 60) == 0
        # A second command on the same session takes no place.
        assert (await transport.run(conn, "true")).exit_code == 0
    assert first.exit_code == 0
    assert transport.ramp.in_progress == 0 and transport.ramp.waiting == 0


async def test_a_session_that_runs_nothing_or_cannot_connect_gives_its_start_place_back(
    direct: Any, fleet: FleetCluster
) -> None:
    transport, context, credential = direct
    transport.ramp = StartRamp(start=1, step=3600, stale=0)
    async with transport.session(context, node(fleet, 0), credential):
        assert transport.ramp.in_progress == 1
    assert transport.ramp.in_progress == 0
    nowhere = TargetNode(name="ghost", address="no-such-host.invalid", port=22)
    with pytest.raises(TransportError):
        async with transport.session(context, nowhere, credential):
            pass
    assert transport.ramp.in_progress == 0
    async with transport.session(context, node(fleet, 0), credential) as conn:
        assert (await transport.run(conn, "true")).exit_code == 0


async def test_a_pooled_connection_sends_keepalives_only_while_it_is_checked_out(
    direct: Any, fleet: FleetCluster
) -> None:
    transport, context, credential = direct

    def interval(raw: Any) -> float:
        if isinstance(raw, Libssh2Connection):
            return raw.keepalive_interval
        return raw._keepalive_interval  # type: ignore[no-any-return]  # asyncssh has no getter

    async with transport.session(context, node(fleet, 2), credential) as conn:
        raw = conn.raw
        assert interval(raw) == KEEPALIVE_INTERVAL
    assert interval(raw) == 0
    async with transport.session(context, node(fleet, 2), credential) as again:
        assert again.raw is raw and again.reused
        assert interval(raw) == KEEPALIVE_INTERVAL
        assert (await transport.run(again, "true")).exit_code == 0


async def test_a_task_builds_its_login_options_once_and_each_node_gets_its_own_connection(
    direct: Any, fleet: FleetCluster, ssh_client: str
) -> None:
    transport, context, credential = direct
    context.cache = {}
    transport.ramp = StartRamp(start=8)
    nodes = [node(fleet, index) for index in range(3)]

    async def where(target: TargetNode) -> tuple[str, str]:
        async with transport.session(context, target, credential) as conn:
            out: list[str] = []
            await transport.run(conn, "echo $SSH_CONNECTION", on_stdout=out.append)
            return conn.raw.get_extra_info("peername")[0], "".join(out).split()[2]

    seen = await asyncio.gather(*(where(target) for target in nodes))
    # Every node was reached at its own address, though the three logins shared one options
    # object: the per-connection copy carries the address and the login's waiter.
    assert seen == [(target.address, target.address) for target in nodes]
    if ssh_client == "libssh2":
        return  # libssh2 logins build no asyncssh options
    built = [key for key in context.cache if key[0] == "ssh.options"]
    assert len(built) == 1
    assert SKIPS_CONSTRUCT, "this asyncssh no longer opens connections the way connect._login does"


async def test_a_name_that_does_not_resolve_is_unreachable_saying_so(direct: Any) -> None:
    transport, context, credential = direct
    nowhere = TargetNode(name="ghost", address="no-such-host.invalid", port=22)
    with pytest.raises(TransportError) as caught:
        async with transport.session(context, nowhere, credential):
            pass
    assert caught.value.reason == "unreachable"
    assert caught.value.message.startswith("cannot resolve no-such-host.invalid")


async def test_connections_of_a_stopped_app_are_not_pooled(
    fleet: FleetCluster, ssh_client: str
) -> None:
    knm = _Knm(SshSettings(host_key_policy="off", client=ssh_client))
    context = SimpleNamespace(
        knm=knm, task_id="t", task=SimpleNamespace(cluster_name="c"), mask=None
    )
    credential = DecryptedCredential(
        id=1, name="c", username=fleet.fleet.username, auth_type="password", port=22,
        password=fleet.fleet.password,
    )  # fmt: skip
    transport = SshTransport()
    async with transport.lifespan(knm):
        async with transport.session(context, node(fleet), credential):
            pass
        assert transport.idle_count() == 1
    assert transport.idle_count() == 0
    async with transport.session(context, node(fleet), credential):
        pass
    assert transport.idle_count() == 0


async def test_idle_connections_close_after_their_ttl_and_the_pool_keeps_its_size(
    fleet: FleetCluster, ssh_client: str
) -> None:
    knm = _Knm(
        SshSettings(
            host_key_policy="off", pool_idle_ttl=1, connection_pool_size=2, client=ssh_client
        )
    )
    context = SimpleNamespace(
        knm=knm, task_id="t", task=SimpleNamespace(cluster_name="c"), mask=None
    )
    credential = DecryptedCredential(
        id=1, name="c", username=fleet.fleet.username, auth_type="password", port=22,
        password=fleet.fleet.password,
    )  # fmt: skip
    transport = SshTransport()
    async with transport.lifespan(knm):
        for index in range(3):
            async with transport.session(context, node(fleet, index), credential):
                pass
        assert transport.idle_count() == 2

        async def emptied() -> bool:
            return transport.idle_count() == 0

        await eventually(emptied, deadline=30)


_LOGIN_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")


def test_without_a_login_variable_logname_names_the_user_getuser_would_find(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in _LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    name_local_user()
    assert os.environ["LOGNAME"] == pwd.getpwuid(os.getuid()).pw_name == getpass.getuser()


def test_a_login_variable_already_set_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "someone-else")
    name_local_user()
    assert "LOGNAME" not in os.environ and os.environ["USER"] == "someone-else"


async def test_the_settings_client_opens_the_connections(
    direct: Any, fleet: FleetCluster, ssh_client: str
) -> None:
    transport, context, credential = direct
    async with transport.session(context, node(fleet), credential) as conn:
        assert isinstance(conn.raw, Libssh2Connection) is (ssh_client == "libssh2")
        assert (await transport.run(conn, "true")).exit_code == 0


async def test_a_tasks_connections_are_the_clients_and_a_bastion_goes_through_asyncssh(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str],
    ssh_client: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await run_ssh(command="true", target_nodes=["node3"])
    await alone(knm_client)
    # This run's connections: the pool is the process's, and holds other tests' too.
    third = next(n for n in fleet.fleet.nodes if n.name == "node3")
    mine = [
        idle.conn
        for key, items in TRANSPORT.pool._idle.items()
        if key.address == third.address and key.client == ssh_client
        for idle in items
    ]
    assert mine
    assert all(isinstance(conn, Libssh2Connection) is (ssh_client == "libssh2") for conn in mine)
    first = fleet.fleet.nodes[0]
    nodes = [{"name": n.name, "address": n.address, "port": n.port} for n in fleet.fleet.nodes[1:]]
    cluster = await create_fleet_cluster(
        knm_client, admin_headers, fleet.fleet, f"fallback-{ssh_client}", nodes=nodes,
        bastion={"address": first.address, "port": first.port},
    )  # fmt: skip
    with caplog.at_level("DEBUG", logger="knm.ssh"):
        status = await run_ssh(command="echo via", cluster_name=cluster, target_nodes=["node2"])
    assert status["status"] == "completed", status
    said = [r.getMessage() for r in caplog.records if "asyncssh client opens" in r.getMessage()]
    assert bool(said) is (ssh_client == "libssh2")
    assert all("bastion" in message for message in said)


async def test_a_node_taking_passwords_only_by_keyboard_interactive_is_left_to_asyncssh(
    direct: Any, fleet: FleetCluster, ssh_client: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    if ssh_client != "libssh2":
        pytest.skip("a libssh2 fallback")
    transport, context, credential = direct
    wrong = msgspec.structs.replace(credential, password="not-it-at-all")

    async def login_fails() -> None:
        with pytest.raises(TransportError) as caught:
            async with transport.session(context, node(fleet), wrong):
                pass
        assert caught.value.reason == "auth_failed"
        assert "not-it-at-all" not in caught.value.message

    # The fleet offers "password": a refused password is auth_failed, asyncssh left out.
    with caplog.at_level("DEBUG", logger="knm.ssh"):
        await login_fails()
    assert not [r for r in caplog.records if "keyboard-interactive" in r.getMessage()]

    async def keyboard_only(conn: Any, user: str) -> list[str]:
        return ["publickey", "keyboard-interactive"]

    monkeypatch.setattr(libssh2, "_methods", keyboard_only)
    connects = transport.stats.connects
    with caplog.at_level("DEBUG", logger="knm.ssh"):
        await login_fails()  # asyncssh tried too, and refused as well
    assert [r for r in caplog.records if "keyboard-interactive" in r.getMessage()]
    assert transport.stats.connects == connects


def _session_processes(fleet: FleetCluster, local: tuple[str, int]) -> list[psutil.Process]:
    """The node's processes holding the TCP connection whose client end is ``local``."""
    found = []
    for pid in fleet.fleet.sshd_pids():
        for child in psutil.Process(pid).children(recursive=True):
            try:
                ends = [c.raddr for c in child.net_connections(kind="tcp") if c.raddr]
            except psutil.Error:
                continue
            if any((end.ip, end.port) == local for end in ends):
                found.append(child)
    return found


async def test_keepalives_keep_a_silent_command_alive_and_find_a_frozen_node(
    direct: Any, fleet: FleetCluster, ssh_client: str
) -> None:
    transport, context, credential = direct
    async with transport.session(context, node(fleet, 1), credential) as conn:
        conn.raw.set_keepalive(1, 2)
        # Silent for several intervals: the node answers each keepalive.
        assert (await transport.run(conn, "sleep 4")).exit_code == 0
        if ssh_client == "libssh2":
            local = conn.raw.sock.getsockname()[:2]
        else:
            local = conn.raw.get_extra_info("sockname")[:2]
        frozen = _session_processes(fleet, local)
        assert frozen
        for process in frozen:
            process.suspend()
        try:
            with pytest.raises(TransportError) as caught:
                await transport.run(conn, "sleep 30", timeout=60)
        finally:
            for process in frozen:
                with contextlib.suppress(psutil.Error):
                    process.resume()
        assert caught.value.reason == "connection_lost"
        assert conn.raw.is_closed()  # never pooled again


async def test_a_key_type_libssh2_does_not_take_is_left_to_asyncssh(
    direct: Any, fleet: FleetCluster, ssh_client: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    if ssh_client != "libssh2":
        pytest.skip("a libssh2 fallback")
    transport, context, credential = direct
    keyed = msgspec.structs.replace(
        credential, id=2, auth_type="private_key", password=None,
        private_key=fleet.fleet.encrypted_private_key_pkcs8_pem,
        passphrase=fleet.fleet.key_passphrase,
    )  # fmt: skip
    async with transport.session(context, node(fleet), keyed) as conn:
        assert isinstance(conn.raw, Libssh2Connection)  # an ed25519 key: libssh2's
        assert (await transport.run(conn, "true")).exit_code == 0
    monkeypatch.setattr(libssh2, "_KEY_TYPES", frozenset())
    keyed = msgspec.structs.replace(keyed, id=3)  # not the pooled login
    with caplog.at_level("DEBUG", logger="knm.ssh"):
        async with transport.session(context, node(fleet), keyed) as conn:
            assert not isinstance(conn.raw, Libssh2Connection)
            assert (await transport.run(conn, "true")).exit_code == 0
    assert [r for r in caplog.records if "takes no ssh-ed25519 keys" in r.getMessage()]


async def test_without_ssh2_python_the_libssh2_setting_falls_back_to_asyncssh(
    direct: Any, fleet: FleetCluster, ssh_client: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    if ssh_client != "libssh2":
        pytest.skip("a libssh2 fallback")
    from knm.plugins.ssh import transport as module

    monkeypatch.setattr(module, "_libssh2", lambda: None)
    transport, context, credential = direct
    with caplog.at_level("DEBUG", logger="knm.ssh"):
        async with transport.session(context, node(fleet), credential) as conn:
            assert not isinstance(conn.raw, Libssh2Connection)
            assert (await transport.run(conn, "true")).exit_code == 0
    assert [r for r in caplog.records if "ssh2-python is not installed" in r.getMessage()]
