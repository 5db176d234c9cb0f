"""A fleet of real OpenSSH ``sshd`` "nodes" on loopback addresses, for knm's tests.

Each node is one loopback address (127.0.0.2, 127.0.0.3, ...) of *this* machine, served by
a real ``/usr/sbin/sshd`` started by the fleet, all on one port.  Tests therefore exercise
knm's SSH code against the real server it meets in production, while every command runs
here: tests must only run harmless commands.

Usage (as root; ``apt-get install -y openssh-server sudo`` first)::

    from knm.testing.sshfleet import ssh_fleet

    with ssh_fleet(tmp_path, nodes=3) as fleet:
        node = fleet.nodes[0]
        async with asyncssh.connect(
            node.address, port=node.port, username=fleet.username,
            password=fleet.password, known_hosts=str(fleet.known_hosts_path),
        ) as conn:
            result = await conn.run("uname -n")

What the fleet sets up, and removes again on :meth:`SshFleet.stop`:

* host keys, an ``sshd_config`` and logs under a private directory in ``base_dir``; the
  authorized keys file under ``/run/knm-sshfleet/`` (sshd reads it *as the test user*, who
  cannot enter pytest's 0700 temporary directories), and beside it the ``TMPDIR`` of the
  test user's sessions, so that a command killed mid-run leaves nothing in ``/tmp``;
* one ``sshd -D`` process per 16 addresses (sshd's limit of listen sockets);
* a plain OS user (``knmtest``, shell ``/bin/sh``, empty home) with a known password and two
  ed25519 client keys, one of them encrypted.  The user is kept between runs and reused;
* ``/etc/sudoers.d/knm-test`` letting that user run ``id``, ``whoami`` and ``true`` as root
  with its password (``sudo -S`` works, ``sudo -n`` fails).  Fleets of concurrent test runs
  share it (and the user): the last fleet to stop removes it;
* fault nodes (:class:`FaultNodes`): ``refused`` (nothing listens on it) and ``silent``
  (accepts TCP and never speaks SSH).  Per-command faults need no special node, see
  :data:`FAULT_COMMANDS`.

:meth:`SshFleet.stop` kills every process the fleet started, including the users' sessions
and commands that are still running (``sleep 3600``), and is safe to call twice; an
``atexit`` hook calls it if the test run forgets to.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import grp
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh
import msgspec
import psutil

from knm.core.processes import wait_until_gone

DEFAULT_USERNAME = "knmtest"
DEFAULT_PASSWORD = "knm-Test-passw0rd"
DEFAULT_KEY_PASSPHRASE = "knm-test-key-passphrase"
DEFAULT_SUDOERS_NAME = "knm-test"

# sshd's MAX_LISTEN_SOCKS: a ListenAddress beyond the 16th is refused.
MAX_ADDRESSES_PER_SSHD = 16
# 127.0.0.1 is left alone: other services of the machine (and of other tests) live there.
FIRST_NODE_INDEX = 2

SSHD_CANDIDATES = (Path("/usr/sbin/sshd"), Path("/usr/local/sbin/sshd"))
PRIVSEP_DIR = Path("/run/sshd")
PUBLIC_RUN_ROOT = Path("/run/knm-sshfleet")
SUDOERS_DIR = Path("/etc/sudoers.d")
# Both spellings: Debian's merged /usr resolves /bin/id to /usr/bin/id, other systems don't.
SUDO_COMMANDS = (
    "/usr/bin/id",
    "/bin/id",
    "/usr/bin/whoami",
    "/bin/whoami",
    "/usr/bin/true",
    "/bin/true",
)
INSTALL_HINT = "install it with: apt-get update && apt-get install -y openssh-server sudo"


class SshdNotInstalledError(RuntimeError):
    """The OpenSSH server is not installed: the fleet cannot run without it."""


class FleetStartError(RuntimeError):
    """The fleet could not be started (not root, sshd failed, no free port...)."""


class FleetNode(msgspec.Struct, frozen=True):
    """One SSH "node": an address and port of this machine, and the host key served there."""

    name: str
    address: str
    port: int
    # One OpenSSH public key line ("ssh-ed25519 AAAA... comment").
    host_key_public: str


class FaultNodes(msgspec.Struct, frozen=True):
    """Nodes that fail in a known way, on addresses distinct from the healthy nodes."""

    # Nothing listens there: connecting gives ConnectionRefusedError at once.
    refused: FleetNode
    # Accepts TCP and never sends an SSH banner: only a client timeout ends the attempt.
    silent: FleetNode


class FaultCommands(msgspec.Struct, frozen=True):
    """Remote commands that fail in a known way on any node of an :class:`SshFleet`."""

    # Never ends by itself: for client timeouts and cancellation.
    hang: str = "sleep 3600"
    # The remote shell's parent is the user's sshd session process ("sshd: knmtest@notty");
    # killing it makes sshd drop the TCP connection in the middle of the command.  asyncssh's
    # conn.run() then returns with exit_status None (no exit status was ever sent), the
    # connection closes, and opening another session raises ChannelOpenError.  The trailing
    # sleep keeps the command "running" when the drop happens.  Only for SshFleet: under the
    # asyncssh fleet server $PPID is the server itself.
    kill_connection: str = "echo started; sleep 0.2; kill -9 $PPID; sleep 60"
    # 50 MiB of "x" on stdout, for output limits and back-pressure.
    big_output: str = r"head -c 52428800 /dev/zero | tr '\0' x"
    big_output_bytes: int = 52_428_800


FAULT_COMMANDS = FaultCommands()


def find_sshd(candidates: Sequence[Path] = SSHD_CANDIDATES) -> Path:
    """The OpenSSH server binary; raises :class:`SshdNotInstalledError` with a fix if absent."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin")
    if found:
        return Path(found)
    raise SshdNotInstalledError(f"OpenSSH server (sshd) not found; {INSTALL_HINT}")


def loopback_address(index: int) -> str:
    """The ``index``-th usable address of 127.0.0.0/8, counting 127.0.0.1 as 1.

    Last octets 0 and 255 are skipped so that every address looks like an ordinary host.
    """
    if index < 1:
        raise ValueError(f"loopback index must be >= 1, got {index}")
    k = index - 1
    last = k % 254 + 1
    rest = k // 254
    third, second = rest % 256, rest // 256
    if second > 255:
        raise ValueError(f"loopback index {index} is beyond 127.255.255.254")
    return f"127.{second}.{third}.{last}"


def loopback_index(address: str) -> int:
    """The inverse of :func:`loopback_address`."""
    parts = [int(part) for part in address.split(".")]
    if len(parts) != 4 or parts[0] != 127 or not 1 <= parts[3] <= 254:
        raise ValueError(f"not a usable loopback address: {address}")
    return (parts[1] * 256 + parts[2]) * 254 + parts[3]


def _ephemeral_port_floor() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_free_on_all(addresses: Sequence[str], port: int) -> bool:
    """Whether ``port`` can be bound on every address (as a listener with SO_REUSEADDR would)."""
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            # Same option as sshd and asyncssh, so that TIME_WAIT leftovers don't matter.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def find_free_port(addresses: Sequence[str], *, attempts: int = 200) -> int:
    """A port that is free on all ``addresses`` at once.

    Ports are drawn below the ephemeral range, so that no client connection of the machine
    can be holding one, and at random, so that concurrent fleets rarely pick the same one
    (callers still retry when a server then fails to bind).
    """
    if not addresses:
        raise ValueError("no addresses")
    for address in addresses:
        if not address.startswith("127."):
            raise ValueError(f"only loopback addresses are allowed, got {address}")
    high = min(_ephemeral_port_floor(), 32768) - 1
    low = 20000 if high > 21000 else 10000
    rng = random.SystemRandom()
    for _ in range(attempts):
        port = rng.randint(low, high)
        if port_free_on_all(addresses, port):
            return port
    raise FleetStartError(f"no port free on all of {len(addresses)} addresses")


def read_ssh_banner(address: str, port: int, timeout: float) -> bytes:
    """The first line the server at ``address:port`` sends; raises OSError when there is none."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        data = b""
        while b"\n" not in data and len(data) < 1024:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        return data.split(b"\n", 1)[0]


def _run(args: Sequence[str | Path], *, input_text: str | None = None) -> None:
    completed = subprocess.run(
        [str(arg) for arg in args],
        input=input_text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if completed.returncode != 0:
        raise FleetStartError(
            f"{' '.join(str(a) for a in args[:2])} failed ({completed.returncode}): "
            f"{completed.stderr.strip() or completed.stdout.strip()}"
        )


def generate_ssh_key(path: Path, *, passphrase: str = "", comment: str = "") -> str:
    """Writes an ed25519 key pair (OpenSSH format) at ``path`` and ``path.pub``.

    Returns the public key line.
    """
    _run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            comment,
            "-f",
            path,
        ]
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def ensure_test_user(username: str, password: str) -> pwd.struct_passwd:
    """Creates (or reuses) a plain user with shell /bin/sh, an empty home and ``password``.

    Idempotent and tolerant of a concurrent fleet creating the same user.  /bin/sh and an
    empty home keep each remote command cheap: no rc files are read.
    """
    home = Path("/home") / username
    existing = {entry.pw_name: entry for entry in pwd.getpwall()}
    entry = existing.get(username)
    if entry is None:
        group_args = ["--user-group"]
        with contextlib.suppress(KeyError):
            grp.getgrnam(username)
            group_args = ["--gid", username]
        completed = subprocess.run(
            [
                "useradd",
                "--home-dir",
                str(home),
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "--comment",
                "knm test fleet",
                *group_args,
                username,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        # 9: the name is taken, e.g. by a fleet started at the same moment.
        if completed.returncode not in (0, 9):
            raise FleetStartError(f"useradd {username} failed: {completed.stderr.strip()}")
        entry = pwd.getpwnam(username)
    if entry.pw_uid == 0:
        raise FleetStartError(f"refusing to use {username}: it is a root account")
    if entry.pw_shell != "/bin/sh":
        _run(["usermod", "--shell", "/bin/sh", username])
        entry = pwd.getpwnam(username)
    home = Path(entry.pw_dir)
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    # chpasswd takes /etc/shadow's lock and may lose it to a concurrent fleet: retry.
    for attempt in range(3):
        try:
            _run(["chpasswd"], input_text=f"{username}:{password}\n")
            break
        except FleetStartError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    return entry


def _sshd_version(sshd: Path) -> tuple[int, int]:
    completed = subprocess.run(
        [str(sshd), "-V"], capture_output=True, text=True, check=False, timeout=30
    )
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", completed.stderr + completed.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


OWNER_FILE = "owner"


def _owner_token(pid: int) -> str:
    """The pid plus its start time, so a pid reused by an unrelated process does not look like
    the owner. The start time is the kernel's, in clock ticks since boot (``/proc/PID/stat``'s
    22nd field): psutil's ``create_time()`` adds the boot time as the wall clock has it now, which
    moves when the clock is stepped, and a live owner would then look dead to another run's
    fleet — which removed its public dir (its authorized_keys) and the shared sudoers file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return f"{pid} 0"


@contextlib.contextmanager
def _registry_lock() -> Iterator[None]:
    """Serialises fleets of concurrent test runs around the files they share."""
    PUBLIC_RUN_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (PUBLIC_RUN_ROOT / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def active_fleet_dirs() -> list[Path]:
    """Fleet directories whose owner still runs; those of dead owners are removed."""
    live: list[Path] = []
    for directory in PUBLIC_RUN_ROOT.glob("fleet-*"):
        try:
            pid_text = (directory / OWNER_FILE).read_text().split()[0]
            alive = (directory / OWNER_FILE).read_text() == _owner_token(int(pid_text))
        except (OSError, ValueError, IndexError):
            alive = False
        if alive:
            live.append(directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return live


class SilentTcpServer:
    """Accepts TCP connections on ``address:port`` and never sends a byte.

    A thread rather than asyncio, so that it works whatever (or whether any) event loop the
    test runs in, and never depends on the loop being responsive.
    """

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self._listener: socket.socket | None = None
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.address, self.port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        # A short timeout lets the thread notice stop() without another wake-up mechanism.
        listener.settimeout(0.2)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"silent-ssh-{self.address}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(conn)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in self._accepted:
            conn.close()
        self._accepted.clear()


class SshFleet:
    """``nodes`` real sshd nodes on 127.0.0.2, 127.0.0.3, ... sharing one port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.  Needs root.
    """

    def __init__(
        self,
        base_dir: Path | str,
        nodes: int = 3,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        key_passphrase: str = DEFAULT_KEY_PASSPHRASE,
        sudoers_name: str = DEFAULT_SUDOERS_NAME,
        sshd_path: Path | str | None = None,
        first_address_index: int = FIRST_NODE_INDEX,
        start_timeout: float = 30.0,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"a fleet needs at least one node, got {nodes}")
        if "." in sudoers_name or "/" in sudoers_name:
            # sudo silently ignores files in sudoers.d whose name contains a dot.
            raise ValueError(f"invalid sudoers file name {sudoers_name!r}")
        self.base_dir = Path(base_dir)
        self.node_count = nodes
        self.username = username
        self.password = password
        self.key_passphrase = key_passphrase
        self.sudoers_path = SUDOERS_DIR / sudoers_name
        self._sshd_path = Path(sshd_path) if sshd_path is not None else None
        self._first_index = first_address_index
        self.start_timeout = start_timeout

        self.port = 0
        self.nodes: list[FleetNode] = []
        self.faults: FaultNodes | None = None
        self.commands = FAULT_COMMANDS
        self.private_key_pem = ""
        # ssh-keygen's format, which asyncssh decrypts only when bcrypt is installed.
        self.encrypted_private_key_pem = ""
        # Same passphrase, PKCS#8 PEM: decrypted by cryptography alone.
        self.encrypted_private_key_pkcs8_pem = ""
        self.host_key_public = ""
        self.uid = -1

        self.dir = Path()
        self.public_dir = Path()
        self.session_tmp = Path()
        self.private_key_path = Path()
        self.encrypted_private_key_path = Path()
        self.encrypted_private_key_pkcs8_path = Path()
        self.authorized_keys_path = Path()
        self.known_hosts_path = Path()

        self._sshd_procs: list[subprocess.Popen[bytes]] = []
        self._silent: SilentTcpServer | None = None
        self._wrote_sudoers = False
        self._started = False
        self._lock = threading.Lock()

    # -- public API -------------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def refused_node(self) -> FleetNode:
        return self._require_faults().refused

    def silent_node(self) -> FleetNode:
        return self._require_faults().silent

    def sshd_pids(self) -> list[int]:
        """The pids of the listening sshd processes (not of their per-connection children)."""
        return [proc.pid for proc in self._sshd_procs]

    def known_hosts_text(self) -> str:
        """known_hosts lines for every healthy node, for strict host key checking."""
        return "".join(f"[{n.address}]:{n.port} {n.host_key_public}\n" for n in self.nodes)

    def add_authorized_key(self, public_key_line: str) -> None:
        """Lets the test user log in with another key (sshd rereads the file at each login)."""
        with self.authorized_keys_path.open("a") as handle:
            handle.write(public_key_line.strip() + "\n")

    def session_processes(self) -> list[psutil.Process]:
        """The test user's processes started by sessions on this fleet (per SSH_CONNECTION)."""
        found: list[psutil.Process] = []
        addresses = set(self.addresses)
        port = str(self.port)
        for proc in psutil.process_iter(["uids"]):
            uids = proc.info.get("uids")
            if uids is None or uids.real != self.uid:
                continue
            try:
                connection = proc.environ().get("SSH_CONNECTION", "").split()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if len(connection) == 4 and connection[2] in addresses and connection[3] == port:
                found.append(proc)
        return found

    def start(self) -> SshFleet:
        with self._lock:
            if self._started:
                return self
            self._started = True
        # Registered first, so that a start failing half-way is cleaned up too.
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops everything the fleet started; safe to call twice and from atexit."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        atexit.unregister(self.stop)
        victims: list[psutil.Process] = []
        for popen in self._sshd_procs:
            with contextlib.suppress(psutil.Error):
                victims.extend(psutil.Process(popen.pid).children(recursive=True))
        if self.uid >= 0 and self.port:
            victims.extend(self.session_processes())
        self._kill_sshd_listeners()
        # Sessions and their commands outlive the listener: kill them explicitly.
        for _ in range(2):
            for victim in victims:
                with contextlib.suppress(psutil.Error):
                    victim.kill()
            wait_until_gone(victims, timeout=5.0)
            victims = self.session_processes() if self.uid >= 0 and self.port else []
            if not victims:
                break
        if self._silent is not None:
            self._silent.stop()
            self._silent = None
        if self.public_dir == Path() and not self._wrote_sudoers:
            return
        with _registry_lock():
            if self.public_dir != Path() and self.public_dir.is_dir():
                shutil.rmtree(self.public_dir, ignore_errors=True)
            # Fleets of concurrent test runs share the sudoers file: the last one removes it.
            if self._wrote_sudoers and not active_fleet_dirs():
                with contextlib.suppress(FileNotFoundError):
                    self.sudoers_path.unlink()
            self._wrote_sudoers = False

    def __enter__(self) -> SshFleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start-up ---------------------------------------------------------------------------

    def _require_faults(self) -> FaultNodes:
        if self.faults is None:
            raise RuntimeError("the fleet is not started")
        return self.faults

    def _start(self) -> None:
        sshd = self._sshd_path or find_sshd()
        if not sshd.exists():
            raise SshdNotInstalledError(f"{sshd} does not exist; {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise FleetStartError("SshFleet needs root (it starts sshd and creates a user)")

        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="sshfleet-", dir=self.base_dir))
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        PUBLIC_RUN_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        with _registry_lock():
            self.public_dir = Path(tempfile.mkdtemp(prefix="fleet-", dir=PUBLIC_RUN_ROOT))
            self.public_dir.chmod(0o755)
            (self.public_dir / OWNER_FILE).write_text(_owner_token(os.getpid()))

        host_key = self.dir / "ssh_host_ed25519_key"
        self.host_key_public = generate_ssh_key(host_key, comment="knm-sshfleet-host")
        self.private_key_path = self.dir / "client_ed25519"
        self.encrypted_private_key_path = self.dir / "client_ed25519_encrypted"
        plain_public = generate_ssh_key(
            self.private_key_path, comment=f"{self.username}@knm-sshfleet"
        )
        encrypted_public = generate_ssh_key(
            self.encrypted_private_key_path,
            passphrase=self.key_passphrase,
            comment=f"{self.username}@knm-sshfleet-encrypted",
        )
        self.private_key_pem = self.private_key_path.read_text()
        self.encrypted_private_key_pem = self.encrypted_private_key_path.read_text()
        pkcs8_public = self._write_pkcs8_key()
        self.authorized_keys_path = self.public_dir / "authorized_keys"
        self.authorized_keys_path.write_text(
            f"{plain_public}\n{encrypted_public}\n{pkcs8_public}\n"
        )
        self.authorized_keys_path.chmod(0o644)

        user = ensure_test_user(self.username, self.password)
        self.uid = user.pw_uid
        # The test user's sessions keep their temp files here, removed with the fleet: a
        # command killed mid-run (Ansible's module payloads, cancelled scripts) would
        # otherwise leave its temp dir in the machine's /tmp.
        self.session_tmp = self.public_dir / "tmp"
        self.session_tmp.mkdir(mode=0o700)
        os.chown(self.session_tmp, user.pw_uid, user.pw_gid)
        with _registry_lock():
            self._write_sudoers()

        node_addresses = [loopback_address(self._first_index + i) for i in range(self.node_count)]
        refused_address = loopback_address(self._first_index + self.node_count)
        silent_address = loopback_address(self._first_index + self.node_count + 1)
        with_penalties = _sshd_version(sshd) >= (9, 8)

        last_error: Exception | None = None
        # A concurrent fleet may grab the port between our check and sshd's bind: retry.
        for _attempt in range(3):
            self.port = find_free_port([*node_addresses, refused_address, silent_address])
            try:
                self._launch(sshd, host_key, node_addresses, silent_address, with_penalties)
                last_error = None
                break
            except (FleetStartError, OSError) as error:
                last_error = error
                self._kill_sshd_listeners()
                if self._silent is not None:
                    self._silent.stop()
                    self._silent = None
        if last_error is not None:
            raise FleetStartError(f"sshd fleet did not start: {last_error}") from last_error

        self.nodes = [
            FleetNode(f"node{i + 1}", address, self.port, self.host_key_public)
            for i, address in enumerate(node_addresses)
        ]
        self.faults = FaultNodes(
            refused=FleetNode("refused", refused_address, self.port, self.host_key_public),
            silent=FleetNode("silent", silent_address, self.port, self.host_key_public),
        )
        self.known_hosts_path = self.dir / "known_hosts"
        self.known_hosts_path.write_text(self.known_hosts_text())

    def _write_pkcs8_key(self) -> str:
        """Writes the PKCS#8 encrypted client key; returns its public line.

        asyncssh decrypts OpenSSH-format keys only with the optional ``bcrypt`` package, but
        PKCS#8 with ``cryptography`` alone, so tests can use a passphrase either way.
        """
        key = asyncssh.generate_private_key(
            "ssh-ed25519", comment=f"{self.username}@knm-sshfleet-pkcs8"
        )
        self.encrypted_private_key_pkcs8_pem = key.export_private_key(
            "pkcs8-pem", self.key_passphrase
        ).decode()
        self.encrypted_private_key_pkcs8_path = self.dir / "client_ed25519_pkcs8.pem"
        self.encrypted_private_key_pkcs8_path.write_text(self.encrypted_private_key_pkcs8_pem)
        self.encrypted_private_key_pkcs8_path.chmod(0o600)
        return key.export_public_key().decode().strip()

    def _write_sudoers(self) -> None:
        if shutil.which("visudo", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            raise FleetStartError(f"sudo is not installed; {INSTALL_HINT}")
        SUDOERS_DIR.mkdir(mode=0o755, exist_ok=True)
        user = self.username
        text = (
            "# Written by knm.testing.sshfleet for its test user; removed when the fleet stops.\n"
            # No cached credentials, so that `sudo -n` fails even right after a `sudo -S`.
            f"Defaults:{user} timestamp_timeout=0, !lecture\n"
            f"{user} ALL=(root) PASSWD: {', '.join(SUDO_COMMANDS)}\n"
        )
        # A name with a dot: sudo ignores the file while it is being written and checked.
        staging = SUDOERS_DIR / f".{self.sudoers_path.name}.{os.getpid()}.tmp"
        staging.write_text(text)
        staging.chmod(0o440)
        try:
            _run(["visudo", "-cf", staging])
            os.replace(staging, self.sudoers_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
        self._wrote_sudoers = True

    def _sshd_config(
        self, host_key: Path, index: int, addresses: Sequence[str], penalties: bool
    ) -> str:
        lines = [
            f"# Written by knm.testing.sshfleet: sshd process {index} of a test fleet.",
            f"Port {self.port}",
            "AddressFamily inet",
            *(f"ListenAddress {address}" for address in addresses),
            f"HostKey {host_key}",
            f"PidFile {self.dir / f'sshd-{index}.pid'}",
            # Without PAM, sshd checks passwords against /etc/shadow itself: no PAM stack or
            # session modules to configure, and nothing slow at login.
            "UsePAM no",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitEmptyPasswords no",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            # The authorized keys file is root's, in /run: not what StrictModes expects.
            "StrictModes no",
            "PermitRootLogin no",
            f"AllowUsers {self.username}",
            # Fan-out tests open hundreds of connections at once.
            "MaxStartups 1000:30:2000",
            "MaxSessions 100",
            "UseDNS no",
            "LogLevel ERROR",
            "AcceptEnv LANG LC_*",
            f"SetEnv TMPDIR={self.session_tmp}",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "Subsystem sftp internal-sftp",
        ]
        if penalties:
            # OpenSSH >= 9.8 would otherwise ban 127.0.0.1 after the wrong-password tests.
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def _launch(
        self,
        sshd: Path,
        host_key: Path,
        node_addresses: Sequence[str],
        silent_address: str,
        penalties: bool,
    ) -> None:
        self._silent = SilentTcpServer(silent_address, self.port)
        self._silent.start()
        groups = [
            node_addresses[i : i + MAX_ADDRESSES_PER_SSHD]
            for i in range(0, len(node_addresses), MAX_ADDRESSES_PER_SSHD)
        ]
        logs: list[Path] = []
        for index, group in enumerate(groups):
            config = self.dir / f"sshd_config-{index}"
            config.write_text(self._sshd_config(host_key, index, group, penalties))
            log = self.dir / f"sshd-{index}.log"
            log.write_text("")
            logs.append(log)
            self._sshd_procs.append(
                subprocess.Popen(
                    [str(sshd), "-D", "-f", str(config), "-E", str(log)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    # Out of the test's process group: a Ctrl-C reaches pytest, whose stop()
                    # then cleans up in order, instead of killing sshd under a live test.
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + self.start_timeout
        for group, popen, log in zip(groups, self._sshd_procs, logs, strict=True):
            for address in group:
                self._wait_for_banner(address, popen, log, deadline)
            # sshd keeps running when only some of its addresses failed to bind, and the
            # banner we saw may then come from another fleet's sshd on the same port.
            text = log.read_text(errors="replace")
            if "Bind to port" in text or "Cannot bind" in text:
                raise FleetStartError(f"sshd could not bind port {self.port}: {text.strip()}")

    def _wait_for_banner(
        self, address: str, popen: subprocess.Popen[bytes], log: Path, deadline: float
    ) -> None:
        last_error = ""
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise FleetStartError(
                    f"sshd exited with {popen.returncode}: {log.read_text(errors='replace')}"
                )
            try:
                banner = read_ssh_banner(address, self.port, timeout=2.0)
                if banner.startswith(b"SSH-"):
                    return
                last_error = f"unexpected banner {banner!r}"
            except OSError as error:
                last_error = str(error)
            time.sleep(0.05)
        raise FleetStartError(
            f"{address}:{self.port} did not send an SSH banner in time ({last_error}); "
            f"log: {log.read_text(errors='replace')}"
        )

    def _kill_sshd_listeners(self) -> None:
        for popen in self._sshd_procs:
            if popen.poll() is None:
                popen.terminate()
        for popen in self._sshd_procs:
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        self._sshd_procs.clear()


@contextlib.contextmanager
def ssh_fleet(base_dir: Path | str, nodes: int = 3, **options: Any) -> Iterator[SshFleet]:
    """A started :class:`SshFleet`, stopped on exit; ``options`` go to its constructor.

    Meant to be wrapped by a pytest fixture: ``with ssh_fleet(tmp_path) as fleet: yield fleet``.
    """
    fleet = SshFleet(base_dir, nodes, **options)
    with fleet:
        yield fleet
