"""The SSH transport: the ssh plugin serves it through ``knm_transports`` (``knm.core.transport``
says the contract). One object per process: its session limiter and its connection pool are
shared by every task and every kind.

``session(ctx, node, credential, *, bastion=None)`` — ``ctx`` is the task's ``TaskContext``
(its ``knm``, ``task_id`` and cluster name are used); ``node`` a resolved node; ``credential`` a
``DecryptedCredential``; ``bastion`` the cluster's ``Bastion`` or None. It waits for one of the
``max_concurrent`` session slots (shared fairly between tasks), then yields an ``SshConnection``
— a pooled one when an idle connection to the same (address, port, user, credential) is alive,
else a new one, its host key checked against the ``host_key_policy``. Raises ``TransportError``
(``unreachable``, ``auth_failed``, ``host_key_changed``, ``host_key_unknown``).

``run(conn, command, *, stdin=None, on_stdout=None, on_stderr=None, timeout=None, pty=False,
env=None) -> RunResult(exit_code, signal)`` runs one command: ``stdin`` (text) is sent and then
closed — stdin is always closed, so a command reading it never hangs; output is passed to the
callbacks as it arrives (decoded UTF-8 text, in pieces of any size); ``pty`` asks for a
terminal (stdout and stderr merge, and the remote side gets SIGHUP when the channel closes).
When cancelled, or when ``timeout`` passes (``TransportError("timeout")``), the remote command
is sent SIGTERM and its channel closed. A connection dropping mid-command raises
``TransportError("connection_lost")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pwd
import resource
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import asyncssh
import msgspec

from knm.core.transport import HostKeys, RunResult, TransportError
from knm.plugins.ssh import known_hosts
from knm.plugins.ssh.connect import open_connection, secret_digest
from knm.plugins.ssh.hostkeys import BASTION, HostKeyCheck, PinCache
from knm.plugins.ssh.limiter import FairLimiter, StartRamp
from knm.plugins.ssh.pool import ConnectionPool, PoolKey
from knm.plugins.ssh.process import SshConnection, open_process, run_process

if TYPE_CHECKING:
    from knm.core.state import Knm


def _libssh2() -> Any:
    """``knm.plugins.ssh.libssh2``, imported the first time the settings ask for it (ssh2-python
    stays out of a process that never uses it); None when ssh2-python is not installed."""
    try:
        from knm.plugins.ssh import libssh2
    except ImportError:
        return None
    return libssh2


def _native(raw: Any) -> bool:
    """Whether ``raw`` is a libssh2 connection (none exists before the module is imported)."""
    module = sys.modules.get("knm.plugins.ssh.libssh2")
    return module is not None and isinstance(raw, module.Libssh2Connection)


__all__ = ["TRANSPORT", "SshConnection", "SshTransport"]

log = logging.getLogger("knm.ssh")
_CLOSE_GRACE = 3.0
#: Seconds between the reaper's scans of every idle connection (it expires the due ones every
#: second).
_SWEEP_EVERY = 30


class TransportStats(msgspec.Struct):
    """Counters, for tests and introspection."""

    connects: int = 0
    reuses: int = 0
    dead_replaced: int = 0
    bastion_connects: int = 0


class SshTransport:
    name = "ssh"
    kind = "ssh"

    def __init__(self) -> None:
        self.limiter = FairLimiter(50)
        self.ramp = StartRamp()
        self.stats = TransportStats()
        self.pool = ConnectionPool()
        self._bastions: dict[tuple[str, str], Any] = {}
        self._bastion_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._owners: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._next_owner = 0
        #: Owners (apps) whose lifespan is running: only their connections go back to the pool.
        self._live: set[int] = set()

    # --- lifecycle ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, knm: Knm) -> AsyncIterator[None]:
        """Entered with each app (``knm_lifespan``); on exit, closes that app's connections.

        Each app expires its own idle connections from its own event loop. The limiter is
        shared by every app of the process, which must therefore share one event loop."""
        raise_open_files_limit()
        name_local_user()
        owner = self._owner(knm)
        self._live.add(owner)
        reaper = asyncio.create_task(self._reap_idle(owner), name="knm-ssh-pool-reaper")
        try:
            yield
        finally:
            self._live.discard(owner)
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reaper
            await self.close_owner(owner)

    def _owner(self, knm: Knm) -> int:
        # Pool keys carry the app: two apps in one process never share a connection.
        owner = self._owners.get(knm)
        if owner is None:
            self._next_owner += 1
            owner = self._owners[knm] = self._next_owner
        return owner

    async def close_owner(self, owner: int) -> None:
        self.pool.close_owner(owner)
        for key in [k for k in self._bastions if k[1].startswith(f"{owner}|")]:
            await self._close_bastion(key)

    def idle_count(self) -> int:
        return len(self.pool)

    async def _reap_idle(self, owner: int) -> None:
        for tick in itertools.count(1):
            await asyncio.sleep(1.0)
            if tick % _SWEEP_EVERY:
                self.pool.expire_due(owner)
            else:
                # Now and then, every idle connection: the ones the node closed go too.
                self.pool.expire(owner)

    # --- sessions -------------------------------------------------------------------------

    async def concurrency(self, knm: Knm) -> int:
        """The SSH settings' ``max_concurrent``: sessions open at once, every task together."""
        return int((await knm.features.settings("ssh")).max_concurrent)

    async def host_keys(self, ctx: Any, nodes: Any, jump: Any = None) -> HostKeys:
        """The keys an external ssh client (Ansible's) must trust, by the host key policy."""
        return await known_hosts.host_keys(ctx.knm, ctx.task.cluster_name, nodes, jump)

    @contextlib.asynccontextmanager
    async def session(
        self, ctx: Any, node: Any, credential: Any, *, bastion: Any = None
    ) -> AsyncIterator[SshConnection]:
        knm = ctx.knm
        settings = await knm.features.settings("ssh")
        self.limiter.resize(settings.max_concurrent)
        async with self.limiter.slot(ctx.task_id):
            # One place in the start ramp from before the handshake (or the reuse) until the
            # command runs (``run`` releases it): a node never queues twice.
            start = await self.ramp.acquire()
            try:
                conn = await self._checkout(ctx, settings, node, credential, bastion)
            except BaseException:
                start.release(completed=False)
                raise
            conn.start = start
            try:
                yield conn
            finally:
                start.release(completed=False)  # a no-op once ``run`` released it
                self._checkin(conn, settings, pooled=bastion is None)

    async def _checkout(
        self, ctx: Any, settings: Any, node: Any, credential: Any, bastion: Any
    ) -> SshConnection:
        knm = ctx.knm
        cluster = ctx.task.cluster_name
        port = node.port or credential.port or 22
        pins = self._pins(ctx, cluster)

        def check() -> HostKeyCheck:
            return HostKeyCheck(knm.pool, settings, cluster, node.name, node.address, port, pins)

        async def connect_asyncssh() -> asyncssh.SSHClientConnection:
            tunnel, via = None, ""
            if bastion is not None:
                tunnel = await self._bastion(ctx, settings, bastion, credential)
                via = f" through bastion {bastion.address}:{bastion.port}"
            raw = await open_connection(
                address=node.address, port=port, credential=credential, check=check(),
                connect_timeout=settings.connect_timeout, tunnel=tunnel, via=via,
                cache=getattr(ctx, "cache", None),
            )  # fmt: skip
            self.stats.connects += 1
            return raw

        async def connect_libssh2() -> Any:
            libssh2 = _libssh2()
            try:
                raw = await libssh2.open_connection(
                    address=node.address, port=port, credential=credential, check=check(),
                    connect_timeout=settings.connect_timeout,
                )  # fmt: skip
            except libssh2.UseAsyncssh as why:
                log.debug("%s: the asyncssh client opens this connection: %s", node.name, why)
                return await connect_asyncssh()
            self.stats.connects += 1
            return raw

        connect: Callable[[], Any] = connect_asyncssh
        client = "asyncssh"
        if settings.client == "libssh2":
            libssh2 = _libssh2()
            why = (
                "ssh2-python is not installed"
                if libssh2 is None
                else libssh2.fallback(settings, cluster, bastion)
            )
            if why is None:
                connect, client = connect_libssh2, "libssh2"
            else:
                log.debug("%s: the asyncssh client opens this connection: %s", node.name, why)
        key = PoolKey(
            self._owner(knm), node.address, port, credential.username, credential.id,
            self._secret_digest(ctx, credential), client,
        )  # fmt: skip

        if bastion is None:
            while (idle := self.pool.take(key)) is not None:
                if idle.is_closed():
                    self.stats.dead_replaced += 1
                    continue
                self.pool.wake(idle)
                try:
                    usable = await check().matches(idle.get_server_host_key())
                except BaseException:
                    idle.close()
                    raise
                if not usable:
                    idle.close()
                    continue
                self.stats.reuses += 1
                return SshConnection(idle, node=node, reused=True, reconnect=connect, pool_key=key)
        return SshConnection(
            await connect(), node=node, reused=False, reconnect=connect, pool_key=key
        )

    @staticmethod
    def _secret_digest(ctx: Any, credential: Any) -> str:
        """``secret_digest`` of the task's credential, computed once per task, not per node."""
        cache = getattr(ctx, "cache", None)
        if cache is None:
            return secret_digest(credential)
        key = ("ssh.secret", id(credential))
        held = cache.get(key)
        if held is None or held[0] is not credential:
            held = cache[key] = (credential, secret_digest(credential))
        return held[1]  # type: ignore[no-any-return]

    @staticmethod
    def _pins(ctx: Any, cluster: str) -> PinCache | None:
        """The task's pin cache of ``cluster``, kept on its context (gone with the task)."""
        cache = getattr(ctx, "cache", None)
        if cache is None:
            return None
        key = ("ssh.pins", cluster)
        pins = cache.get(key)
        if pins is None:
            pins = cache[key] = PinCache(ctx.knm.pool, cluster)
        return pins  # type: ignore[no-any-return]

    def _checkin(self, conn: SshConnection, settings: Any, *, pooled: bool) -> None:
        raw, key = conn.raw, conn.pool_key
        size = settings.connection_pool_size
        live = key is not None and key.owner in self._live
        if not pooled or not live or conn.dirty or raw.is_closed() or size <= 0:
            raw.close()
            return
        self.pool.put(key, raw, size, float(settings.pool_idle_ttl))

    # --- bastions -------------------------------------------------------------------------

    async def _bastion(
        self, ctx: Any, settings: Any, bastion: Any, credential: Any
    ) -> asyncssh.SSHClientConnection:
        """The task's one connection to its cluster's bastion, opened on first use."""
        if bastion.credential_id is not None and bastion.credential_id != credential.id:
            from knm.core.credentials import load_credential

            credential = await load_credential(ctx.knm, bastion.credential_id)
            if getattr(ctx, "mask", None) is not None:
                ctx.mask.add(*credential.secret_values())
        owner = self._owner(ctx.knm)
        key = (ctx.task_id, f"{owner}|{bastion.address}|{bastion.port}|{credential.id}")
        lock = self._bastion_locks.setdefault(key, asyncio.Lock())
        async with lock:
            held = self._bastions.get(key)
            if isinstance(held, TransportError):
                raise TransportError(held.reason, held.message)
            if held is not None and not held.is_closed():
                return held
            check = HostKeyCheck(
                ctx.knm.pool, settings, ctx.task.cluster_name, BASTION, bastion.address,
                bastion.port,
            )  # fmt: skip
            try:
                conn = await open_connection(
                    address=bastion.address, port=bastion.port, credential=credential,
                    check=check, connect_timeout=settings.connect_timeout,
                )  # fmt: skip
            except TransportError as exc:
                failed = TransportError(exc.reason, f"bastion: {exc.message}")
                # Every other node of the task fails the same way, without 1,000 more tries.
                self._bastions[key] = failed
                raise failed from None
            self.stats.bastion_connects += 1
            self._bastions[key] = conn
            return conn

    async def release_task(self, task_id: str) -> None:
        """Closes the task's bastion connections; call once the task's work is over."""
        for key in [k for k in self._bastions if k[0] == task_id]:
            await self._close_bastion(key)

    async def _close_bastion(self, key: tuple[str, str]) -> None:
        held = self._bastions.pop(key, None)
        self._bastion_locks.pop(key, None)
        if held is not None and not isinstance(held, TransportError):
            held.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(held.wait_closed(), _CLOSE_GRACE)

    # --- running --------------------------------------------------------------------------

    async def run(
        self,
        conn: SshConnection,
        command: str,
        *,
        stdin: str | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        timeout: float | None = None,
        pty: bool = False,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        # The session's place in the start ramp ends once its first command runs; a second
        # command on the same session is not ramped.
        start, conn.start = conn.start, None
        native = _native(conn.raw)
        libssh2 = _libssh2() if native else None
        try:
            if native:
                try:
                    chan, replaced = await libssh2.open_channel(conn, command, pty=pty, env=env)
                except libssh2.UseAsyncssh:
                    native, replaced = False, True
                    chan, session, _ = await open_process(
                        conn, command, pty=pty, env=env, on_stdout=on_stdout, on_stderr=on_stderr
                    )
            else:
                chan, session, replaced = await open_process(
                    conn, command, pty=pty, env=env, on_stdout=on_stdout, on_stderr=on_stderr
                )
        except BaseException:
            if start is not None:
                start.release(completed=False)
            raise
        if start is not None:
            start.release(completed=True)
        if replaced:
            self.stats.dead_replaced += 1
        if native:
            return await libssh2.run_channel(
                conn, chan, stdin=stdin, on_stdout=on_stdout, on_stderr=on_stderr, timeout=timeout
            )
        return await run_process(conn, chan, session, stdin=stdin, timeout=timeout)


def name_local_user() -> None:
    """Sets ``LOGNAME`` to the process's user when no login variable names it (a service's
    environment often has none). asyncssh asks ``getpass.getuser()`` for every connection,
    which without them reads the password database each time (~4 % of knm's CPU samples in a
    1,000-node fan-out); with it, an environment lookup. The value is what ``getuser`` returns
    anyway, so nothing in the process or its children sees a different user."""
    if any(os.environ.get(name) for name in ("LOGNAME", "USER", "LNAME", "USERNAME")):
        return
    with contextlib.suppress(KeyError, OSError):
        os.environ["LOGNAME"] = pwd.getpwuid(os.getuid()).pw_name


def raise_open_files_limit() -> None:
    """Each connection is a file descriptor: lift the soft limit to the hard one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1_048_576)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


#: The process's transport, shared by every app and task.
TRANSPORT = SshTransport()
