"""``knm hostkey list|pin|forget``: the SSH host keys pinned for nodes.

Forgetting a pin is how an operator accepts a rebuilt node under the ``tofu`` policy (its next
connection pins the new key); pinning one is how a node is admitted under ``strict``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.session import OK, UsageError, command, done, output_parent

if TYPE_CHECKING:
    from knm.client.models import HostKey
    from knm.client.sync import Client

#: ``-o name`` lines are ``hostkey/<node>``; ``-o wide`` adds the key itself.
PIN = render.Kind(
    name="hostkey",
    key="node",
    columns=("cluster_name", "node", "key_type", "fingerprint", "address", "port", "created_at"),
    wide=("public_key",),
)
#: The API's largest page: a ``--node`` filter reads every pin of the cluster in pages this big.
ALL = 100


def key_problem(line: str) -> str | None:
    """Why ``line`` is not one OpenSSH public key line ("TYPE BASE64 [COMMENT]"), or None.

    The key blob names its own type first (RFC 4253 §6.6), so a pasted line whose parts were
    mixed up, or that was cut short, is caught here with a message naming the option."""
    parts = line.split()
    if len(parts) < 2:
        return "expected one public key line: TYPE BASE64 [COMMENT] (ssh-ed25519 AAAA...)"
    kind, data = parts[0], parts[1]
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"the key's second field is not base64 ({data[:16]}...)"
    if len(blob) < 4:
        return "the key's data is too short to be an SSH public key"
    (size,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + size].decode(errors="replace") != kind:
        return f"the key's data is not a {kind} key (were its parts swapped?)"
    if len(blob) <= 8 + size:
        return "the key's data ends after its type (was the line cut short?)"
    return None


def _key_from(args: argparse.Namespace) -> str:
    if args.key is not None and args.key_file is not None:
        raise UsageError("give --key or --key-file, not both")
    if args.key_file is not None:
        text = sys.stdin.read() if args.key_file == "-" else Path(args.key_file).read_text()
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if len(lines) != 1:
            raise UsageError(
                f"--key-file {args.key_file}: expected one public key line, found {len(lines)}"
            )
        option, line = f"--key-file {args.key_file}", lines[0]
    elif args.key is not None:
        option, line = "--key", args.key
    else:
        raise UsageError('give the key: --key "ssh-ed25519 AAAA..." or --key-file FILE')
    problem = key_problem(line)
    if problem:
        raise UsageError(f"{option}: {problem}")
    return line.strip()


def _pins(client: Client, args: argparse.Namespace) -> tuple[list[HostKey], int]:
    """The page asked for, or with ``--node`` every matching pin (the API filters by cluster
    only)."""
    if args.node is None:
        found = client.ssh.host_keys(cluster=args.cluster, page=args.page, page_size=args.page_size)
        return found.items, found.total
    matching: list[HostKey] = []
    page = 1
    while True:
        found = client.ssh.host_keys(cluster=args.cluster, page=page, page_size=ALL)
        matching.extend(pin for pin in found.items if pin.node == args.node)
        if page * ALL >= found.total:
            return matching, len(matching)
        page += 1


@command
def list_pins(args: argparse.Namespace, client: Client) -> int:
    pins, total = _pins(client, args)
    render.print_list(args, PIN, pins, {"total": total, "host_keys": pins}, total)
    return OK


@command
def pin(args: argparse.Namespace, client: Client) -> int:
    pinned = client.ssh.pin_host_key(args.cluster, args.node, _key_from(args))
    return done(
        args,
        pinned,
        f"pinned {pinned.key_type} {pinned.fingerprint} for {args.node} of {args.cluster}",
    )


@command
def forget(args: argparse.Namespace, client: Client) -> int:
    client.ssh.forget_host_key(args.cluster, args.node)
    return done(
        args,
        {"forgotten": {"cluster_name": args.cluster, "node": args.node}},
        f"forgot the host key of {args.node} of {args.cluster}; "
        "its next connection pins the key it shows (under host_key_policy tofu)",
    )


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["hostkey"]
    p = sub.add_parser("list", parents=[parent, output_parent()], help="pinned SSH host keys")
    live(p.add_argument("--cluster", help="only this cluster's pins"), "cluster")
    p.add_argument("--node", help="only this node's pins (@bastion: the jump host's)")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_pins)

    p = sub.add_parser("pin", parents=[parent], help="pin a node's host key (replacing any pin)")
    live(p.add_argument("cluster"), "cluster")
    p.add_argument("node", help="the node's name (@bastion: the cluster's jump host)")
    p.add_argument("--key", help='the public key line: "ssh-ed25519 AAAA... [comment]"')
    p.add_argument("--key-file", help="a file holding the public key line ('-': stdin)")
    p.set_defaults(func=pin)

    p = sub.add_parser(
        "forget", parents=[parent], help="forget a node's pinned host key (accept a rebuilt node)"
    )
    live(p.add_argument("cluster"), "cluster")
    p.add_argument("node", help="the node's name (@bastion: the cluster's jump host)")
    p.set_defaults(func=forget)
