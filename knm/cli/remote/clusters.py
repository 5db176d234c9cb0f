"""``knm cluster list|show|nodes|create|delete``: ``create -f FILE`` registers a cluster of any
kind, ``create NAME --kubeconfig FILE [--context C]`` a Kubernetes one from a kubeconfig file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import kubeconfig, render, yaml_input
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    common_parent,
    delete_asked,
    done,
    output_parent,
    reference,
)

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


def _body(args: argparse.Namespace) -> dict[str, Any]:
    """The new cluster's fields: the file's (``-f``), then the options'."""
    if args.file == "-" and args.kubeconfig == "-":
        raise UsageError("-f and --kubeconfig cannot both read stdin")
    body: dict[str, Any] = {}
    if args.file is not None:
        parsed = yaml_input.load(yaml_input.read_text(args.file), args.file)
        if not isinstance(parsed, dict):
            raise UsageError(f"{args.file}: expected a mapping with name, kind and its fields")
        body = dict(parsed)
    if args.name is not None:
        body["name"] = args.name
    if args.description is not None:
        body["description"] = args.description
    if args.kube_context is not None:
        body["context"] = args.kube_context
    if args.kubeconfig is not None:
        kind = body.setdefault("kind", "kubernetes")
        if kind != "kubernetes":
            raise UsageError(
                f"--kubeconfig is for kubernetes clusters; {args.file} has kind {kind}"
            )
        if "kubeconfig" in body or body.get("in_cluster"):
            raise UsageError(f"{args.file} has its own kubeconfig or in_cluster: drop --kubeconfig")
        body["kubeconfig"] = kubeconfig.read(args.kubeconfig, body.get("context"))
    if args.file is None and args.kubeconfig is None:
        raise UsageError(
            "give -f FILE (a cluster of any kind) or NAME --kubeconfig FILE (a kubernetes cluster)"
        )
    if "name" not in body:
        raise UsageError("give the cluster's name: knm cluster create NAME ...")
    if "kind" not in body:
        raise UsageError(f"{args.file}: expected a mapping with name, kind and its fields")
    if body["kind"] == "kubernetes":
        problem = kubeconfig.path_problem(body.get("kubeconfig"), args.file or "-f")
        if problem:
            raise UsageError(problem)
    return body


@command
def create(args: argparse.Namespace, client: Client) -> int:
    body = _body(args)
    cluster = client.create_cluster(body.pop("name"), body.pop("kind"), **body)
    return done(args, _flat(cluster), f"created cluster {cluster.name} ({cluster.kind})")


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    return delete_asked(
        args, "cluster", args.name, args.name, lambda: client.delete_cluster(args.name)
    )


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["cluster"]
    listing = [parent, output_parent()]
    p = sub.add_parser("list", parents=listing, help="list clusters")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_clusters)
    p = sub.add_parser("show", parents=listing, help="one cluster")
    live(p.add_argument("name", type=reference("cluster")), "cluster")
    p.set_defaults(func=show)
    p = sub.add_parser("nodes", parents=listing, help="a cluster's nodes")
    live(p.add_argument("name", type=reference("cluster")), "cluster")
    p.add_argument("--selector", help="only nodes matching this label selector")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=100)
    p.set_defaults(func=nodes)
    p = sub.add_parser(
        "create",
        # Here ``--context`` names the kubeconfig's context, as it does for kubectl reading
        # that file, not the knm context (KNM_CONTEXT still picks that one).
        parents=[common_parent(knm_context=False)],
        usage="%(prog)s (-f FILE | NAME --kubeconfig FILE [--context C]) [options]",
        help="register a cluster: -f FILE, or NAME --kubeconfig FILE for a Kubernetes cluster",
    )
    p.add_argument("name", nargs="?", help="the cluster's name (default: the file's)")
    p.add_argument("-f", "--file", help="the cluster's fields, YAML or JSON ('-': stdin)")
    p.add_argument(
        "--kubeconfig", help="a kubernetes cluster's kubeconfig file, sent as its text ('-': stdin)"
    )
    p.add_argument(
        "--context",
        "--kube-context",
        dest="kube_context",
        metavar="C",
        help="the kubeconfig's context to use (default: its current-context); the knm context "
        "for this command comes from KNM_CONTEXT",
    )
    p.add_argument("--description")
    p.set_defaults(func=create)
    p = sub.add_parser("delete", parents=[parent], help="remove a cluster")
    live(p.add_argument("name", type=reference("cluster")), "cluster")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=delete)
