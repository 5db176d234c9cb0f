"""How a run's passwords reach ssh without being a file in the run directory.

- The nodes' password: ansible-playbook runs with ``--ask-pass`` (and ``--ask-become-pass``)
  and ansible-runner answers its prompts from ``env/passwords``, which here is a FIFO: a knm
  thread writes the answers into it once, ansible-runner reads them once at its start, and what
  is left is an empty pipe. Ansible keeps the password in memory and hands it to ``sshpass``
  through a pipe of its own.
- The bastion's password: the bastion's ``ssh`` (the ProxyCommand) asks ``SSH_ASKPASS``
  (``SSH_ASKPASS_REQUIRE=force``), a small script of the run's that reads it from a Unix socket
  knm serves for the run's length, answering only the run user (and knm's own user).

Neither is safe from the play itself: anything running as the run user while the run lasts
can ask the socket, and a play can use the connection the password opened. A password
credential is therefore recoverable by whoever may run playbooks with it (as in AWX); a key
credential is not (``agent.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import threading
from pathlib import Path

from knm.plugins.ansible.runner import RunUser

#: ansible-playbook's prompts for ``--ask-pass`` and ``--ask-become-pass``.
SSH_PROMPT = r"SSH password:\s*?$"
BECOME_PROMPT = r"BECOME password.*:\s*?$"

ASKPASS_PROGRAM = "project/knm_askpass"
ASKPASS_SOCKET_ENV = "KNM_ASKPASS_SOCKET"

_ASKPASS_CODE = """\
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["KNM_ASKPASS_SOCKET"])
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode() + "\\n")
"""


def askpass_script(python: str) -> str:
    """The ``SSH_ASKPASS`` program: a shell script running the run's Python on a fixed text."""
    quoted = python.replace("'", "'\"'\"'")
    code = _ASKPASS_CODE.replace("'", "'\"'\"'")
    return f"#!/bin/sh\nexec '{quoted}' -c '{code}'\n"


class PromptAnswers:
    """``env/passwords`` as a FIFO holding ansible-runner's prompt answers for one read."""

    def __init__(self, path: Path, answers: dict[str, str]) -> None:
        self.path = path
        self.data = json.dumps(answers).encode()
        self.thread: threading.Thread | None = None

    def start(self, user: RunUser) -> None:
        os.mkfifo(self.path, 0o600)
        if user.switched:
            os.chown(self.path, user.uid, user.gid)
        self.thread = threading.Thread(target=self._write, name="knm-ansible-passwords",
                                       daemon=True)  # fmt: skip
        self.thread.start()

    def _write(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_WRONLY)  # blocks until ansible-runner opens it
            try:
                os.write(fd, self.data)
            finally:
                os.close(fd)

    def stop(self) -> None:
        """Releases a writer still waiting (ansible-runner never read), drains, removes."""
        thread, self.thread = self.thread, None
        if thread is not None and thread.is_alive():
            with contextlib.suppress(OSError):
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    thread.join(10)
                    with contextlib.suppress(BlockingIOError):
                        while os.read(fd, 65536):
                            pass
                finally:
                    os.close(fd)
        if thread is not None:
            thread.join(10)
        with contextlib.suppress(OSError):
            self.path.unlink()


class AskpassServer:
    """A Unix socket answering the bastion's password to the run user's processes."""

    def __init__(self, path: Path, password: str, user: RunUser) -> None:
        self.path = path
        self.password = password.encode()
        self.user = user
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.server = await asyncio.start_unix_server(self._answer, path=str(self.path))
        os.chmod(self.path, 0o600)
        if self.user.switched:
            os.chown(self.path, self.user.uid, self.user.gid)

    def _allowed(self, writer: asyncio.StreamWriter) -> bool:
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is None:
            return False
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
        return uid in (self.user.uid, os.geteuid())

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._allowed(writer):
                writer.write(self.password)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        with contextlib.suppress(OSError):
            self.path.unlink()
