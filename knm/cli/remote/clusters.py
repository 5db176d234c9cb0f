"""``knm cluster list|show|nodes|create -f FILE|delete``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.content import read_document
from knm.cli.remote.session import OK, UsageError, command, emit_json

if TYPE_CHECKING:
    from knm.client.sync import Client


def _flat(cluster: Any) -> dict[str, Any]:
    """A cluster as the API shows it: the provider's fields beside the common ones."""
    values = {name: getattr(cluster, name) for name in cluster.__struct_fields__}
    return {**{k: v for k, v in values.items() if k != "extra"}, **cluster.extra}


@command
def list_clusters(args: argparse.Namespace, client: Client) -> int:
    found = client.clusters(page=args.page, page_size=args.page_size)
    if args.json:
        emit_json({"total": found.total, "clusters": [_flat(c) for c in found.items]})
        return OK
    render.print_table(found.items, ["name", "kind", "description", "updated_at"], found.total)
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    cluster = _flat(client.cluster(args.name))
    if args.json:
        emit_json(cluster)
        return OK
    nodes = cluster.pop("nodes", None)
    render.print_fields(cluster)
    if isinstance(nodes, list):
        render.print_table(nodes, ["name", "address", "port", "labels"])
    return OK


@command
def nodes(args: argparse.Namespace, client: Client) -> int:
    found = client.nodes(
        args.name, selector=args.selector, page=args.page, page_size=args.page_size
    )
    if args.json:
        emit_json({"total": found.total, "nodes": found.items})
        return OK
    columns = ["name", "address", "port", "ready", "schedulable", "roles", "labels"]
    render.print_table(found.items, columns, found.total)
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
    p = sub.add_parser("list", parents=[parent], help="list clusters")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_clusters)
    p = sub.add_parser("show", parents=[parent], help="one cluster")
    live(p.add_argument("name"), "cluster")
    p.set_defaults(func=show)
    p = sub.add_parser("nodes", parents=[parent], help="a cluster's nodes")
    live(p.add_argument("name"), "cluster")
    p.add_argument("--selector", help="only nodes matching this label selector")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=100)
    p.set_defaults(func=nodes)
    p = sub.add_parser("create", parents=[parent], help="register a cluster from a YAML/JSON file")
    p.add_argument("-f", "--file", required=True, help="YAML or JSON file ('-': stdin)")
    p.set_defaults(func=create)
    p = sub.add_parser("delete", parents=[parent], help="remove a cluster")
    live(p.add_argument("name"), "cluster")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=delete)
