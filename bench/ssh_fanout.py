"""SSH fan-out benchmark: one command on N nodes through knm's SSH transport.

The nodes are :class:`knm.testing.fleet_server.FleetServer` addresses (one asyncssh server
process on N loopback addresses), so the client side — knm's transport: fair limiter,
connection pool, host key handling off, output callbacks — is what is measured. Two rounds:

* ``cold``: every node needs a new connection (key exchange + password login);
* ``warm``: the same nodes again, each reusing its pooled connection.

Run from the repository root: ``python -m bench.ssh_fanout --nodes 500 --concurrency 100``
(``--smoke`` for a quick check). Reports wall time, nodes per second and failures per round.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from types import SimpleNamespace
from typing import Any

from knm.core.credentials import DecryptedCredential
from knm.core.tasks import TargetNode
from knm.plugins.ssh.errors import TransportError
from knm.plugins.ssh.schemas import SshSettings
from knm.plugins.ssh.transport import SshTransport
from knm.testing.fleet_server import FleetServer


class _Features:
    def __init__(self, settings: SshSettings) -> None:
        self._settings = settings

    async def settings(self, kind: str) -> SshSettings:
        return self._settings


class _Knm:
    pool = None

    def __init__(self, settings: SshSettings) -> None:
        self.features = _Features(settings)


async def _round(
    transport: SshTransport, context: Any, nodes: list[TargetNode], credential: Any, command: str
) -> tuple[float, int]:
    failures = 0

    async def one(node: TargetNode) -> None:
        nonlocal failures
        try:
            async with transport.session(context, node, credential) as conn:
                result = await transport.run(conn, command, on_stdout=lambda _: None)
            failures += result.exit_code != 0
        except TransportError:
            failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(node) for node in nodes))
    return time.perf_counter() - started, failures


async def bench(nodes: int, concurrency: int, command: str) -> None:
    with FleetServer(tempfile.mkdtemp(prefix="knm-bench-ssh-"), nodes=nodes) as server:
        settings = SshSettings(
            host_key_policy="off", max_concurrent=concurrency, connection_pool_size=nodes,
            pool_idle_ttl=600, connect_timeout=60,
        )  # fmt: skip
        knm = _Knm(settings)
        context = SimpleNamespace(
            knm=knm, task_id="bench", task=SimpleNamespace(cluster_name="bench"), mask=None
        )
        credential = DecryptedCredential(
            id=1, name="bench", username=server.username, auth_type="password", port=22,
            password=server.password,
        )  # fmt: skip
        targets = [TargetNode(name=n.name, address=n.address, port=n.port) for n in server.nodes]
        transport = SshTransport()
        print(f"{nodes} nodes, max_concurrent {concurrency}, command {command!r}")
        print(f"{'round':<6} {'seconds':>8} {'nodes/s':>9} {'failed':>7}")
        async with transport.lifespan(knm):
            for name in ("cold", "warm"):
                seconds, failed = await _round(transport, context, targets, credential, command)
                print(f"{name:<6} {seconds:>8.2f} {nodes / seconds:>9.1f} {failed:>7}")
        stats = transport.stats
        print(f"connects {stats.connects}, reuses {stats.reuses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--command", default="true")
    parser.add_argument("--smoke", action="store_true", help="10 nodes, to check it runs")
    args = parser.parse_args()
    nodes = 10 if args.smoke else args.nodes
    asyncio.run(bench(nodes, args.concurrency, args.command))


if __name__ == "__main__":
    main()
