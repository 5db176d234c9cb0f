"""Kubernetes API server stand-in for knm's tests.

The official ``kubernetes`` client talks to it over a real loopback socket::

    with KubeStandin() as kube:
        kube.add_node("n1", labels={"pool": "a"})
        kube.add_pod("default", "web-1", "n1", labels={"app": "web"})
        kube.add_pdb("default", "web", {"app": "web"}, min_available=1)
        config = yaml.safe_load(kube.kubeconfig())
        api_client = kubernetes.config.new_client_from_config_dict(config)

Run it on its own with ``python -m knm.testing.k8s_standin --port N``; other
processes then drive it through ``POST /_standin/...`` (add nodes, pods and
budgets; reboot a node; flip readiness).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from knm.testing.k8s import (
    ApiError,
    Cluster,
    KubeStandin,
    Node,
    NodeAddress,
    NodeInfo,
    Pdb,
    PdbStatus,
    Pod,
    RequestRecord,
    Taint,
    Timings,
)

__all__ = [
    "ApiError",
    "Cluster",
    "KubeStandin",
    "Node",
    "NodeAddress",
    "NodeInfo",
    "Pdb",
    "PdbStatus",
    "Pod",
    "RequestRecord",
    "Taint",
    "Timings",
    "main",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m knm.testing.k8s_standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="require this bearer token")
    parser.add_argument(
        "--node", action="append", default=[], metavar="NAME", help="pre-create a node"
    )
    parser.add_argument(
        "--kubeconfig", default=None, metavar="PATH", help="write a kubeconfig here"
    )
    parser.add_argument("--reboot-seconds", type=float, default=None)
    parser.add_argument("--grace-scale", type=float, default=None)
    args = parser.parse_args(argv)

    timings = Timings()
    if args.reboot_seconds is not None:
        timings.reboot_duration = args.reboot_seconds
    if args.grace_scale is not None:
        timings.grace_scale = args.grace_scale
    standin = KubeStandin(host=args.host, port=args.port, token=args.token, timings=timings)
    for name in args.node:
        standin.add_node(name)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with standin:
        if args.kubeconfig:
            with open(args.kubeconfig, "w", encoding="utf-8") as fh:
                fh.write(standin.kubeconfig())
        # A parent process waits for this line to learn the (possibly random) port.
        print(f"k8s stand-in listening on {standin.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
