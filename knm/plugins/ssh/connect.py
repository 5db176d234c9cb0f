"""Opening one asyncssh client connection, and turning its failures into node reasons."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import inspect
import logging
import socket
from collections.abc import MutableMapping
from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE
from asyncssh.logging import SSHLogger

from knm.core.transport import TransportError
from knm.plugins.ssh.hostkeys import HostKeyCheck

_keys: dict[str, asyncio.Future[asyncssh.SSHKey]] = {}
_MAX_CACHED_KEYS = 256

#: Ciphers in order of preference: all of asyncssh's defaults, AES-GCM first. Every one is an
#: OpenSSH default; AES-GCM (one AEAD call per packet, AES-NI) costs a tenth of the CPU of
#: chacha20-poly1305 in asyncssh (a cipher object and a Poly1305 per packet), on both ends of a
#: connection. A server without AES-GCM still negotiates the next one.
ENCRYPTION_ALGS = [
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
]

#: Key exchanges knm never offers: SHA-1 (OpenSSH dropped it from its client's defaults).
_WEAK_KEX = frozenset({b"diffie-hellman-group14-sha1", b"diffie-hellman-group1-sha1"})


def _kex_algs() -> list[str]:
    """Key exchange: asyncssh's defaults in its order, without SHA-1 (and without GSS, never
    used here). The post-quantum hybrid (mlkem768x25519-sha256) stays first although plain
    curve25519-sha256 would save ~190 µs of CPU per connection on each end (~5 % of knm's CPU
    in a 1,000-node fan-out): sessions carry credentials and command output, and a recorded
    session must not become readable to a future quantum computer for 5 %. OpenSSH (9.9+)
    makes the same choice."""
    from asyncssh.kex import get_default_kex_algs

    return [
        alg.decode()
        for alg in get_default_kex_algs()
        if alg not in _WEAK_KEX and not alg.startswith(b"gss-")
    ]


KEX_ALGS = _kex_algs()

#: Login methods in order: a key, then the password as such, then the password through
#: keyboard-interactive (asyncssh's and OpenSSH's order puts keyboard-interactive first, for
#: PAM's challenges, which knm cannot answer anyway): a password login takes one round trip and
#: two packets fewer (no INFO_REQUEST / INFO_RESPONSE) wherever the node accepts both. GSS and
#: host-based logins are never used.
PREFERRED_AUTH = ("publickey", "password", "keyboard-interactive")

#: A connection in use sends a keepalive after this many seconds without a packet from the node
#: and gives up after this many unanswered ones. An idle pooled connection sends none (see
#: ``knm.plugins.ssh.pool``).
KEEPALIVE_INTERVAL = 30
KEEPALIVE_COUNT_MAX = 3


def secret_digest(credential: Any) -> str:
    """A digest of the credential's login material: a changed secret never reuses a connection
    opened with the old one."""
    material = "\x00".join(
        [credential.username, credential.password or "", credential.private_key or "",
         credential.passphrase or ""]
    )  # fmt: skip
    return hashlib.sha256(material.encode()).hexdigest()


async def private_key(credential: Any) -> asyncssh.SSHKey:
    """The credential's private key, opened once per process (an encrypted key runs a slow KDF,
    which 1,000 nodes must not repeat)."""
    digest = hashlib.sha256(
        f"{credential.private_key}\x00{credential.passphrase or ''}".encode()
    ).hexdigest()
    future = _keys.get(digest)
    if future is not None and future.done() and not future.cancelled() and not future.exception():
        # Opened already: every node after the first (no shield, which costs a future each).
        return future.result()
    if future is None or future.get_loop() is not asyncio.get_running_loop():
        if len(_keys) >= _MAX_CACHED_KEYS:
            _keys.clear()
        future = asyncio.ensure_future(
            asyncio.to_thread(
                asyncssh.import_private_key, credential.private_key, credential.passphrase or None
            )
        )
        _keys[digest] = future
    try:
        return await asyncio.shield(future)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError):
        _keys.pop(digest, None)
        raise TransportError(
            "auth_failed", f"the private key of credential {credential.name} cannot be opened"
        ) from None


def _can_skip_construct() -> bool:
    """Whether this asyncssh opens a connection the way ``_login`` repeats (2.14 to 2.24 at
    least): options carry the ``waiter`` future the connection completes at login, and
    ``SSHClientConnection(loop, options, wait=...)`` is its protocol factory. Another shape
    falls back to ``asyncssh.connect``, which works everywhere at the old cost."""
    try:
        params = inspect.signature(asyncssh.SSHClientConnection.__init__).parameters
    except (TypeError, ValueError):
        return False
    carries_waiter = any(
        "waiter" in vars(cls).get("__annotations__", {})
        for cls in asyncssh.SSHClientConnectionOptions.__mro__
    )
    return carries_waiter and list(params)[:3] == ["self", "loop", "options"] and "wait" in params


#: See ``_can_skip_construct``; tests assert it holds for the installed asyncssh.
SKIPS_CONSTRUCT = _can_skip_construct()


def _can_batch_writes() -> bool:
    """Whether this asyncssh writes every packet through ``_send(data)`` (2.14 to 2.24 at
    least), which ``Connection`` takes over."""
    send = getattr(asyncssh.SSHClientConnection, "_send", None)
    try:
        return send is not None and list(inspect.signature(send).parameters) == ["self", "data"]
    except (TypeError, ValueError):
        return False


#: See ``_can_batch_writes``; tests assert it holds for the installed asyncssh.
BATCHES_WRITES = _can_batch_writes()


def _can_defer_keepalives() -> bool:
    """Whether this asyncssh keeps its keepalive timer the way ``Connection`` takes over (2.14
    to 2.24 at least): one ``TimerHandle`` in ``_keepalive_timer``, reset by
    ``_reset_keepalive_timer`` on every receive, firing ``_keepalive_timer_callback``."""
    cls = asyncssh.SSHClientConnection

    def names(method: str) -> set[str]:
        # The attributes a method's code reads: no source files needed.
        code = getattr(getattr(cls, method, None), "__code__", None)
        return set(code.co_names) if code is not None else set()

    return callable(getattr(cls, "_keepalive_timer_callback", None)) and (
        {"_keepalive_timer", "_keepalive_interval", "_keepalive_timer_callback"}
        <= names("_set_keepalive_timer")
        and {"_auth_complete", "_set_keepalive_timer"} <= names("_reset_keepalive_timer")
    )


#: See ``_can_defer_keepalives``; tests assert it holds for the installed asyncssh.
DEFERS_KEEPALIVES = _can_defer_keepalives()


class QuietLogger(SSHLogger):
    """asyncssh's logger adapter, asking whether a message is wanted before turning its
    arguments into text (asyncssh's converts them first, then the logger drops the message:
    ~2 % of a cold fan-out's samples). Its children (the channels', the logins') are of this
    class too: asyncssh makes them with ``type(self)``."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)


class Connection(asyncssh.SSHClientConnection):
    """knm's asyncssh client connection: six departures from asyncssh, for the CPU a fan-out
    spends per node (``bench/ssh_path_floor.py``) and the packets it costs the nodes.

    - The packets written in one turn of the event loop leave in one socket write. asyncssh
      writes each packet on its own, and puts an empty IGNORE packet before every encrypted one:
      a login and one command made 21 writes, each a system call that, on loopback and in the
      kernel's TCP path, costs more than the packet's encryption; batched, 12. The order is
      kept, and the batch leaves before anything the loop runs next, the transport's close or
      abort included (asyncssh schedules those with ``call_soon`` too).
    - A login with a key and no password starts with the key: asyncssh first asks for the
      ``none`` method to learn what the node takes, a round trip and two packets each way that a
      key login does not need (a node that refuses the key answers with the methods it takes,
      as it would have). A login with a password keeps the ``none`` request: asyncssh hands the
      password out once, so trying the ``password`` method on a node that takes only
      keyboard-interactive would leave nothing to answer its prompt with.
    - Packets are described for the log only when the log would take them: asyncssh formats
      each packet's name and size before its logger drops them (3 % of a cold fan-out's
      samples for the connection's own packets, 3 % more for those its channels and login
      send).
    - The keepalive timer is not remade for every packet received. asyncssh cancels it and
      makes a new one each time data arrives (3-4 % of a cold fan-out's samples); here the
      arrival is only noted, and a timer that fires with data seen since moves on to an
      interval after that data. Keepalives go out exactly when asyncssh's would: after an
      interval with nothing from the node.
    - Its log messages, and its channels' and logins', go through ``QuietLogger``, which asks
      whether the log would take a message before formatting its arguments.
    - No empty IGNORE packet before each encrypted one. asyncssh sends one (RFC 4251 9.3.1's
      countermeasure to the CBC-mode attack on predictable IVs) whatever the cipher; knm offers
      no CBC cipher, and under AES-GCM, ChaCha20-Poly1305 or CTR the packet protects nothing
      and costs an encryption and a packet each way. Were a CBC cipher ever negotiated, it is
      sent as before. An IGNORE the caller sends itself goes out as ever."""

    _batch: list[bytes] | None = None
    #: Set while ``send_packet`` runs: the IGNORE asyncssh sends from inside it is its own.
    _sending = False
    #: The event loop's time of the last data from the node (after login).
    _received_at = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self.logger) is SSHLogger:
            # The same adapter (its logger and context), asking first.
            self.logger.__class__ = QuietLogger
        key_only = getattr(self, "_password", "") is None and getattr(self, "_client_keys", None)
        if key_only and getattr(self, "_auth_methods", None) == [b"none"]:
            self._auth_methods = [b"publickey"]

    def log_sent_packet(self, pkttype: int, pktid: int | None, packet: Any, note: str = "") -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            super().log_sent_packet(pkttype, pktid, packet, note)

    def log_received_packet(
        self, pkttype: int, pktid: int | None, packet: Any, note: str = ""
    ) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            super().log_received_packet(pkttype, pktid, packet, note)

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        if handler is not None and not self.logger.isEnabledFor(logging.DEBUG):
            # asyncssh reads ``handler`` (a channel, the login) only to log the packet through
            # it; without it the packet is logged, or not, by ``log_sent_packet`` above.
            handler = None
        if self._sending:
            # asyncssh's own packets from inside a send: its IGNORE, or a rekey's KEXINIT.
            if pkttype == MSG_IGNORE and b"cbc" not in getattr(self, "_enc_alg_cs", b"cbc"):
                return
            super().send_packet(pkttype, *args, handler=handler)
            return
        self._sending = True
        try:
            super().send_packet(pkttype, *args, handler=handler)
        finally:
            self._sending = False

    def _reset_keepalive_timer(self) -> None:
        if not DEFERS_KEEPALIVES:
            super()._reset_keepalive_timer()
        elif self._auth_complete:
            self._received_at = self._loop.time()
            if self._keepalive_timer is None:
                self._set_keepalive_timer()

    def _keepalive_timer_callback(self) -> None:
        due = self._received_at + self._keepalive_interval
        if DEFERS_KEEPALIVES and self._keepalive_interval and due > self._loop.time():
            self._keepalive_timer = self._loop.call_at(due, self._keepalive_timer_callback)
            return
        super()._keepalive_timer_callback()

    def set_keepalive(self, interval: Any = None, count_max: int | None = None) -> None:
        # A new interval counts from now, as in asyncssh (whose reset remakes the timer).
        self._cancel_keepalive_timer()
        super().set_keepalive(interval, count_max)

    def _send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._batch is None:
            self._batch = [data]
            self._loop.call_soon(self._write_batch, transport)
        else:
            self._batch.append(data)

    def _write_batch(self, transport: asyncio.BaseTransport) -> None:
        batch, self._batch = self._batch, None
        # As asyncssh's own write: a lost connection is reported by ``connection_lost``.
        if batch and not transport.is_closing():
            with contextlib.suppress(ConnectionError):
                transport.write(b"".join(batch))  # type: ignore[attr-defined]


async def open_connection(
    *,
    address: str,
    port: int,
    credential: Any,
    check: HostKeyCheck,
    connect_timeout: float,
    tunnel: asyncssh.SSHClientConnection | None = None,
    via: str = "",
    cache: MutableMapping[Any, Any] | None = None,
) -> asyncssh.SSHClientConnection:
    """A logged-in connection whose host key passed ``check``; ``TransportError`` otherwise.

    Nothing of the local user's SSH setup is used (no ~/.ssh/config, agent or default keys):
    the credential is the only identity. ``cache`` (the task's) keeps the login's options, built
    once per credential, port and host key algorithms instead of once per node."""
    where = f"{address}:{port}{via}"
    known_hosts = await check.known_hosts()
    try:
        if SKIPS_CONSTRUCT:
            base = await _login_options(credential, port, check, connect_timeout, cache)
            conn = await _login(base, address, port, known_hosts, tunnel, connect_timeout)
        else:
            options = await _option_values(credential, port, check, connect_timeout)
            options.update(known_hosts=known_hosts, tunnel=tunnel)
            conn = await asyncssh.connect(address, **options)
    except TransportError:
        raise
    except asyncssh.HostKeyNotVerifiable:
        raise check.rejected() from None
    except asyncssh.PermissionDenied:
        raise TransportError(
            "auth_failed",
            f"authentication failed for user {credential.username} on {where} "
            f"(credential {credential.name})",
        ) from None
    except TimeoutError:
        raise TransportError(
            "unreachable", f"connection to {where} timed out after {connect_timeout:g} s"
        ) from None
    except ConnectionRefusedError:
        raise TransportError("unreachable", f"connection refused by {where}") from None
    except socket.gaierror as exc:
        raise TransportError("unreachable", f"cannot resolve {address}: {exc.strerror}") from None
    except asyncssh.KeyExchangeFailed as exc:
        if "host key" in exc.reason.lower() and check.policy != "off":
            # Only the pinned key's or the CAs' algorithms were offered, and the node has none.
            raise check.rejected() from None
        raise TransportError(
            "unreachable", f"key exchange with {where} failed: {exc.reason}"
        ) from None
    except asyncssh.ChannelOpenError as exc:
        # A bastion that cannot reach the node answers the tunnel request with this.
        raise TransportError("unreachable", f"cannot reach {where}: {exc.reason}") from None
    except asyncssh.DisconnectError as exc:
        raise TransportError(
            "unreachable", f"{where} closed the connection during login: {exc.reason}"
        ) from None
    except OSError as exc:
        raise TransportError(
            "unreachable", f"cannot connect to {where}: {exc.strerror or exc}"
        ) from None
    try:
        await check.accept(conn.get_server_host_key())
    except BaseException:
        conn.abort()
        raise
    return conn


async def _option_values(
    credential: Any, port: int, check: HostKeyCheck, connect_timeout: float
) -> dict[str, Any]:
    """The keyword options of every login with ``credential`` on ``port`` (``known_hosts`` and
    ``tunnel`` are the node's)."""
    options: dict[str, Any] = {
        "port": port,
        "username": credential.username,
        "connect_timeout": connect_timeout,
        "config": None,
        "agent_path": None,
        "client_keys": None,
        "password": credential.password or None,
        "preferred_auth": PREFERRED_AUTH,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "encryption_algs": ENCRYPTION_ALGS,
        "kex_algs": KEX_ALGS,
        # Never compress (asyncssh's default too, said here): small outputs, CPU on both ends.
        "compression_algs": None,
        # Nothing of Kerberos or X.509 is ever used: skip asyncssh's lookups for them (files
        # under ~/.ssh, GSS algorithms, a GSS client per connection).
        "gss_kex": False,
        "gss_auth": False,
        "gss_host": None,
        "x509_trusted_certs": None,
        "x509_trusted_cert_paths": [],
    }
    if check.algorithms:
        options["server_host_key_algs"] = check.algorithms
    if credential.auth_type == "private_key" and credential.private_key:
        options["client_keys"] = [await private_key(credential)]
    return options


async def _login_options(
    credential: Any,
    port: int,
    check: HostKeyCheck,
    connect_timeout: float,
    cache: MutableMapping[Any, Any] | None,
) -> asyncssh.SSHClientConnectionOptions:
    """The options of a login with ``credential`` on ``port``, built on the event loop and kept
    in ``cache``. ``asyncssh.connect`` builds them anew for every connection, in a worker thread
    (~55 µs of Python plus the hand-off: ~190 µs of CPU per connection, and the thread's GIL
    traffic): 10-14 % of knm's samples in a 1,000-node fan-out."""
    key = ("ssh.options", id(credential), port, tuple(check.algorithms or ()), connect_timeout)
    held = cache.get(key) if cache is not None else None
    if held is not None and held[0] is credential:
        return held[1]  # type: ignore[no-any-return]
    values = await _option_values(credential, port, check, connect_timeout)
    options = asyncssh.SSHClientConnectionOptions(
        None, loop=asyncio.get_running_loop(), host="", known_hosts=None, tunnel=None, **values
    )
    if cache is not None:
        cache[key] = (credential, options)
    return options


async def _login(
    base: asyncssh.SSHClientConnectionOptions,
    address: str,
    port: int,
    known_hosts: Any,
    tunnel: asyncssh.SSHClientConnection | None,
    connect_timeout: float,
) -> asyncssh.SSHClientConnection:
    """What ``asyncssh.connect(address, options=...)`` does for a direct or tunnelled
    connection, from options built once: a copy per connection carries what is the node's own
    (its address, port and known hosts, the bastion, the ``waiter`` the connection completes
    once logged in). Nothing in the copy is shared state: the connection reads the options at
    its start and asyncssh changes them only through ``Options.update``, which knm never calls."""
    loop = asyncio.get_running_loop()
    options = copy.copy(base)
    options.orig_host = options.host = address
    options.port = port
    options.known_hosts = known_hosts
    options.tunnel = tunnel
    waiter = options.waiter = loop.create_future()

    connection = Connection if BATCHES_WRITES else asyncssh.SSHClientConnection

    def factory() -> asyncssh.SSHClientConnection:
        return connection(loop, options, wait="auth")

    # ``asyncio.timeout``, not ``wait_for``: no extra task per connection.
    async with asyncio.timeout(connect_timeout):
        try:
            if tunnel is not None:
                _, conn = await tunnel.create_connection(factory, address, port)  # type: ignore[arg-type]
            else:
                _, conn = await loop.create_connection(factory, address, port)
        except asyncio.CancelledError:
            waiter.cancel()
            raise
        conn.set_extra_info(host=address, port=port)
        try:
            await waiter
        except BaseException:
            conn.abort()
            await conn.wait_closed()
            raise
        return conn
