"""Opening an asyncssh connection: the cheap strong ciphers first and nothing weak offered, the
password sent as such where the node takes it, and each turn of the loop's packets in one
write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest
from asyncssh.connection import SSHConnection
from asyncssh.constants import (
    MSG_GLOBAL_REQUEST,
    MSG_IGNORE,
    MSG_USERAUTH_REQUEST,
)
from asyncssh.kex import get_default_kex_algs
from asyncssh.packet import SSHPacket, SSHPacketLogger, String

from knm.core.credentials import DecryptedCredential
from knm.core.transport import TransportError
from knm.plugins.ssh import connect
from knm.plugins.ssh.connect import (
    BATCHES_WRITES,
    DEFERS_KEEPALIVES,
    ENCRYPTION_ALGS,
    KEX_ALGS,
    PREFERRED_AUTH,
    Connection,
    open_connection,
)
from knm.plugins.ssh.hostkeys import HostKeyCheck
from knm.plugins.ssh.schemas import SshSettings


def test_the_key_exchange_keeps_asyncssh_order_with_the_post_quantum_hybrid_first() -> None:
    defaults = [alg.decode() for alg in get_default_kex_algs() if not alg.startswith(b"gss-")]
    assert [alg for alg in defaults if not alg.endswith("-sha1")] == KEX_ALGS
    assert KEX_ALGS[0].startswith("mlkem768x25519")


def test_no_sha1_key_exchange_and_no_gss_are_offered() -> None:
    assert not [alg for alg in KEX_ALGS if alg.endswith("-sha1") or alg.startswith("gss-")]


def test_the_ciphers_are_aead_first_and_never_cbc_or_rc4() -> None:
    assert ENCRYPTION_ALGS[0] == "aes256-gcm@openssh.com"
    assert not [alg for alg in ENCRYPTION_ALGS if "cbc" in alg or "arcfour" in alg]


# --- logins against a node in this process ---------------------------------------------------

_PASSWORD = "a-node-password"
_KEY = asyncssh.generate_private_key("ssh-ed25519")


class _Node(asyncssh.SSHServer):
    """A node taking the password by the ``password`` method and by keyboard-interactive, or
    by keyboard-interactive only; it notes how each login came in and how it ended."""

    def __init__(self, methods: set[str], lab: _Lab) -> None:
        self.methods, self.logins, self.endings = methods, lab.logins, lab.endings
        self.connections = lab.connections

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return "password" in self.methods

    def validate_password(self, username: str, password: str) -> bool:
        self.logins.append("password")
        return password == _PASSWORD

    def public_key_auth_supported(self) -> bool:
        return "publickey" in self.methods

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self.logins.append("publickey")
        return key.public_data == _KEY.public_data

    def kbdint_auth_supported(self) -> bool:
        return "keyboard-interactive" in self.methods

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> Any:
        return "", "", "", [("Password: ", False)]

    def validate_kbdint_response(self, username: str, responses: Any) -> bool:
        self.logins.append("keyboard-interactive")
        return list(responses) == [_PASSWORD]

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connections.append(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.endings.append(exc)


class _Lab:
    def __init__(self) -> None:
        self.logins: list[str] = []
        self.endings: list[object] = []
        self.connections: list[asyncssh.SSHServerConnection] = []
        self.port = 0


@pytest.fixture
async def node_lab(request: pytest.FixtureRequest) -> AsyncIterator[_Lab]:
    """A node on 127.0.0.1 taking the password both ways, or the ways the test gives it
    (``indirect`` parametrization)."""
    methods = set(getattr(request, "param", ("password", "keyboard-interactive")))
    lab = _Lab()

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        verb, _, count = (process.command or "").partition(" ")
        if verb == "sleep":  # silent for that many seconds
            await asyncio.sleep(float(count))
        elif verb == "tick":  # a line every 50 ms, that many times
            for _ in range(int(count)):
                process.stdout.write(".\n")
                await asyncio.sleep(0.05)
        process.stdout.write("ran\n")
        process.exit(0)

    server = await asyncssh.create_server(
        lambda: _Node(methods, lab), "127.0.0.1", 0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")], process_factory=handle,
    )  # fmt: skip
    lab.port = server.sockets[0].getsockname()[1]
    try:
        yield lab
    finally:
        server.close()
        await server.wait_closed()


async def _login(lab: _Lab, *, key: bool = False) -> asyncssh.SSHClientConnection:
    credential = DecryptedCredential(
        id=1, name="lab", username="ops", port=lab.port,
        auth_type="private_key" if key else "password", password=None if key else _PASSWORD,
        private_key=_KEY.export_private_key().decode() if key else None,
    )  # fmt: skip
    # The "off" policy reads no pin: the check needs no database.
    check = HostKeyCheck(
        None, SshSettings(host_key_policy="off"), "lab", "n", "127.0.0.1", lab.port
    )
    return await open_connection(
        address="127.0.0.1", port=lab.port, credential=credential, check=check,
        connect_timeout=30.0,
    )  # fmt: skip


async def test_a_password_login_sends_the_password_as_such_where_the_node_takes_it(
    node_lab: _Lab,
) -> None:
    conn = await _login(node_lab)
    conn.close()
    await conn.wait_closed()
    # Not keyboard-interactive, asyncssh's first choice: a round trip and two packets more.
    assert node_lab.logins == ["password"]
    assert PREFERRED_AUTH.index("password") < PREFERRED_AUTH.index("keyboard-interactive")


@pytest.mark.parametrize("node_lab", [("keyboard-interactive",)], indirect=True)
async def test_a_node_taking_passwords_only_by_keyboard_interactive_still_logs_in(
    node_lab: _Lab,
) -> None:
    conn = await _login(node_lab)
    result = await conn.run("anything")
    conn.close()
    await conn.wait_closed()
    assert node_lab.logins == ["keyboard-interactive"] and result.stdout == "ran\n"


async def test_the_packets_of_one_turn_of_the_loop_leave_in_one_write_and_in_order(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert BATCHES_WRITES, "this asyncssh no longer writes its packets through _send"
    conn = await _login(node_lab)
    assert isinstance(conn, Connection)
    writes: list[int] = []
    transport = conn._transport  # type: ignore[attr-defined]
    write = transport.write
    monkeypatch.setattr(transport, "write", lambda data: writes.append(len(data)) or write(data))
    for _ in range(3):
        conn.send_packet(MSG_IGNORE, String(b"x" * 100))
    assert writes == []  # nothing yet: the batch leaves once this turn of the loop ends
    await asyncio.sleep(0)
    assert len(writes) == 1 and writes[0] > 300
    # Out of order or lost, the node would refuse the next packet's MAC and drop us.
    result = await conn.run("anything")
    assert result.stdout == "ran\n"
    conn.close()
    await conn.wait_closed()


async def test_the_goodbye_written_as_the_connection_closes_reaches_the_node(
    node_lab: _Lab,
) -> None:
    conn = await _login(node_lab)
    conn.close()  # writes DISCONNECT, then asyncssh aborts the transport on the next turn
    await conn.wait_closed()
    for _ in range(100):
        if node_lab.endings:
            break
        await asyncio.sleep(0.05)
    # A lost DISCONNECT would end the node's side with "connection lost", not cleanly.
    assert node_lab.endings == [None]


def _methods_asked(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The method of every login request knm's connections send from now on."""
    asked: list[bytes] = []
    send = Connection.send_packet

    def recorded(self: Connection, pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if pkttype == MSG_USERAUTH_REQUEST:
            packet = SSHPacket(b"".join(args))
            packet.get_string(), packet.get_string()  # the user and the service
            asked.append(packet.get_string())
        send(self, pkttype, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packet", recorded)
    return asked


@pytest.mark.parametrize("node_lab", [("publickey", "password")], indirect=True)
async def test_a_key_login_starts_with_the_key_without_asking_what_the_node_takes(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _methods_asked(monkeypatch)
    conn = await _login(node_lab, key=True)
    result = await conn.run("anything")
    conn.close()
    await conn.wait_closed()
    assert result.stdout == "ran\n"
    assert b"none" not in asked and asked[0] == b"publickey"


@pytest.mark.parametrize("node_lab", [("password", "keyboard-interactive")], indirect=True)
async def test_a_node_refusing_keys_refuses_a_key_login_as_before(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _methods_asked(monkeypatch)
    with pytest.raises(TransportError) as caught:
        await _login(node_lab, key=True)
    assert caught.value.reason == "auth_failed"
    assert asked[0] == b"publickey" and node_lab.logins == []


async def test_a_password_login_still_asks_what_the_node_takes_first(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _methods_asked(monkeypatch)
    conn = await _login(node_lab)
    conn.close()
    await conn.wait_closed()
    assert asked == [b"none", b"password"]


async def test_packets_are_still_logged_when_asyncssh_is_asked_to(
    node_lab: _Lab, caplog: pytest.LogCaptureFixture
) -> None:
    asyncssh.set_debug_level(3)
    try:
        with caplog.at_level("DEBUG", logger="asyncssh"):
            conn = await _login(node_lab)
            await conn.run("anything")
            conn.close()
            await conn.wait_closed()
    finally:
        asyncssh.set_debug_level(1)
    said = [r.getMessage() for r in caplog.records]
    assert any("Sent MSG_USERAUTH_REQUEST" in m for m in said), said[:20]
    assert any("Received MSG_USERAUTH_SUCCESS" in m for m in said)
    # A channel's packets under the channel's name, as asyncssh logs them.
    assert any("chan=" in m and "Sent MSG_CHANNEL_REQUEST" in m for m in said), said[-20:]


async def test_no_packet_is_described_for_a_log_that_takes_none(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    described: list[tuple[str, int]] = []
    describe = SSHPacketLogger._log_packet

    def counted(self: SSHPacketLogger, msg: str, pkttype: int, *args: Any) -> None:
        # The client's connection, its channels and its login (the node is in this process).
        if isinstance(self if isinstance(self, SSHConnection) else self._conn, Connection):  # type: ignore[attr-defined]
            described.append((msg, pkttype))
        describe(self, msg, pkttype, *args)

    monkeypatch.setattr(SSHPacketLogger, "_log_packet", counted)
    conn = await _login(node_lab)
    result = await conn.run("anything")
    conn.close()
    await conn.wait_closed()
    assert result.stdout == "ran\n"
    # Nothing sent; what the channel and the login receive is still described by asyncssh
    # (a packet received goes through asyncssh's own handler classes).
    assert described and not [t for msg, t in described if msg == "Sent"], described


class _Counted:
    """A log argument that counts how often it is turned into text."""

    def __init__(self) -> None:
        self.times = 0

    def __str__(self) -> str:
        self.times += 1
        return "counted"


async def test_a_log_message_nobody_takes_is_not_formatted(
    node_lab: _Lab, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await _login(node_lab)
    try:
        argument = _Counted()
        # asyncssh turns a list argument into text as it logs (its algorithms, its methods).
        with caplog.at_level("WARNING", logger="asyncssh"):
            conn.logger.info("a message with %s", [argument])
            conn.logger.get_child("chan").info("a channel's message with %s", [argument])
        assert argument.times == 0
        with caplog.at_level("INFO", logger="asyncssh"):
            conn.logger.info("a message with %s", [argument])
        assert argument.times == 1
        assert "a message with counted" in caplog.text
        assert f"[{conn.logger._context}]" in caplog.text  # the connection's context kept
    finally:
        conn.close()
        await conn.wait_closed()


async def test_the_logins_and_channels_messages_still_reach_an_info_log(
    node_lab: _Lab, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="asyncssh"):
        conn = await _login(node_lab)
        result = await conn.run("true")
        conn.close()
        await conn.wait_closed()
    assert result.stdout == "ran\n"
    said = [r.getMessage() for r in caplog.records]
    assert any("Auth for user ops succeeded" in m for m in said), said
    assert any("Requesting new SSH session" in m for m in said), said


def _packets_sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The type of every packet knm's connections send from now on (a channel's and the
    login's too: with packet logging off they are logged, or not, by the connection)."""
    sent: list[int] = []
    log = Connection.log_sent_packet

    def recorded(self: Connection, pkttype: int, *args: Any, **kwargs: Any) -> None:
        sent.append(pkttype)
        log(self, pkttype, *args, **kwargs)

    monkeypatch.setattr(Connection, "log_sent_packet", recorded)
    return sent


async def test_no_ignore_packet_goes_before_each_packet_of_a_login_and_a_command(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    result = await conn.run("anything")
    conn.close()
    await conn.wait_closed()
    assert result.stdout == "ran\n"
    assert MSG_USERAUTH_REQUEST in sent
    assert MSG_IGNORE not in sent


async def test_an_ignore_packet_the_caller_sends_goes_out(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    conn.send_packet(MSG_IGNORE, String(b""))
    result = await conn.run("anything")
    conn.close()
    await conn.wait_closed()
    assert sent.count(MSG_IGNORE) == 1 and result.stdout == "ran\n"


async def test_under_a_cbc_cipher_asyncssh_still_puts_an_ignore_before_each_packet(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    assert sent.count(MSG_IGNORE) == 0
    # knm offers no CBC cipher: what the connection would do had one been negotiated.
    conn._enc_alg_cs = b"aes256-cbc"  # type: ignore[attr-defined]
    result = await conn.run("anything")
    conn.close()
    await conn.wait_closed()
    assert result.stdout == "ran\n"
    assert sent.count(MSG_IGNORE) >= 2  # at least the session's open and its exec request


# --- keepalives -------------------------------------------------------------------------------
# The node is in this process, on the same event loop: a stall of the loop delays both ends, so
# each test leaves several intervals of room rather than timing one.


def test_an_asyncssh_keeping_its_keepalive_timer_another_way_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert connect._can_defer_keepalives()

    def another_timer(self: asyncssh.SSHClientConnection) -> None:
        self._timers = []  # type: ignore[attr-defined]

    monkeypatch.setattr(asyncssh.SSHClientConnection, "_set_keepalive_timer", another_timer)
    assert not connect._can_defer_keepalives()


async def test_a_silent_node_gets_a_keepalive_each_interval_and_answers_them(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEFERS_KEEPALIVES, "this asyncssh no longer keeps its keepalive timer as Connection does"
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    conn.set_keepalive(0.2, 2)
    result = await conn.run("sleep 2")  # about nine intervals
    conn.close()
    await conn.wait_closed()
    assert result.stdout == "ran\n"  # three unanswered ones would have dropped it
    assert sent.count(MSG_GLOBAL_REQUEST) >= 3


async def test_a_node_sending_data_more_often_than_the_interval_gets_no_keepalive(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    conn.set_keepalive(1.5, 2)
    result = await conn.run("tick 40")  # 2 s, a line every 50 ms
    assert result.stdout.count(".") == 40
    assert sent.count(MSG_GLOBAL_REQUEST) == 0
    # Once the node falls silent, the keepalives start again.
    await asyncio.sleep(2)
    conn.close()
    await conn.wait_closed()
    assert sent.count(MSG_GLOBAL_REQUEST) >= 1


async def test_a_node_that_stops_answering_is_lost_after_its_unanswered_keepalives(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    conn.set_keepalive(0.2, 2)
    process = await conn.create_process("sleep 30")
    node_lab.connections[-1]._transport.pause_reading()  # type: ignore[attr-defined]
    try:
        await asyncio.wait_for(conn.wait_closed(), 10)
    finally:
        node_lab.connections[-1]._transport.resume_reading()  # type: ignore[attr-defined]
    # Two keepalives went unanswered; the third interval of silence lost the node.
    assert sent.count(MSG_GLOBAL_REQUEST) == 2
    assert process.exit_status is None


async def test_turning_keepalives_off_and_on_again_counts_the_interval_from_then(
    node_lab: _Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _packets_sent(monkeypatch)
    conn = await _login(node_lab)
    conn.set_keepalive(0)  # as the pool does for an idle connection
    await asyncio.sleep(0.5)
    assert sent.count(MSG_GLOBAL_REQUEST) == 0 and conn._keepalive_timer is None  # type: ignore[attr-defined]
    conn.set_keepalive(1, 2)  # checked out again
    loop = asyncio.get_running_loop()
    assert conn._keepalive_timer.when() - loop.time() > 0.9  # type: ignore[attr-defined]
    await asyncio.sleep(1.5)
    conn.close()
    await conn.wait_closed()
    assert sent.count(MSG_GLOBAL_REQUEST) >= 1


async def test_data_from_the_node_leaves_the_keepalive_timer_as_it_is(node_lab: _Lab) -> None:
    conn = await _login(node_lab)
    conn.set_keepalive(10, 2)
    timer = conn._keepalive_timer  # type: ignore[attr-defined]
    result = await conn.run("tick 10")
    # asyncssh cancelled it and made another for every packet received.
    assert conn._keepalive_timer is timer and not timer.cancelled()  # type: ignore[attr-defined]
    conn.close()
    await conn.wait_closed()
    assert result.stdout.count(".") == 10
