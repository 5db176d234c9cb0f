"""The libssh2 client (ssh2-python), non-blocking under asyncio: the SSH settings' ``client:
libssh2``. The same logins, host key rules, node reasons and command behaviour as the asyncssh
client (``connect``, ``process``), at about a third of its CPU per connection: libssh2 runs the
protocol in C, and knm only waits on the socket (``add_reader``/``add_writer``, as
``session.block_directions()`` asks) and hands output to the callbacks.

What it does not do, and what the transport therefore still opens with asyncssh for that node:
a connection through a bastion (no ``direct-tcpip`` tunnel here), and host certificates (under
``strict`` with a cert authority covering the cluster: libssh2 does not verify them). It offers
no post-quantum hybrid key exchange (curve25519-sha256 first): see ``docs/design.md``.
"""

from __future__ import annotations

import asyncio
import binascii
import codecs
import contextlib
import ctypes
import functools
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

import asyncssh
from asyncssh.public_key import decode_ssh_public_key
from ssh2 import exceptions as errors
from ssh2.error_codes import LIBSSH2_ERROR_EAGAIN
from ssh2.session import (
    LIBSSH2_METHOD_CRYPT_CS,
    LIBSSH2_METHOD_CRYPT_SC,
    LIBSSH2_METHOD_HOSTKEY,
    LIBSSH2_METHOD_KEX,
    LIBSSH2_SESSION_BLOCK_INBOUND,
    LIBSSH2_SESSION_BLOCK_OUTBOUND,
    Session,
)

from knm.core.transport import RunResult, TransportError
from knm.plugins.ssh.connect import (
    ENCRYPTION_ALGS,
    KEEPALIVE_COUNT_MAX,
    KEEPALIVE_INTERVAL,
    private_key,
)
from knm.plugins.ssh.hostkeys import HostKeyCheck
from knm.plugins.ssh.memory import release_zero_pages

log = logging.getLogger("knm.ssh")

EAGAIN = LIBSSH2_ERROR_EAGAIN
#: Seconds to wait for a killed command's channel to close before giving up on the connection.
_CLOSE_GRACE = 3.0
#: Bytes asked of libssh2 per read, and written per call.
_CHUNK = 32 * 1024
#: libssh2's failures on a connection that is gone (the node closed it, or it broke).
_GONE = (
    errors.SocketDisconnectError, errors.SocketRecvError, errors.SocketSendError,
    errors.SocketTimeout, errors.BadSocketError, errors.ChannelClosedError,
    errors.ChannelEOFSentError, errors.ChannelError, errors.ChannelFailure, errors.SessionError,
    errors.ProtocolError, errors.ChannelUnknownError, errors.InvalidMACError,
    errors.DecryptError, BrokenPipeError, ConnectionError,
)  # fmt: skip
_AUTH_FAILED = (
    errors.AuthenticationError, errors.PublickeyUnverifiedError, errors.PasswordExpiredError,
    errors.MethodNoneError, errors.PublicKeyError, errors.KeyfileAuthFailedError,
)  # fmt: skip

_SUPPORTED: dict[int, list[str]] = {}


def _supported(method: int) -> list[str]:
    if method not in _SUPPORTED:
        _SUPPORTED[method] = list(Session().supported_algs(method))
    return _SUPPORTED[method]


@functools.cache
def _kex() -> str:
    """libssh2's key exchanges in its order, without SHA-1; its strict-kex and ext-info markers
    stay (strict kex closes the Terrapin prefix attack)."""
    return ",".join(alg for alg in _supported(LIBSSH2_METHOD_KEX) if "sha1" not in alg)


@functools.cache
def _ciphers() -> str:
    """``connect.ENCRYPTION_ALGS``, the ones libssh2 has, in that order (AES-GCM first)."""
    have = set(_supported(LIBSSH2_METHOD_CRYPT_CS))
    return ",".join(alg for alg in ENCRYPTION_ALGS if alg in have)


def _host_key_algs(pinned: str | None) -> str:
    """The pinned key's algorithms first, then every other plain key algorithm (no certificate:
    none can be verified here). As with asyncssh, a node rebuilt with another key type is then
    ``host_key_changed``, not an ``unreachable`` key exchange failure."""
    return _host_key_algs_for(pinned.split()[0] if pinned else None)


@functools.cache
def _host_key_algs_for(key_type: str | None) -> str:
    """``_host_key_algs`` by the pinned key's type (a handful of them: built once each)."""
    plain = [alg for alg in _supported(LIBSSH2_METHOD_HOSTKEY) if "-cert-" not in alg]
    first: list[str] = []
    if key_type:
        first = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if key_type == "ssh-rsa" else [key_type]
    return ",".join(dict.fromkeys([*(a for a in first if a in plain), *plain]))


class UseAsyncssh(Exception):
    """Raised by ``open_connection`` when only the asyncssh client can log in to the node; the
    message says why (no secret in it)."""


def fallback(settings: Any, cluster: str, bastion: Any) -> str | None:
    """Why a connection must be opened with asyncssh instead, or None when libssh2 can."""
    if _native() is None:
        return "this ssh2-python's libssh2 cannot be reached to read exit signals"
    if bastion is not None:
        return "it goes through a bastion"
    if settings.host_key_policy == "strict" and any(
        ca.covers(cluster) for ca in settings.cert_authorities
    ):
        return "a cert authority may vouch for its host key (libssh2 checks no certificates)"
    return None


class Libssh2Connection:
    """One logged-in libssh2 session and its socket. Used by one coroutine at a time (a
    ``session`` holds it), so one wait on the socket at a time."""

    def __init__(self, session: Session, sock: socket.socket, address: str, port: int) -> None:
        self.session = session
        self.sock = sock
        self.address = address
        self.port = port
        self._fd = sock.fileno()
        self._closed = False
        #: The loop the socket's reader is registered with (None: not registered).
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        #: The current ``wait``'s future (None between waits), and whether it waits to read.
        self._waiter: asyncio.Future[None] | None = None
        self._inbound = False
        #: Whether the loop may call the reader for data already read (``_register``).
        self._recheck = False
        #: When the current wait began, and whether its keepalive interval ran out.
        self._wait_began = 0.0
        self._silent = False
        #: The keepalive timer: at most one per connection, moved on lazily (``_tick``).
        self._timer: asyncio.TimerHandle | None = None
        #: The node's host key as the key exchange gave it (SSH wire format), decoded only
        #: when asked for (``get_server_host_key``): most connections only compare it.
        self._host_key_blob = b""
        self._host_key: asyncssh.SSHKey | None = None
        #: Seconds without a packet from the node before a keepalive is sent (0: none, idle).
        self.keepalive_interval: float = KEEPALIVE_INTERVAL
        self.keepalive_count_max = KEEPALIVE_COUNT_MAX

    # --- what the pool and the transport ask of a connection ------------------------------

    def is_closed(self) -> bool:
        """Closed here, or by the node (found by peeking at the socket: nothing reads an idle
        libssh2 connection, so its end of file waits there)."""
        if self._closed:
            return True
        try:
            if self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                self.abort()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.abort()
        return self._closed

    def close(self) -> None:
        """Says goodbye if the socket takes it at once, and closes it."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            self.session.disconnect()
        self.abort()

    def abort(self) -> None:
        """Shuts the socket down; its descriptor is closed with the last object holding it
        (``_Socket``), after libssh2 freed the session: a channel freed later may still try to
        send its close, which must fail, not reach another connection that reused the number."""
        self._closed = True
        self._unregister()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        # A wait under way (its reader just went) tries libssh2 again, which fails.
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def set_keepalive(self, interval: float, count_max: int | None = None) -> None:
        self.keepalive_interval = interval
        if count_max is not None:
            self.keepalive_count_max = count_max

    def get_server_host_key(self) -> asyncssh.SSHKey | None:
        if self._host_key is None and self._host_key_blob:
            self._host_key = decode_ssh_public_key(self._host_key_blob)
        return self._host_key

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            with contextlib.suppress(OSError):
                return self.sock.getpeername()
        return default

    # --- waiting on the socket ------------------------------------------------------------

    async def wait(self) -> None:
        """Until the socket is ready the way libssh2 last blocked on. While a command runs, a
        node silent for ``keepalive_interval`` seconds is sent a keepalive; after
        ``keepalive_count_max`` of them unanswered, the connection is lost.

        The socket's reader stays registered from one wait to the next (a connection waits
        10–20 times per command, and registering costs more than libssh2's read): it goes
        when the socket turns readable with no wait for reading pending (``_readable``), or
        with ``abort``. The keepalive timer, likewise, is one per connection, moved on when it
        fires early instead of made and cancelled per wait."""
        loop = asyncio.get_running_loop()
        misses = 0
        while True:
            directions = self.session.block_directions()
            if not directions:
                return  # libssh2 has data buffered: try again at once
            inbound = self._inbound = bool(directions & LIBSSH2_SESSION_BLOCK_INBOUND)
            if inbound and self._reader_loop is not loop:
                self._register(loop)
            ready = self._waiter = loop.create_future()
            outbound = directions & LIBSSH2_SESSION_BLOCK_OUTBOUND
            if outbound:
                loop.add_writer(self._fd, self._writable)
            self._silent = False
            if self.keepalive_interval > 0:
                self._wait_began = loop.time()
                due = self._wait_began + self.keepalive_interval
                timer = self._timer
                if timer is None or timer.when() > due:  # none yet, or set for a longer interval
                    if timer is not None:
                        timer.cancel()
                    self._timer = loop.call_at(due, self._tick)
            try:
                await ready
            finally:
                self._waiter = None
                if outbound:
                    loop.remove_writer(self._fd)
            if not self._silent:
                return
            # Nothing came from the node for a keepalive interval.
            misses += 1
            if misses > self.keepalive_count_max:
                self.abort()
                raise errors.SocketTimeout("no answer to keepalives")
            with contextlib.suppress(*_GONE):
                self.session.keepalive_send()

    def _register(self, loop: asyncio.AbstractEventLoop) -> None:
        self._unregister()
        loop.add_reader(self._fd, self._readable)
        self._reader_loop = loop
        # asyncio's own (selector) loop polls before it runs what its last turn scheduled, so
        # it may call the reader for data the woken task has read since: there the socket is
        # looked at before a wake. uvloop runs the scheduled callbacks first.
        self._recheck = not type(loop).__module__.startswith("uvloop")

    def _has_data(self) -> bool:
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass
        return True  # data, end of file or an error: libssh2 has something to find

    def _unregister(self) -> None:
        loop, self._reader_loop = self._reader_loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _readable(self) -> None:
        waiter = self._waiter
        if self._recheck and not self._has_data():
            return  # a stale report: what it was about has been read
        if waiter is None or not self._inbound:
            # Nobody waits to read (idle, between commands, or libssh2 waits to write): the
            # reader goes until a wait to read, so unread data cannot spin the loop.
            loop, self._reader_loop = self._reader_loop, None
            if loop is not None:
                loop.remove_reader(self._fd)
        elif not waiter.done():
            waiter.set_result(None)

    def _writable(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _tick(self) -> None:
        """The keepalive timer: ends the current wait once it has lasted an interval, else
        moves on to the moment it will have."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self.keepalive_interval <= 0:
            return  # not waiting: the next wait sets the timer again
        loop = waiter.get_loop()
        due = self._wait_began + self.keepalive_interval
        if loop.time() >= due:
            self._silent = True
            waiter.set_result(None)
        else:
            self._timer = loop.call_at(due, self._tick)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` repeated until libssh2 stops answering "would block"."""
        while True:
            result = fn(*args)
            if result == EAGAIN and isinstance(result, int):
                await self.wait()
                continue
            return result


def _key_line(blob: bytes) -> str:
    """``hostkeys.key_line`` of a host key in SSH wire format, without decoding the key: its
    type (the blob's first string) and the blob in base64."""
    size = int.from_bytes(blob[:4], "big")
    key_type = blob[4 : 4 + size].decode("ascii", "replace")
    return f"{key_type} {binascii.b2a_base64(blob, newline=False).decode()}"


_exported: dict[int, tuple[asyncssh.SSHKey, _KeyFiles]] = {}
#: Key types libssh2 logs in with (others, such as security keys, go to asyncssh).
_KEY_TYPES = frozenset(
    {"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"}
)


class _KeyFiles(NamedTuple):
    """A key as libssh2 reads it from memory: its private and its public key file."""

    private: bytes
    public: bytes


async def _key_bytes(credential: Any) -> _KeyFiles:
    """The credential's key for libssh2: opened once per process by ``connect.private_key``
    (asyncssh: any format, its KDF run once), handed over as an unencrypted OpenSSH key in
    memory. libssh2 reads the fleet's three key formats itself, but it would run an encrypted
    key's bcrypt KDF again for every connection. The public key goes with it: without one,
    libssh2 works it out from the private key at every login."""
    key = await private_key(credential)
    if key.get_algorithm() not in _KEY_TYPES:
        raise UseAsyncssh(f"libssh2 here takes no {key.get_algorithm()} keys")
    held = _exported.get(id(key))
    if held is None or held[0] is not key:
        if len(_exported) >= 256:
            _exported.clear()
        files = _KeyFiles(key.export_private_key("openssh"), key.export_public_key("openssh"))
        held = _exported[id(key)] = (key, files)
    return held[1]


class _Socket(socket.socket):
    """A socket whose descriptor closes quietly once nothing holds it (the session does until
    libssh2 freed it; see ``Libssh2Connection.abort``)."""

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()


def _family(address: str) -> int:
    """The address family of an IP address; ``ValueError`` for a name. A dotted IPv4 address
    in its canonical form is told by ``inet_pton`` (C); anything else by ``ipaddress``, as
    before (which refuses, say, leading zeros that a resolver would read as octal)."""
    with contextlib.suppress(OSError):
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address)) == address:
            return socket.AF_INET
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


async def _socket(address: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        targets = [(_family(address), (address, port))]
    except ValueError:
        infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        targets = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
    failure: OSError | None = None
    for family, sockaddr in targets:
        sock = _Socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
        except BaseException:
            sock.close()
            raise
    assert failure is not None
    raise failure


async def open_connection(
    *, address: str, port: int, credential: Any, check: HostKeyCheck, connect_timeout: float
) -> Libssh2Connection:
    """A logged-in libssh2 connection whose host key passed ``check``; ``TransportError``
    otherwise, with the asyncssh client's reasons and messages. The host key is compared with
    the pin before any credential is sent."""
    where = f"{address}:{port}"
    await check.known_hosts()  # reads the pin; raises when strict has nothing to trust
    pinned = check.pinned.public_key if check.pinned is not None else None
    key = None
    if credential.auth_type == "private_key" and credential.private_key:
        key = await _key_bytes(credential)
    conn: Libssh2Connection | None = None
    stage = "connect"
    try:
        async with asyncio.timeout(connect_timeout):
            sock = await _socket(address, port)
            session = Session()
            # ~60 KB of the new session's ~80 KB are zeros a pooled session never touches.
            if _native() is not None:  # the layout ``_pointer`` reads is the known one
                release_zero_pages(_pointer(session))
            session.set_blocking(False)
            session.method_pref(LIBSSH2_METHOD_KEX, _kex())
            session.method_pref(LIBSSH2_METHOD_CRYPT_CS, _ciphers())
            session.method_pref(LIBSSH2_METHOD_CRYPT_SC, _ciphers())
            session.method_pref(LIBSSH2_METHOD_HOSTKEY, _host_key_algs(pinned))
            conn = Libssh2Connection(session, sock, address, port)
            stage = "handshake"
            await conn.call(session.handshake, sock)
            conn._host_key_blob = bytes(session.hostkey()[0])
            shown = conn._host_key_blob
            if check.policy != "off" and pinned is not None and pinned != _key_line(shown):
                raise check.rejected()
            stage = "login"
            await _login(conn, credential, key, where)
    except (TransportError, UseAsyncssh):
        if conn is not None:
            conn.abort()
        raise
    except BaseException as exc:
        if conn is not None:
            conn.abort()
        if isinstance(exc, Exception):
            raise _failure(exc, stage, conn, where, address, connect_timeout) from None
        raise
    # libssh2 sends a keepalive only when asked (``wait``) and at most once a second.
    session.keepalive_config(True, 1)
    try:
        if check.wants_key():
            await check.accept(conn.get_server_host_key())
    except BaseException:
        conn.abort()
        raise
    return conn


async def _login(
    conn: Libssh2Connection, credential: Any, key: _KeyFiles | None, where: str
) -> None:
    session, user = conn.session, credential.username
    denied = TransportError(
        "auth_failed",
        f"authentication failed for user {user} on {where} (credential {credential.name})",
    )
    if key is None and not credential.password:
        raise denied
    if key is not None:
        try:
            await conn.call(
                session.userauth_publickey_frommemory, user, key.private, "", key.public
            )
            return
        except _AUTH_FAILED:
            if not credential.password:
                raise denied from None
        # As asyncssh does with a key and a password: the password next.
    try:
        await conn.call(session.userauth_password, user, credential.password)
        return
    except _AUTH_FAILED:
        pass
    # asyncssh answers a keyboard-interactive prompt with the password, libssh2 here does not:
    # a node that takes passwords only that way is logged in to with asyncssh.
    methods = await _methods(conn, user)
    if methods is not None and "password" not in methods and "keyboard-interactive" in methods:
        raise UseAsyncssh("the node takes passwords only through keyboard-interactive")
    raise denied


async def _methods(conn: Libssh2Connection, user: str) -> list[str] | None:
    """The login methods the node offers ``user`` (None when it does not say)."""
    while True:
        methods = conn.session.userauth_list(user)
        if methods is not None:
            return [str(method) for method in methods]
        if conn.session.last_errno() != EAGAIN:
            return None
        await conn.wait()


def _failure(
    exc: Exception, stage: str, conn: Libssh2Connection | None, where: str, address: str,
    connect_timeout: float,
) -> TransportError:  # fmt: skip
    """The node reason of a failed login, worded as the asyncssh client words it."""
    if isinstance(exc, TimeoutError):
        return TransportError(
            "unreachable", f"connection to {where} timed out after {connect_timeout:g} s"
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("unreachable", f"connection refused by {where}")
    if isinstance(exc, socket.gaierror):
        return TransportError("unreachable", f"cannot resolve {address}: {exc.strerror}")
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError | ConnectionResetError):
        return TransportError("unreachable", f"cannot connect to {where}: {exc.strerror or exc}")
    detail = _detail(conn, exc)
    if stage == "handshake" and isinstance(
        exc, errors.KexFailureError | errors.KeyExchangeError | errors.SessionHandshakeError
    ):
        return TransportError("unreachable", f"key exchange with {where} failed: {detail}")
    return TransportError("unreachable", f"{where} closed the connection during login: {detail}")


def _detail(conn: Libssh2Connection | None, exc: Exception) -> str:
    message = ""
    if conn is not None:
        with contextlib.suppress(Exception):
            message = conn.session.last_error()
    return message or str(exc) or type(exc).__name__


# --- exit signals ---------------------------------------------------------------------------
#
# ssh2-python's ``Channel.get_exit_signal`` never returns the signal (1.2.0: it passes libssh2 a
# null length pointer and then reads that length), and libssh2 reports an exit status of 0 when
# none came: a command killed by a signal would pass for a success. The signal is read from
# the libssh2 the extension loaded, through ctypes, with the channel and session pointers that
# ssh2-python's objects hold right after their object header (``cdef class Channel: cdef
# LIBSSH2_CHANNEL *_channel``, ``cdef class Session: cdef LIBSSH2_SESSION *_session``). The
# layout is checked by the objects' sizes; another layout makes ``fallback`` send every
# connection through asyncssh instead.


@functools.cache
def _native() -> Any:
    """The loaded libssh2 (ctypes), or None when it or the objects' layout is not the known one."""
    from ssh2.channel import Channel

    header = object.__basicsize__
    if Channel.__basicsize__ != header + 2 * ctypes.sizeof(ctypes.c_void_p):
        return None
    if Session.__basicsize__ != header + 4 * ctypes.sizeof(ctypes.c_void_p):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libssh2" in line.rsplit("/", 1)[-1]}
        (path,) = paths
        lib = ctypes.CDLL(path)
    except (OSError, ValueError):
        return None
    get = lib.libssh2_channel_get_exit_signal
    get.restype = ctypes.c_int
    get.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t),
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    lib.libssh2_free.restype = None
    lib.libssh2_free.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


def _pointer(obj: Any) -> int | None:
    return ctypes.c_void_p.from_address(id(obj) + object.__basicsize__).value


def _exit_signal(chan: Any, session: Session) -> str | None:
    """The name of the signal that killed the command (``TERM``), or None."""
    lib = _native()
    channel, owner = _pointer(chan), _pointer(session)
    if lib is None or not channel or not owner:
        return None
    name, length = ctypes.c_void_p(), ctypes.c_size_t()
    if lib.libssh2_channel_get_exit_signal(
        channel, ctypes.byref(name), ctypes.byref(length), None, None, None, None
    ):
        return None
    if not name.value:
        return None
    try:
        return ctypes.string_at(name.value, length.value).decode(errors="replace") or None
    finally:
        lib.libssh2_free(owner, name.value)


# --- running one command ------------------------------------------------------------------


async def open_channel(
    conn: Any, command: str, *, pty: bool, env: dict[str, str] | None
) -> tuple[Any, bool]:
    """The started command's channel on ``conn`` (an ``SshConnection`` holding a
    ``Libssh2Connection``), and whether a dead pooled connection had to be replaced first."""
    try:
        return await _start(conn.raw, command, pty, env), False
    except _GONE as exc:
        conn.raw.abort()
        if not conn.reused:
            raise _closed(conn, exc) from None
    # A pooled connection that died while idle: nothing ran yet, so a new one is safe.
    await conn.replace()
    if not isinstance(conn.raw, Libssh2Connection):
        raise UseAsyncssh("its replacement was opened with asyncssh")
    try:
        return await _start(conn.raw, command, pty, env), True
    except _GONE as exc:
        conn.raw.abort()
        raise _closed(conn, exc) from None


async def _start(
    raw: Libssh2Connection, command: str, pty: bool, env: dict[str, str] | None
) -> Any:
    # Closed here, not peeked at: a pooled connection was peeked at as it was taken, a new one
    # is new, and one the node closed since fails this call with ``_GONE`` all the same.
    if raw._closed:
        raise errors.SocketDisconnectError("closed")
    chan = await raw.call(raw.session.open_session)
    if pty:
        await raw.call(chan.pty, "xterm")
    for name, value in (env or {}).items():
        # Like asyncssh, a variable the node refuses (not in its AcceptEnv) is left out.
        with contextlib.suppress(errors.ChannelRequestDenied, errors.ChannelFailure):
            await raw.call(chan.setenv, name, value)
    await raw.call(chan.execute, command)
    return chan


async def run_channel(
    conn: Any,
    chan: Any,
    *,
    stdin: str | None,
    on_stdout: Callable[[str], Any] | None,
    on_stderr: Callable[[str], Any] | None,
    timeout: float | None,
) -> RunResult:
    raw: Libssh2Connection = conn.raw
    try:
        async with asyncio.timeout(timeout):
            await _pump(raw, chan, stdin, on_stdout, on_stderr)
            await raw.call(chan.close)
            await raw.call(chan.wait_closed)
    except TimeoutError:
        await _kill(conn, raw, chan)
        raise TransportError("timeout", f"timed out after {timeout:g} s") from None
    except _GONE:
        raise _lost(conn) from None
    except BaseException:
        await _kill(conn, raw, chan)
        raise
    signal = _exit_signal(chan, raw.session)
    if signal:
        return RunResult(exit_code=None, signal=signal)
    return RunResult(exit_code=chan.get_exit_status())


async def _pump(
    raw: Libssh2Connection,
    chan: Any,
    stdin: str | None,
    on_stdout: Callable[[str], Any] | None,
    on_stderr: Callable[[str], Any] | None,
) -> None:
    """Sends stdin and then end of file, and hands output to the callbacks as it arrives (an
    awaitable callback's outcome is awaited before more is read), until the node's end of
    file."""
    data = memoryview(stdin.encode()) if stdin else memoryview(b"")
    sent, eof_sent = 0, False
    streams = [
        (chan.read, on_stdout, codecs.getincrementaldecoder("utf-8")("replace")),
        (chan.read_stderr, on_stderr, codecs.getincrementaldecoder("utf-8")("replace")),
    ]
    while True:
        moved = False
        if not eof_sent:
            try:
                if sent < len(data):
                    # ssh2-python loops over libssh2's writes: it may report bytes taken
                    # beside an EAGAIN that stopped it. They are sent; writing them again
                    # duplicated them on the node's stdin.
                    _, written = chan.write(bytes(data[sent : sent + _CHUNK]))
                    if written > 0:
                        sent += written
                        moved = True
                elif chan.send_eof() != EAGAIN:
                    eof_sent = moved = True
            except _GONE:
                # The command closed its stdin (or exited): the rest is not wanted.
                eof_sent = moved = True
        # End of file seen before draining both streams: everything the node sent is read.
        ended = chan.eof()
        for read, callback, decoder in streams:
            while True:
                size, piece = read(_CHUNK)
                if size == EAGAIN or size <= 0:
                    break
                moved = True
                if callback is not None:
                    await _deliver(callback, decoder.decode(piece))
        if ended:
            for _, callback, decoder in streams:
                if callback is not None:
                    await _deliver(callback, decoder.decode(b"", final=True))
            return
        if not moved and not chan.eof():
            # (A read may have taken in the end of file: then drain once more, not wait.)
            await raw.wait()


async def _deliver(callback: Callable[[str], Any], text: str) -> None:
    if text:
        outcome = callback(text)
        if asyncio.iscoroutine(outcome):
            await outcome


def _closed(conn: Any, exc: BaseException) -> TransportError:
    return TransportError(
        "connection_lost", f"the connection to {conn.node.name} closed: {_detail(conn.raw, exc)}"
    )  # type: ignore[arg-type]


def _lost(conn: Any) -> TransportError:
    conn.dirty = True
    conn.raw.abort()
    return TransportError(
        "connection_lost", f"the connection to {conn.node.name} was lost during the command"
    )


async def _kill(conn: Any, raw: Libssh2Connection, chan: Any) -> None:
    """Stops the remote command: SIGTERM, then close the channel; never waits on a dead link."""
    if raw.is_closed():
        return
    try:
        async with asyncio.timeout(_CLOSE_GRACE):
            with contextlib.suppress(*_GONE, errors.ChannelRequestDenied):
                await raw.call(chan.signal, "TERM")
            await raw.call(chan.close)
            await raw.call(chan.wait_closed)
    except Exception:
        conn.dirty = True
    except asyncio.CancelledError:
        conn.dirty = True
        raise
