"""The libssh2 client's channel pump, against a channel that behaves as ssh2-python's does."""

from __future__ import annotations

import pytest

pytest.importorskip("ssh2")

import asyncssh

from knm.plugins.ssh.hostkeys import key_line
from knm.plugins.ssh.libssh2 import EAGAIN, _key_line, _pump


class PartialChannel:
    """Takes at most ``take`` bytes a call and, as ssh2-python does when libssh2 stops it
    part-way, reports them beside ``EAGAIN`` every other call."""

    def __init__(self, take: int) -> None:
        self.take = take
        self.received = bytearray()
        self.calls = 0
        self.eof_sent = False

    def write(self, buf: bytes) -> tuple[int, int]:
        self.calls += 1
        taken = buf[: self.take]
        self.received += taken
        return (EAGAIN if self.calls % 2 else len(taken)), len(taken)

    def send_eof(self) -> int:
        self.eof_sent = True
        return 0

    def eof(self) -> bool:
        return self.eof_sent

    def read(self, _size: int) -> tuple[int, bytes]:
        return EAGAIN, b""

    read_stderr = read


class Raw:
    async def wait(self) -> None:
        return None


async def test_bytes_reported_beside_eagain_are_sent_once() -> None:
    stdin = "".join(chr(ord("a") + i % 26) for i in range(200_000))
    chan = PartialChannel(take=7_000)
    await _pump(Raw(), chan, stdin, None, None)  # type: ignore[arg-type]
    assert chan.received.decode() == stdin
    assert chan.eof_sent


@pytest.mark.parametrize(
    "algorithm",
    ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"],
)
def test_a_host_key_read_from_the_wire_compares_with_its_pin_as_the_decoded_key_would(
    algorithm: str,
) -> None:
    size = {"key_size": 2048} if algorithm == "ssh-rsa" else {}
    key = asyncssh.generate_private_key(algorithm, **size)
    blob = key.public_data
    assert _key_line(blob) == key_line(asyncssh.import_public_key(key.export_public_key()))
    other = asyncssh.generate_private_key("ssh-ed25519").public_data
    assert _key_line(other) != _key_line(blob)
