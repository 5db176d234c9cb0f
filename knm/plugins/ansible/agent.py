"""The run's own ssh-agent: how private keys reach Ansible without ever being a file.

Each run that logs in with a key starts a private ``ssh-agent -D`` as the run user, its socket
alone in a 0700 directory of the run user's (``SSH_AUTH_SOCK`` of ansible-runner and so of every
ssh it starts, the bastion's ProxyCommand included). knm decrypts each key (a passphrase is
used here, never handed on) and pipes it, unencrypted, to ``ssh-add -`` on stdin: the key
lives in knm's memory and the agent's, and a play can *use* it through the socket while the run
lasts but cannot read it back (ssh-agent has no operation that returns a private key). The
agent carries the run's mark and is killed when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from knm.core.errors import FeatureUnavailable
from knm.plugins.ansible.runner import MARK, RunUser

#: A Unix socket's path has at most 107 bytes; deeper run dirs get a short directory in /tmp.
_SOCKET_DIR_MAX = 90
_START_TIMEOUT = 30.0


def socket_dir(run_dir: Path) -> Path:
    """The agent's directory: ``<run_dir>/agent`` when short enough, else one in /tmp named
    after the run dir."""
    inside = run_dir / "agent"
    if len(str(inside)) <= _SOCKET_DIR_MAX:
        return inside
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:20]
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    return base / f"knm-agent-{digest}"


class RunAgent:
    """A started ssh-agent holding the run's keys; ``stop`` ends it (call it in a finally)."""

    def __init__(self, run_dir: Path, user: RunUser, mark: str) -> None:
        self.run_dir = run_dir
        self.user = user
        self.mark = mark
        self.directory = socket_dir(run_dir)
        self.socket = str(self.directory / "agent.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "SSH_AUTH_SOCK": self.socket,
                MARK: self.mark}  # fmt: skip

    def _kwargs(self) -> dict[str, object]:
        return self.user.popen_kwargs()

    def start(self) -> None:
        """Starts the agent and returns once its socket accepts connections (blocking)."""
        if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
            raise FeatureUnavailable(
                "ansible unavailable: a key credential needs ssh-agent and ssh-add (OpenSSH's "
                "client tools) on the knm host"
            )
        self.make_directory()
        self.process = subprocess.Popen(
            ["ssh-agent", "-D", "-a", self.socket],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **self._kwargs(),  # type: ignore[arg-type]
        )
        assert self.process.stdout is not None
        # ssh-agent prints its SSH_AUTH_SOCK line once the socket is bound and listening.
        first = self.process.stdout.readline()
        if b"SSH_AUTH_SOCK" not in first:
            self.stop()
            raise FeatureUnavailable("ansible unavailable: ssh-agent did not start")

    def make_directory(self) -> None:
        """The 0700 directory of the run user's holding the run's sockets (made afresh)."""
        if self.directory.exists() or self.directory.is_symlink():
            self._remove_directory()
        self.directory.mkdir(mode=0o700)
        if self.user.switched:
            os.chown(self.directory, self.user.uid, self.user.gid)

    def add(self, private_key: str) -> None:
        """Hands an unencrypted key to the agent through ``ssh-add``'s stdin (blocking)."""
        data = private_key if private_key.endswith("\n") else private_key + "\n"
        completed = subprocess.run(
            ["ssh-add", "-q", "-"],
            input=data.encode(),
            env=self._env(),
            capture_output=True,
            timeout=_START_TIMEOUT,
            check=False,
            **self._kwargs(),  # type: ignore[arg-type]
        )
        if completed.returncode != 0:
            # ssh-add's complaint names no secret (it never echoes the key).
            detail = completed.stderr.decode(errors="replace").strip()[-300:]
            raise FeatureUnavailable(
                f"ansible unavailable: ssh-add could not load the key: {detail}"
            )

    def stop(self) -> None:
        """Kills the agent (the keys go with it) and removes its directory (blocking)."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
        self._remove_directory()

    def _remove_directory(self) -> None:
        if self.directory.is_symlink():
            self.directory.unlink()
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
