"""Entry point of the ``knm`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from knm import __version__
from knm.cli import local, remote
from knm.core.manager import make_plugin_manager


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knm", description="Kube Node Manager: automation for the nodes of Kubernetes clusters"
    )
    parser.add_argument("--version", action="version", version=f"knm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    local.register(subparsers)
    remote.register(subparsers)
    make_plugin_manager().hook.knm_cli(subparsers=subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
