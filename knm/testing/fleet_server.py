"""An asyncssh SSH server answering on many loopback addresses at once, for fan-out tests.

Real ``sshd`` (:mod:`knm.testing.sshfleet`) costs a few processes per connection; a 1,000
node benchmark on a 2-core machine needs something lighter.  This server is one Python
process (or ``--processes`` workers, each serving every n-th address) with one listener per
address, all on one port, that runs every exec request through ``/bin/sh -c`` as the
server's own user (root under tests: run harmless commands only), forwarding stdin (with
EOF), stdout, stderr and the exit status, and serves SFTP.

Command line (addresses: single addresses or inclusive ranges, comma-separated or
repeated; only 127.0.0.0/8 is accepted)::

    python -m knm.testing.fleet_server --addresses 127.0.1.1-127.0.4.250 --port 2222 \\
        --host-key host_key --authorized-keys authorized_keys --password secret

It prints ``ready`` on stdout once every listener is up, and exits on SIGTERM or SIGINT,
killing the commands still running.  From Python, :class:`FleetServer` does all of that::

    with FleetServer(tmp_path, nodes=20) as server:
        node = server.nodes[0]
        async with asyncssh.connect(
            node.address, port=node.port, username=server.username,
            password=server.password, known_hosts=None,
        ) as conn:
            ...
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hmac
import ipaddress
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncssh
import psutil

from knm.core.processes import process_gone, wait_until_gone
from knm.testing.sshfleet import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    FleetNode,
    FleetStartError,
    find_free_port,
    loopback_address,
    loopback_index,
)

READY_LINE = "ready"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# Client environment passed to commands: what stock sshd's AcceptEnv allows.
ACCEPTED_ENV_PREFIXES = ("LC_",)
ACCEPTED_ENV_NAMES = frozenset({"LANG"})
READ_CHUNK = 65536


def parse_addresses(specs: Sequence[str]) -> list[str]:
    """Expands ``127.0.1.1-127.0.4.250,127.0.9.9`` style specs, refusing non-loopback ones.

    Ranges skip addresses ending in .0 or .255 so that every node looks like a plain host.
    """
    addresses: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            first_text, _, last_text = part.partition("-")
            first = ipaddress.IPv4Address(first_text)
            last = ipaddress.IPv4Address(last_text) if last_text else first
            if first not in LOOPBACK or last not in LOOPBACK:
                raise ValueError(f"only 127.0.0.0/8 addresses are allowed, got {part}")
            if last < first:
                raise ValueError(f"empty address range {part}")
            for value in range(int(first), int(last) + 1):
                address = ipaddress.IPv4Address(value)
                if first != last and int(address) & 0xFF in (0, 255):
                    continue
                text = str(address)
                if text not in seen:
                    seen.add(text)
                    addresses.append(text)
    if not addresses:
        raise ValueError("no addresses given")
    return addresses


def load_authorized_keys(path: Path) -> frozenset[bytes]:
    """The public key blobs of an authorized_keys file (options in the file are not supported)."""
    blobs: set[bytes] = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            blobs.add(asyncssh.import_public_key(line).public_data)
    return frozenset(blobs)


@dataclass(frozen=True)
class AuthPolicy:
    # None: any user name is accepted.
    username: str | None
    # None: password authentication is off.
    password: str | None
    authorized_keys: frozenset[bytes]

    def user_ok(self, username: str) -> bool:
        return self.username is None or hmac.compare_digest(username, self.username)


class FleetSSHServer(asyncssh.SSHServer):
    """Authentication for one connection: a password or an authorized key."""

    def __init__(self, policy: AuthPolicy) -> None:
        self._policy = policy

    def begin_auth(self, username: str) -> bool:
        # True means "authentication is required" (False would let anyone in).
        return True

    def password_auth_supported(self) -> bool:
        return self._policy.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._policy.password
        if expected is None or not self._policy.user_ok(username):
            return False
        return hmac.compare_digest(password.encode(), expected.encode())

    def public_key_auth_supported(self) -> bool:
        return bool(self._policy.authorized_keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._policy.user_ok(username) and key.public_data in self._policy.authorized_keys


class CommandRunner:
    """Runs each session's command under ``/bin/sh -c`` and tracks it for shutdown."""

    def __init__(self) -> None:
        # Process group ids of running commands (each is its own session leader).
        self.running: set[int] = set()

    def kill_all(self) -> None:
        for pgid in list(self.running):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    async def handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        # A shell request (no command) gets a non-interactive shell reading from stdin.
        argv = ["/bin/sh", "-c", command] if command is not None else ["/bin/sh"]
        try:
            child = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment(process),
                # Its own process group, so that the whole pipeline can be killed when the
                # client goes away or the server stops.
                start_new_session=True,
            )
        except OSError as error:
            process.stderr.write(f"fleet server: cannot run command: {error}\n".encode())
            process.exit(127)
            return
        self.running.add(child.pid)
        feeder = asyncio.create_task(self._feed_stdin(process, child))
        finished = asyncio.create_task(self._finish(process, child))
        closed = asyncio.create_task(process.wait_closed())
        try:
            await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if child.returncode is None:
                # The client closed the channel (or the connection dropped) first.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
            for task in (feeder, finished, closed):
                task.cancel()
            await asyncio.gather(feeder, finished, closed, return_exceptions=True)
            with contextlib.suppress(ProcessLookupError):
                await child.wait()
            self.running.discard(child.pid)

    @staticmethod
    def _environment(process: asyncssh.SSHServerProcess[bytes]) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in process.env.items():
            key = name.decode() if isinstance(name, bytes) else str(name)
            if key in ACCEPTED_ENV_NAMES or key.startswith(ACCEPTED_ENV_PREFIXES):
                env[key] = value.decode() if isinstance(value, bytes) else str(value)
        peer = process.get_extra_info("peername") or ("", 0)
        local = process.get_extra_info("sockname") or ("", 0)
        # Like sshd, so that commands (and cleanup code) can tell which "node" they run on.
        env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} {local[0]} {local[1]}"
        username = process.get_extra_info("username")
        if username:
            env["SSH_USER"] = str(username)
        return env

    @staticmethod
    async def _feed_stdin(
        process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process
    ) -> None:
        assert child.stdin is not None
        try:
            while True:
                try:
                    data = await process.stdin.read(READ_CHUNK)
                except asyncssh.SignalReceived as received:
                    with contextlib.suppress(ProcessLookupError, ValueError, AttributeError):
                        os.killpg(child.pid, getattr(signal, f"SIG{received.signal}"))
                    continue
                except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                    continue
                if not data:
                    break
                child.stdin.write(data)
                await child.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
            # The command stopped reading: the rest of stdin is dropped, as with sshd.
            pass
        finally:
            # EOF from the client becomes EOF for the command.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                child.stdin.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncssh.SSHWriter[bytes]) -> None:
        while data := await reader.read(READ_CHUNK):
            writer.write(data)
            # Back-pressure: a slow client slows the command instead of growing memory.
            await writer.drain()

    async def _finish(
        self, process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process
    ) -> None:
        assert child.stdout is not None and child.stderr is not None
        await asyncio.gather(
            self._pump(child.stdout, process.stdout), self._pump(child.stderr, process.stderr)
        )
        status = await child.wait()
        if status >= 0:
            process.exit(status)
        else:
            try:
                name = signal.Signals(-status).name.removeprefix("SIG")
            except ValueError:
                name = str(-status)
            process.exit_with_signal(name)


def raise_nofile_limit() -> int:
    """Raises the soft open-files limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def _use_pidfd_child_watcher() -> None:
    # Python 3.11's default child watcher starts one thread per subprocess: 1,000 concurrent
    # commands would mean 1,000 threads.  3.12+ uses pidfds by default.
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    watcher = asyncio.PidfdChildWatcher()
    asyncio.set_child_watcher(watcher)
    watcher.attach_loop(asyncio.get_running_loop())


def _listening_socket(address: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class ListenError(Exception):
    pass


def _listen_all(addresses: Sequence[str], port: int, backlog: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    for address in addresses:
        try:
            sockets.append(_listening_socket(address, port, backlog))
        except OSError as error:
            for sock in sockets:
                sock.close()
            raise ListenError(f"cannot listen on {address}:{port}: {error}") from error
    return sockets


async def serve(args: argparse.Namespace, sockets: Sequence[socket.socket]) -> int:
    """Serves SSH on ``sockets`` (bound and listening) until SIGTERM or SIGINT."""
    _use_pidfd_child_watcher()
    authorized = (
        load_authorized_keys(Path(args.authorized_keys)) if args.authorized_keys else frozenset()
    )
    if args.password is None and not authorized:
        print("fleet server: give --password and/or --authorized-keys", file=sys.stderr)
        return 2
    policy = AuthPolicy(username=args.username, password=args.password, authorized_keys=authorized)
    runner = CommandRunner()
    sftp_root: str | None = args.sftp_root

    def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=sftp_root)

    # One options object for all listeners: building it per listener is measurable at 1,000.
    options = asyncssh.SSHServerConnectionOptions(
        server_host_keys=[asyncssh.read_private_key(args.host_key)],
        server_factory=lambda: FleetSSHServer(policy),
        process_factory=runner.handle,
        sftp_factory=sftp_factory if sftp_root else True,
        encoding=None,
        login_timeout=args.login_timeout,
        keepalive_interval=0,
    )
    acceptors = [await asyncssh.listen(sock=sock, options=options) for sock in sockets]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # A worker is told whose child it is: its parent may already be gone by now.
    parent = args.parent_pid or os.getppid()

    async def watch_parent() -> None:
        # A test run killed with SIGKILL cannot stop us: notice its death ourselves.
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        stop.set()

    watcher = asyncio.create_task(watch_parent()) if args.exit_with_parent else None
    if args.ready_fd is None:
        print(READY_LINE, flush=True)
    else:
        os.write(args.ready_fd, b"r")
        os.close(args.ready_fd)
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    for acceptor in acceptors:
        acceptor.close()
    runner.kill_all()
    # Closing 1,000 connections one by one gains nothing: the kernel closes them on exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m knm.testing.fleet_server",
        description="asyncssh server on many loopback addresses, for SSH fan-out tests",
    )
    parser.add_argument(
        "--addresses",
        action="append",
        required=True,
        help="address or inclusive range (127.0.1.1-127.0.4.250), comma-separated, repeatable",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", required=True, help="server private host key file")
    parser.add_argument("--authorized-keys", help="authorized_keys file for public key auth")
    parser.add_argument("--password", help="password accepted for password auth")
    parser.add_argument("--username", help="only this user name may log in (default: any)")
    parser.add_argument("--sftp-root", help="chroot directory of SFTP (default: whole system)")
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--login-timeout", type=float, default=60.0)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes, each serving every n-th address (default: 1)",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when the parent process dies (used by FleetServer)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.ready_fd = None
    args.parent_pid = None
    try:
        addresses = parse_addresses(args.addresses)
    except ValueError as error:
        print(f"fleet server: {error}", file=sys.stderr)
        return 2
    if args.processes < 1:
        print("fleet server: --processes must be at least 1", file=sys.stderr)
        return 2
    raise_nofile_limit()
    try:
        # Bound before any worker starts, so that a taken address fails the whole server.
        sockets = _listen_all(addresses, args.port, args.backlog)
    except ListenError as error:
        print(f"fleet server: {error}", file=sys.stderr)
        return 3
    processes = min(args.processes, len(sockets))
    if processes == 1:
        return asyncio.run(serve(args, sockets))
    return _serve_in_processes(args, sockets, processes)


def _serve_in_processes(
    args: argparse.Namespace, sockets: list[socket.socket], processes: int
) -> int:
    # A fleet of real nodes answers from one sshd per machine, in parallel; one Python process
    # answering for thousands of addresses is one core's worth of server, and each command it
    # spawns copies a descriptor table as large as all the connections it holds.  Workers
    # forked before any event loop exists each serve every n-th address.
    reader, writer = os.pipe()
    first = os.getpid()
    workers: list[psutil.Process] = []
    for index in range(processes):
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            mine = sockets[index::processes]
            for position, sock in enumerate(sockets):
                if position % processes != index:
                    sock.close()
            args.ready_fd = writer
            args.exit_with_parent = True
            args.parent_pid = first
            try:
                code = asyncio.run(serve(args, mine))
            except BaseException:
                traceback.print_exc()
                code = 1
            # Never back into the caller's frames: this is a forked copy of it.
            os._exit(code)
        workers.append(psutil.Process(pid))
    os.close(writer)
    for sock in sockets:
        sock.close()
    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    parent = os.getppid()
    ready = b""
    with os.fdopen(reader, "rb", buffering=0) as ready_pipe:
        # Each worker writes one byte when it is ready; end of file means one of them died.
        while len(ready) < processes:
            data = ready_pipe.read(processes - len(ready))
            if not data:
                break
            ready += data
    if len(ready) == processes:
        print(READY_LINE, flush=True)
        while True:
            received = signal.sigtimedwait(stop_signals, 1.0)
            if received is not None and received.si_signo != signal.SIGCHLD:
                break
            if any(process_gone(worker) for worker in workers):
                break
            if args.exit_with_parent and os.getppid() != parent:
                break
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.terminate()
    for worker in wait_until_gone(workers, timeout=10.0):
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
    # Zombies left are reaped with this process.
    sys.stdout.flush()
    return 0 if len(ready) == processes else 1


class FleetServer:
    """Starts the fleet server process on ``nodes`` loopback addresses, and stops it.

    Addresses start at ``first_address`` (127.0.1.1: away from :class:`SshFleet`'s
    127.0.0.x, although a different port would suffice).  Keys are generated in
    ``base_dir``; the client key is exposed as :attr:`private_key_pem`.  With ``processes``
    above one, that many workers share the addresses (every n-th each), closer to a fleet
    whose nodes answer in parallel.
    """

    def __init__(
        self,
        base_dir: Path | str,
        nodes: int = 20,
        *,
        first_address: str = "127.0.1.1",
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        sftp_root: Path | str | None = None,
        ready_timeout: float = 120.0,
        processes: int = 1,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"a fleet needs at least one node, got {nodes}")
        if processes < 1:
            raise ValueError(f"a fleet server needs at least one process, got {processes}")
        self.processes = processes
        start = loopback_index(first_address)
        self.addresses = [loopback_address(start + i) for i in range(nodes)]
        self.base_dir = Path(base_dir)
        self.username = username
        self.password = password
        self.sftp_root = Path(sftp_root) if sftp_root is not None else None
        self.ready_timeout = ready_timeout
        self.port = 0
        self.nodes: list[FleetNode] = []
        self.private_key_pem = ""
        self.host_key_public = ""
        self.dir = Path()
        self.log_path = Path()
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> FleetServer:
        if self._popen is not None:
            return self
        # The server also exits with its parent; this covers an interpreter that lives on.
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.dir = self.base_dir / f"fleet-server-{os.getpid()}-{time.monotonic_ns()}"
        self.dir.mkdir()
        host_key = asyncssh.generate_private_key("ssh-ed25519", comment="knm-fleet-server")
        host_key_path = self.dir / "host_key"
        host_key.write_private_key(host_key_path)
        self.host_key_public = host_key.export_public_key().decode().strip()
        client_key = asyncssh.generate_private_key(
            "ssh-ed25519", comment=f"{self.username}@knm-fleet-server"
        )
        self.private_key_pem = client_key.export_private_key().decode()
        authorized = self.dir / "authorized_keys"
        authorized.write_bytes(client_key.export_public_key())

        last_error = ""
        # Another process may take the port between find_free_port and our bind: retry.
        for attempt in range(3):
            self.port = find_free_port(self.addresses)
            self.log_path = self.dir / f"server-{attempt}.log"
            ready_path = self.dir / f"stdout-{attempt}"
            args = [
                sys.executable,
                "-m",
                "knm.testing.fleet_server",
                "--addresses",
                ",".join(self.addresses),
                "--port",
                str(self.port),
                "--host-key",
                str(host_key_path),
                "--authorized-keys",
                str(authorized),
                "--password",
                self.password,
                "--username",
                self.username,
                "--exit-with-parent",
                "--processes",
                str(self.processes),
            ]
            if self.sftp_root is not None:
                args += ["--sftp-root", str(self.sftp_root)]
            # Files rather than pipes: nobody has to keep reading them for the server to go on.
            with ready_path.open("wb") as out, self.log_path.open("wb") as err:
                self._popen = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=self.dir,
                    env=self._child_environment(),
                    start_new_session=True,
                )
            if self._wait_ready(ready_path):
                break
            last_error = self.log_path.read_text(errors="replace").strip()
            self._stop_process()
        else:
            raise FleetStartError(f"fleet server did not start: {last_error}")
        self.nodes = [
            FleetNode(f"node{i + 1}", address, self.port, self.host_key_public)
            for i, address in enumerate(self.addresses)
        ]

    @staticmethod
    def _child_environment() -> dict[str, str]:
        # The child must import knm from the same tree as we did, installed or not.
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        return env

    def _wait_ready(self, ready_path: Path) -> bool:
        assert self._popen is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if READY_LINE in ready_path.read_text(errors="replace").split():
                return True
            if self._popen.poll() is not None:
                return False
            time.sleep(0.05)
        raise FleetStartError(
            f"fleet server not ready after {self.ready_timeout}s: "
            f"{self.log_path.read_text(errors='replace').strip()}"
        )

    def _stop_process(self) -> None:
        popen, self._popen = self._popen, None
        if popen is None:
            return
        # Commands still running would survive a server killed with SIGKILL: note them now.
        try:
            descendants = psutil.Process(popen.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=10)
        for proc in descendants:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_until_gone(descendants, timeout=5.0)

    def stop(self) -> None:
        """Stops the server and every command it still runs; safe to call twice."""
        atexit.unregister(self.stop)
        self._stop_process()

    def __enter__(self) -> FleetServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
