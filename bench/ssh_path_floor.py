"""The floor of knm's SSH path: client CPU of bare asyncssh loops, variants side by side.

One :class:`knm.testing.fleet_server.FleetServer` on N loopback addresses (password auth), and
in this one process, interleaved round by round, each variant connecting to every node (200 at
once), running ``true`` and closing:

* ``floor``: ``asyncssh.connect`` with asyncssh's defaults and ``conn.run`` (the benchmark's
  floor);
* ``knm-opts``: the same with knm's connection options (``connect._option_values``);
* ``knm-path``: what knm does now — options built once, ``connect._login`` per connection, the
  command through ``process.open_process``/``run_process`` (an ``SSHClientSession``);
* ``knm-path-x25519``: the same with ``curve25519-sha256`` as the only key exchange (knm keeps
  the post-quantum hybrid first: this row only says what that costs);
* ``knm-libssh2``: knm's libssh2 client (the SSH settings' ``client: libssh2``) —
  ``libssh2.open_connection`` with host key checking off, the command through
  ``libssh2.open_channel``/``run_channel``, then ``close``: libssh2 in C, non-blocking, knm
  waiting on the socket under asyncio.

It reports the process's CPU seconds (user + system, ``getrusage``) per 1,000 nodes, the median
of ``--repeat`` rounds, and the ratio to ``floor``: what knm's SSH work costs before any
database, event or API work. Run from the repository root: ``python -m bench.ssh_path_floor``
(``--nodes 500 --repeat 3``).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncssh

from bench.common import load_average
from knm.core.credentials import DecryptedCredential
from knm.plugins.ssh import libssh2, process
from knm.plugins.ssh.connect import _login, _option_values
from knm.plugins.ssh.hostkeys import HostKeyCheck
from knm.plugins.ssh.schemas import SshSettings
from knm.testing.fleet_server import FleetServer, raise_nofile_limit

VARIANTS = ("floor", "knm-opts", "knm-path", "knm-path-x25519", "knm-libssh2")


def credential_of(server: FleetServer) -> DecryptedCredential:
    """The fleet's password login, as knm holds it once decrypted."""
    return DecryptedCredential(
        id=1, name="bench", username=server.username, port=22, auth_type="password",
        password=server.password,
    )  # fmt: skip


def no_check(node: Any) -> HostKeyCheck:
    """The ``off`` host key policy for ``node``: any key accepted, no pin read (no database)."""
    return HostKeyCheck(None, SshSettings(host_key_policy="off"), "bench", node.address,
                        node.address, node.port)  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def checked_out(raw: Any, node: Any) -> process.SshConnection:
    """``raw`` as the transport hands a new connection to a command."""

    def reconnect() -> Any:
        raise AssertionError("a new connection is never found dead")

    return process.SshConnection(raw, node=node, reused=False, reconnect=reconnect)


async def knm_values(server: FleetServer, kex: list[str] | None = None) -> dict[str, Any]:
    values = await _option_values(credential_of(server), 22, no_check(server.nodes[0]), 30.0)
    values.pop("port")
    if kex:
        values["kex_algs"] = kex
    return values


async def one(
    variant: str, node: Any, server: FleetServer, values: dict[str, Any], base: Any
) -> None:
    if variant == "floor":
        async with asyncssh.connect(
            node.address, port=node.port, username=server.username, password=server.password,
            known_hosts=None,
        ) as conn:  # fmt: skip
            await conn.run("true")
        return
    if variant == "knm-opts":
        async with asyncssh.connect(
            node.address, port=node.port, known_hosts=None, **values
        ) as conn:
            await conn.run("true")
        return
    if variant == "knm-libssh2":
        await one_libssh2(node, server)
        return
    raw = await _login(base, node.address, node.port, None, None, 30.0)
    held = checked_out(raw, node)
    chan, session, _ = await process.open_process(
        held,
        "true",
        pty=False,
        env=None,
        on_stdout=lambda text: None,  # type: ignore[arg-type]
    )
    result = await process.run_process(held, chan, session, stdin=None, timeout=None)  # type: ignore[arg-type]
    assert result.exit_code == 0
    raw.close()
    await raw.wait_closed()


async def one_libssh2(node: Any, server: FleetServer) -> None:
    raw = await libssh2.open_connection(
        address=node.address, port=node.port, credential=credential_of(server),
        check=no_check(node), connect_timeout=30.0,
    )  # fmt: skip
    held = checked_out(raw, node)
    chan, _ = await libssh2.open_channel(held, "true", pty=False, env=None)
    result = await libssh2.run_channel(
        held, chan, stdin=None, on_stdout=lambda text: None, on_stderr=None, timeout=None
    )
    assert result.exit_code == 0
    raw.close()


async def main(nodes: int, repeat: int) -> None:
    raise_nofile_limit()
    with tempfile.TemporaryDirectory() as tmp, FleetServer(Path(tmp), nodes=nodes) as server:
        loop = asyncio.get_running_loop()
        values = {
            "floor": {},
            "knm-opts": await knm_values(server),
            "knm-path": await knm_values(server),
            "knm-path-x25519": await knm_values(server, ["curve25519-sha256"]),
        }
        bases = {
            name: asyncssh.SSHClientConnectionOptions(
                None, loop=loop, host="", known_hosts=None, tunnel=None, **values[name]
            )
            for name in ("knm-path", "knm-path-x25519")
        }
        slots = asyncio.Semaphore(200)

        async def bounded(variant: str, node: Any) -> None:
            async with slots:
                await one(variant, node, server, values.get(variant, {}), bases.get(variant))

        for variant in VARIANTS:  # imports and first-use caches, outside the measure
            await asyncio.gather(*(bounded(variant, node) for node in server.nodes[:5]))
        print(f"{load_average()}; {nodes} nodes, {repeat} rounds each, interleaved")
        measured: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for round_ in range(repeat):
            for variant in VARIANTS:
                before, started = cpu_seconds(), time.monotonic()
                await asyncio.gather(*(bounded(variant, node) for node in server.nodes))
                measured[variant].append(1000 * (cpu_seconds() - before) / nodes)
                print(f"  round {round_ + 1} {variant}: {measured[variant][-1]:.2f} CPU s per "
                      f"1,000 nodes, {time.monotonic() - started:.1f} s")  # fmt: skip
        floor = statistics.median(measured["floor"])
        print(load_average())
        print("| variant | CPU s per 1,000 nodes, each round | median | × floor |")
        print("|---|---|---:|---:|")
        for variant in VARIANTS:
            med = statistics.median(measured[variant])
            rounds = ", ".join(f"{value:.2f}" for value in measured[variant])
            print(f"| {variant} | {rounds} | {med:.2f} | {med / floor:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="20 nodes, one round")
    args = parser.parse_args()
    asyncio.run(main(20, 1) if args.smoke else main(args.nodes, args.repeat))
