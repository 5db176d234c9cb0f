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
_READ = 64 * 1024


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


async def open_process(
    conn: SshConnection, command: str, *, pty: bool, env: dict[str, str] | None
) -> tuple[asyncssh.SSHClientProcess[str], bool]:
    """The started command, and whether a dead pooled connection had to be replaced first."""
    options: dict[str, Any] = {
        "encoding": "utf-8", "errors": "replace", "env": env or {},
        "term_type": "xterm" if pty else None,
    }  # fmt: skip
    try:
        return await conn.raw.create_process(command, **options), False
    except (asyncssh.ChannelOpenError, *LOST) as exc:
        if not conn.reused:
            raise _closed(conn, exc) from None
    # A pooled connection that died while idle: nothing ran yet, so a new one is safe.
    await conn.replace()
    try:
        return await conn.raw.create_process(command, **options), True
    except (asyncssh.ChannelOpenError, *LOST) as exc:
        raise _closed(conn, exc) from None


async def run_process(
    conn: SshConnection,
    process: asyncssh.SSHClientProcess[str],
    *,
    stdin: str | None,
    on_stdout: Callable[[str], Any] | None,
    on_stderr: Callable[[str], Any] | None,
    timeout: float | None,
) -> RunResult:
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                _feed(process, stdin),
                _pump(process.stdout, on_stdout),
                _pump(process.stderr, on_stderr),
            )
            completed = await process.wait(check=False)
    except TimeoutError:
        await _kill(conn, process)
        raise TransportError("timeout", f"timed out after {timeout:g} s") from None
    except LOST:
        raise _lost(conn) from None
    except BaseException:
        await _kill(conn, process)
        raise
    if completed.exit_signal:
        return RunResult(exit_code=None, signal=str(completed.exit_signal[0]))
    if completed.exit_status is None:
        raise _lost(conn)
    return RunResult(exit_code=completed.exit_status)


def _closed(conn: SshConnection, exc: BaseException) -> TransportError:
    return TransportError("connection_lost", f"the connection to {conn.node.name} closed: {exc}")


def _lost(conn: SshConnection) -> TransportError:
    conn.dirty = True
    return TransportError(
        "connection_lost", f"the connection to {conn.node.name} was lost during the command"
    )


async def _feed(process: asyncssh.SSHClientProcess[str], stdin: str | None) -> None:
    if stdin:
        process.stdin.write(stdin)
        with contextlib.suppress(*LOST):
            await process.stdin.drain()
    with contextlib.suppress(*LOST, OSError):
        process.stdin.write_eof()


async def _pump(reader: asyncssh.SSHReader[str], callback: Callable[[str], Any] | None) -> None:
    while True:
        text = await reader.read(_READ)
        if not text:
            return
        if callback is not None:
            outcome = callback(text)
            if asyncio.iscoroutine(outcome):
                await outcome


async def _kill(conn: SshConnection, process: asyncssh.SSHClientProcess[str]) -> None:
    """Stops the remote command: SIGTERM, then close the channel; never waits on a dead link."""
    with contextlib.suppress(Exception):
        process.send_signal("TERM")
    with contextlib.suppress(Exception):
        process.close()
    if conn.raw.is_closed():
        return
    try:
        await asyncio.wait_for(process.wait_closed(), _CLOSE_GRACE)
    except Exception:
        conn.dirty = True
    except asyncio.CancelledError:
        conn.dirty = True
        raise
