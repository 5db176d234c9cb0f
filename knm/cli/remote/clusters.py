"""``knm cluster list|show|nodes|create -f FILE|delete``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from knm.cli.remote import render
from knm.cli.remote.content import read_document
from knm.cli.remote.session import OK, UsageError, command, emit_json, output_parent, reference

if TYPE_CHECKING:
    from knm.client.sync import Client


CLUSTER = render.Kind(
    "cluster",
    "name",
    ("name", "kind", "description", "updated_at"),
    wide=("id", "created_at", "bastion"),
)
NODE = render.Kind(
    "node",
    "name",
    ("name", "address", "port", "ready", "schedulable", "roles", "labels"),
    wide=("info",),
)
#: The nodes in a cluster's own spec (``cluster show``), not the live ones of ``cluster nodes``.
SPEC_NODE_COLUMNS = ("name", "address", "port", "labels")


def _flat(cluster: Any) -> dict[str, Any]:
    """A cluster as the API shows it: the provider's fields beside the common ones."""
    values = {name: getattr(cluster, name) for name in cluster.__struct_fields__}
    return {**{k: v for k, v in values.items() if k != "extra"}, **cluster.extra}


@command
def list_clusters(args: argparse.Namespace, client: Client) -> int:
    found = client.clusters(page=args.page, page_size=args.page_size)
    clusters = [_flat(c) for c in found.items]
    document = {"total": found.total, "clusters": clusters}
    render.print_list(args, CLUSTER, clusters, document, found.total)
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    cluster = _flat(client.cluster(args.name))

    def view(wide: bool) -> None:
        fields = dict(cluster)
        nodes = fields.pop("nodes", None)
        render.print_fields(fields)
        if isinstance(nodes, list):
            render.print_table(nodes, SPEC_NODE_COLUMNS)

    render.print_object(args, CLUSTER, cluster, view)
    return OK


@command
def nodes(args: argparse.Namespace, client: Client) -> int:
    found = client.nodes(
        args.name, selector=args.selector, page=args.page, page_size=args.page_size
    )
    document = {"total": found.total, "nodes": found.items}
    render.print_list(args, NODE, found.items, document, found.total)
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    _, body = read_document(args.file)
    if not isinstance(body, dict) or "name" not in body or "kind" not in body:
        raise UsageError(f"{args.file}: expected a mapping with name, kind and its fields")
    body = dict(body)
    cluster = client.create_cluster(body.pop("name"), body.pop("kind"), **body)
    if args.json:
        emit_json(_flat(cluster))
    else:
        print(f"created cluster {cluster.name} ({cluster.kind})")
    return OK


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    asked = not args.yes and sys.stdin.isatty()
    if asked and input(f"delete cluster {args.name}? [y/N] ").strip().lower() not in ("y", "yes"):
        print("not deleted")
        return OK
    client.delete_cluster(args.name)
    if args.json:
        emit_json({"deleted": args.name})
    else:
        print(f"deleted cluster {args.name}")
    return OK


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["cluster"]
    listing = [parent, output_parent()]
    p = sub.add_parser("list", parents=listing, help="list clusters")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_clusters)
    p = sub.add_parser("show", parents=listing, help="one cluster")
    p.add_argument("name", type=reference("cluster"))
    p.set_defaults(func=show)
    p = sub.add_parser("nodes", parents=listing, help="a cluster's nodes")
    p.add_argument("name", type=reference("cluster"))
    p.add_argument("--selector", help="only nodes matching this label selector")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=100)
    p.set_defaults(func=nodes)
    p = sub.add_parser("create", parents=[parent], help="register a cluster from a YAML/JSON file")
    p.add_argument("-f", "--file", required=True, help="YAML or JSON file ('-': stdin)")
    p.set_defaults(func=create)
    p = sub.add_parser("delete", parents=[parent], help="remove a cluster")
    p.add_argument("name", type=reference("cluster"))
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=delete)
