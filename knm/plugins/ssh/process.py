"""Running one command on a checked-out connection: stdin, streamed output, exit, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncssh

from knm.core.transport import RunResult, TransportError

LOST = (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError, ConnectionError)
#: Seconds to wait for a killed command's channel to close before giving up on the connection.
_CLOSE_GRACE = 3.0


class SshConnection:
    """A connection checked out to one node for the length of a ``session``."""

    def __init__(
        self,
        raw: asyncssh.SSHClientConnection,
        *,
        node: Any,
        reused: bool,
        reconnect: Callable[[], Any],
        pool_key: Any = None,
    ) -> None:
        self.raw = raw
        self.node = node
        self.reused = reused
        self.pool_key = pool_key
        #: Set when a killed command's channel did not close: never pool this connection.
        self.dirty = False
        #: The session's place in the transport's start ramp, until its first command runs.
        self.start: Any = None
        self._reconnect = reconnect

    async def replace(self) -> None:
        """Swaps a pooled connection found dead for a new one (before any command ran)."""
        with contextlib.suppress(Exception):
            self.raw.abort()
        self.raw = await self._reconnect()
        self.reused = False


class _Command(asyncssh.SSHClientSession[str]):
    """One command's channel, handled by asyncssh's callbacks: output goes to the caller's
    callbacks as it arrives, with no stream readers, reader tasks or process object between
    (``create_process`` and three pumping tasks cost ~0.3 ms more CPU per command, a third of
    what a command on a pooled connection costs in a bare loop). Pieces that arrive in one pass
    of the event loop are passed on together, as a stream reader would have returned them."""

    def __init__(
        self, on_stdout: Callable[[str], Any] | None, on_stderr: Callable[[str], Any] | None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._callbacks = {None: on_stdout, asyncssh.EXTENDED_DATA_STDERR: on_stderr}
        self._pending: dict[int | None, list[str]] = {}
        self._flush_soon: asyncio.Handle | None = None
        #: The chain of awaitable callbacks' outcomes, in order (reading pauses meanwhile).
        self._awaiting: asyncio.Future[None] | None = None
        self._chan: asyncssh.SSHClientChannel[str] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        #: Done when the channel closed, or failed with the first error of a callback.
        self.done: asyncio.Future[None] = self._loop.create_future()
        self.done.add_done_callback(_retrieve)

    def connection_made(self, chan: asyncssh.SSHClientChannel[str]) -> None:  # type: ignore[override]
        self._chan = chan

    def data_received(self, data: str, datatype: int | None) -> None:  # type: ignore[override]
        if self._callbacks.get(datatype) is None:
            return
        self._pending.setdefault(datatype, []).append(data)
        if self._flush_soon is None:
            self._flush_soon = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = None
        pending, self._pending = self._pending, {}
        for datatype, pieces in pending.items():
            try:
                outcome = self._callbacks[datatype]("".join(pieces))  # type: ignore[misc]
            except Exception as exc:
                self._fail(exc)
                return
            if asyncio.iscoroutine(outcome):
                self._await(outcome)

    def _fail(self, exc: BaseException) -> None:
        """A callback failed: the command is stopped (``run_process`` kills it) and the error
        raised to the caller, as when a reading task's callback raised."""
        if not self.done.done():
            self.done.set_exception(exc)

    def _await(self, outcome: Any) -> None:
        """Awaits a callback's coroutine after the ones before it; no more output is read
        until it is done, as when each piece was read by a task that awaited it."""
        before = self._awaiting
        if self._chan is not None:
            self._chan.pause_reading()

        async def after() -> None:
            try:
                if before is not None:
                    await before  # never raises: a failure is reported through ``done``
                await outcome
            except Exception as exc:
                self._fail(exc)
                return
            if self._awaiting is job and self._chan is not None:
                self._chan.resume_reading()

        job = self._awaiting = asyncio.ensure_future(after())

    def eof_received(self) -> bool:
        return True  # stdin stays open until it is all sent; the node closes after exiting

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(  # type: ignore[override]
        self, signal: str, core_dumped: bool, msg: str, lang: str
    ) -> None:
        self.exit_signal = signal

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush()
        self._writable.set()
        if self._awaiting is not None:
            # Done once the callbacks' coroutines ran too.
            self._awaiting.add_done_callback(lambda _: self._closed())
        else:
            self._closed()

    def _closed(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    async def feed(self, stdin: str | None) -> None:
        """Sends ``stdin`` (if any), then closes it."""
        chan = self._chan
        if chan is None:
            return
        with contextlib.suppress(*LOST, OSError):
            if stdin:
                chan.write(stdin)
                await self._writable.wait()
            chan.write_eof()

    async def finish(self) -> None:
        """Returns once the channel closed and every callback's coroutine ran; raises a
        callback's error."""
        await asyncio.shield(self.done)

    def abandon(self) -> None:
        """The command was stopped: its callbacks' pending coroutines are cancelled."""
        if self._awaiting is not None:
            self._awaiting.cancel()


async def open_process(
    conn: SshConnection,
    command: str,
    *,
    pty: bool,
    env: dict[str, str] | None,
    on_stdout: Callable[[str], Any] | None = None,
    on_stderr: Callable[[str], Any] | None = None,
) -> tuple[asyncssh.SSHClientChannel[str], _Command, bool]:
    """The started command's channel and session, and whether a dead pooled connection had to
    be replaced first."""
    options: dict[str, Any] = {
        "encoding": "utf-8", "errors": "replace", "env": env or {},
        "term_type": "xterm" if pty else None,
    }  # fmt: skip

    def command_session() -> _Command:
        return _Command(on_stdout, on_stderr)

    try:
        return (*await conn.raw.create_session(command_session, command, **options), False)
    except (asyncssh.ChannelOpenError, *LOST) as exc:
        if not conn.reused:
            raise _closed(conn, exc) from None
    # A pooled connection that died while idle: nothing ran yet, so a new one is safe.
    await conn.replace()
    try:
        return (*await conn.raw.create_session(command_session, command, **options), True)
    except (asyncssh.ChannelOpenError, *LOST) as exc:
        raise _closed(conn, exc) from None


async def run_process(
    conn: SshConnection,
    chan: asyncssh.SSHClientChannel[str],
    session: _Command,
    *,
    stdin: str | None,
    timeout: float | None,
) -> RunResult:
    try:
        async with asyncio.timeout(timeout):
            await session.feed(stdin)
            await session.finish()
    except TimeoutError:
        session.abandon()
        await _kill(conn, chan)
        raise TransportError("timeout", f"timed out after {timeout:g} s") from None
    except LOST:
        raise _lost(conn) from None
    except BaseException:
        session.abandon()
        await _kill(conn, chan)
        raise
    if session.exit_signal is not None:
        return RunResult(exit_code=None, signal=session.exit_signal)
    if session.exit_status is None:
        raise _lost(conn)
    return RunResult(exit_code=session.exit_status)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A failed callback whose command timed out first must not log "never retrieved".
    if not future.cancelled():
        future.exception()


def _closed(conn: SshConnection, exc: BaseException) -> TransportError:
    return TransportError("connection_lost", f"the connection to {conn.node.name} closed: {exc}")


def _lost(conn: SshConnection) -> TransportError:
    conn.dirty = True
    return TransportError(
        "connection_lost", f"the connection to {conn.node.name} was lost during the command"
    )


async def _kill(conn: SshConnection, chan: asyncssh.SSHClientChannel[str]) -> None:
    """Stops the remote command: SIGTERM, then close the channel; never waits on a dead link."""
    with contextlib.suppress(Exception):
        chan.send_signal("TERM")
    with contextlib.suppress(Exception):
        chan.close()
    if conn.raw.is_closed():
        return
    try:
        await asyncio.wait_for(chan.wait_closed(), _CLOSE_GRACE)
    except Exception:
        conn.dirty = True
    except asyncio.CancelledError:
        conn.dirty = True
        raise
