"""Installs as users make them, each checked end to end.

The checkout is built once into a wheelhouse; each case makes a fresh venv, installs from it,
starts ``knm serve`` on its embedded PostgreSQL, creates a playbook (ansible-playbook's syntax
check runs as the run user) and runs it through the API on the sshd fleet, forces a
checkpoint (PostgreSQL must still reach every file of its data dir), and checks that
``/readyz`` stays 200 and that no directory outside the install's own changed mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from knm.testing.process import hold_port
from knm.testing.sshfleet import SshFleet

REPO = Path(__file__).resolve().parents[2]
#: The non-root user scripts/test.sh creates for the install tests (home mode 0700).
INSTALL_USER = "knm-install-test"
ADMIN_PASSWORD = "install-admin-password"
SYSTEM_PYTHON = Path("/usr/bin/python3")

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Say which node this is
      ansible.builtin.command: uname -n
      changed_when: false
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="install tests need root (users, sshd)"),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheelhouse() -> Iterator[Path]:
    """The checkout's wheel and every dependency's, readable by every user."""
    house = Path(tempfile.mkdtemp(prefix="knm-wheels-"))
    source = Path(tempfile.mkdtemp(prefix="knm-source-"))
    try:
        # A copy, so the build leaves nothing in the checkout.
        shutil.copytree(
            REPO,
            source / "knm",
            ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "tests"),
        )
        # The client's wheel, then the server's as its sdist builds it (client/ holds only the
        # build backend there): built in a checkout, the server's wheel would require the
        # checkout's client/ by path (client/build_backend.py); this one requires it by name and
        # version, which the wheelhouse holds.
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(house),
              str(source / "knm" / "client")])  # fmt: skip
        (source / "knm" / "client" / "pyproject.toml").unlink()
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(house), "--find-links",
              str(house), str(source / "knm")])  # fmt: skip
        for path in [house, *house.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield house
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(house, ignore_errors=True)


@dataclass
class Install:
    venv: Path
    data_dir: Path
    #: Directories whose mode must not change (the install's private parent, the home).
    watched: dict[Path, int]
    user: pwd.struct_passwd | None = None

    @property
    def knm(self) -> Path:
        return self.venv / "bin" / "knm"


def _make_venv(python: Path, venv: Path, wheelhouse: Path, user: pwd.struct_passwd | None) -> None:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
                  "env": _user_env(user), "cwd": user.pw_dir}  # fmt: skip
    _run([str(python), "-m", "venv", str(venv)], **kwargs)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
          str(wheelhouse), "kube-node-manager"], **kwargs)  # fmt: skip


def _user_env(user: pwd.struct_passwd) -> dict[str, str]:
    return {"HOME": user.pw_dir, "USER": user.pw_name, "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8"}  # fmt: skip


class Server:
    def __init__(self, install: Install) -> None:
        self.install = install
        # Held until the server listens, so no other suite's server can take it meanwhile.
        self._hold = hold_port()
        self.port = self._hold.getsockname()[1]
        self.log = Path(tempfile.mkstemp(prefix="knm-install-", suffix=".log")[1])
        if install.user is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
            env["KNM_DATA_DIR"] = str(install.data_dir)
            kwargs: dict[str, object] = {}
        else:
            env = _user_env(install.user)  # its default data dir, as a user would have it
            kwargs = {"user": install.user.pw_uid, "group": install.user.pw_gid,
                      "extra_groups": [], "cwd": install.user.pw_dir}  # fmt: skip
        env.update(KNM_PORT=str(self.port), KNM_ADMIN_PASSWORD=ADMIN_PASSWORD,
                   KNM_ARGON2_TIME_COST="1", KNM_ARGON2_MEMORY_COST="8",
                   KNM_ARGON2_PARALLELISM="1")  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(install.knm), "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **kwargs,
            )  # type: ignore[call-overload]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, deadline: float = 120) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"knm serve exited:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                    self._hold.close()
                    return
            time.sleep(0.3)
        raise AssertionError(f"knm serve never became ready:\n{self.output()}")

    def stop(self) -> None:
        self._hold.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.unlink(missing_ok=True)


def _api(server: Server, method: str, path: str, token: str = "", **kwargs: object) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.request(
        method, f"{server.base}/api/v1{path}", headers=headers, timeout=60, **kwargs
    )  # type: ignore[arg-type]
    assert answer.status_code in (200, 201), (
        f"{method} {path}: {answer.status_code} {answer.text}\n{server.output()}"
    )
    return answer.json()["data"]


def _checkpoint(data_dir: Path) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@/postgres?host={data_dir / 'pg'}")
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    asyncio.run(run())


def _runs_a_playbook(install: Install, fleet: SshFleet) -> None:
    server = Server(install)
    try:
        server.wait_ready()
        token = _api(server, "POST", "/auth/login",
                     json={"username": "admin", "password": ADMIN_PASSWORD})["token"]  # fmt: skip
        credential = _api(server, "POST", "/credentials", token, json={
            "name": "fleet", "username": fleet.username, "auth_type": "password",
            "password": fleet.password,
        })["id"]  # fmt: skip
        nodes = [{"name": n.name, "address": n.address, "port": n.port} for n in fleet.nodes[:2]]
        _api(server, "POST", "/clusters", token,
             json={"name": "lab", "kind": "static", "nodes": nodes})  # fmt: skip
        playbook = _api(server, "POST", "/automation/ansible/playbooks", token,
                        json={"name": "who", "content": PLAYBOOK})["id"]  # fmt: skip
        task = _api(server, "POST", "/automation/ansible/run", token, json={
            "playbook_id": playbook, "cluster_name": "lab",
            "target_nodes": [n["name"] for n in nodes], "credential_id": credential,
        })["task_id"]  # fmt: skip
        end = time.monotonic() + 300
        status = _api(server, "GET", f"/automation/ansible/status/{task}", token)
        while status["status"] in ("pending", "running") and time.monotonic() < end:
            time.sleep(0.5)
            status = _api(server, "GET", f"/automation/ansible/status/{task}", token)
        failures = "; ".join(
            f"{r['node']}: {r.get('reason')} {r.get('message')} {r.get('stderr', '')[-500:]}"
            for r in status["results"]
        )
        assert status["status"] == "completed", f"{failures}\n{server.output()[-3000:]}"
        assert sorted(r["status"] for r in status["results"]) == ["success", "success"]
        # A checkpoint that cannot write pg_control PANICs the server, which ends the session
        # waiting on CHECKPOINT: the call raises instead of returning.
        _checkpoint(install.data_dir)
        assert httpx.get(f"{server.base}/readyz", timeout=10).status_code == 200, server.output()
        _api(server, "GET", "/automation/ansible/playbooks", token)
    finally:
        server.stop()
    changed = {path: (oct(mode), oct(_mode(path))) for path, mode in install.watched.items()
               if _mode(path) != mode}  # fmt: skip
    assert not changed, f"modes changed outside the install: {changed}"


@pytest.fixture
def var_lib_data_dir() -> Iterator[Path]:
    path = Path("/var/lib") / f"knm-install-{uuid.uuid4().hex[:8]}"
    yield path
    _stop_leftover_postgres(path)
    shutil.rmtree(path, ignore_errors=True)


def _stop_leftover_postgres(data_dir: Path) -> None:
    from knm.core.embedded_pg import running_postmaster_pid

    pid = running_postmaster_pid(data_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_root_installs_into_a_venv_under_a_private_directory(
    ssh_fleet: SshFleet, wheelhouse: Path, var_lib_data_dir: Path
) -> None:
    private = Path(tempfile.mkdtemp(prefix="knm-private-install-"))  # mode 0700
    try:
        watched = {private: _mode(private), Path.home(): _mode(Path.home())}
        # Made from this interpreter, which may itself live under a 0700 home (pyenv).
        _make_venv(Path(sys.executable), private / "venv", wheelhouse, None)
        _runs_a_playbook(Install(private / "venv", var_lib_data_dir, watched), ssh_fleet)
        assert _mode(private) == 0o700
    finally:
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system Python at /usr/bin/python3")
def test_root_installs_into_a_venv_made_from_the_system_python(
    ssh_fleet: SshFleet, wheelhouse: Path, var_lib_data_dir: Path
) -> None:
    base = Path(tempfile.mkdtemp(prefix="knm-system-install-"))
    base.chmod(0o755)
    try:
        watched = {base: 0o755, Path.home(): _mode(Path.home())}
        _make_venv(SYSTEM_PYTHON, base / "venv", wheelhouse, None)
        _runs_a_playbook(Install(base / "venv", var_lib_data_dir, watched), ssh_fleet)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def install_user() -> Iterator[pwd.struct_passwd]:
    try:
        user = pwd.getpwnam(INSTALL_USER)
    except KeyError:
        pytest.skip(f"no user {INSTALL_USER} (scripts/test.sh creates it, as root)")
    home = Path(user.pw_dir)
    if not home.is_dir() or not SYSTEM_PYTHON.exists():
        pytest.skip(f"{INSTALL_USER} has no home, or there is no /usr/bin/python3")
    # One user, one home, one default data dir: a second copy of the suite on this machine
    # waits here instead of installing into the same venv and talking to the same database.
    with (home / ".knm-tests.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield user
        finally:
            _stop_leftover_postgres(home / ".local/share/knm")
            for leftover in ("venv", ".local", ".cache", ".config", ".ansible"):
                shutil.rmtree(home / leftover, ignore_errors=True)


def test_a_user_installs_into_a_venv_in_their_own_private_home(
    ssh_fleet: SshFleet, wheelhouse: Path, install_user: pwd.struct_passwd
) -> None:
    home = Path(install_user.pw_dir)
    watched = {home: _mode(home), Path.home(): _mode(Path.home())}
    _make_venv(SYSTEM_PYTHON, home / "venv", wheelhouse, install_user)
    data_dir = home / ".local/share/knm"
    _runs_a_playbook(Install(home / "venv", data_dir, watched, install_user), ssh_fleet)
