"""``knm get KIND [NAME] [-o yaml|json|name|wide]``: playbooks, scripts, workflows or clusters
as ``knm apply -f`` takes them back.

``-o yaml`` prints one document per item (``---`` between them), ``-o json`` one object for a
NAME and a list otherwise: kind, name and the writable fields, never the server's read-only
ones (id, version, times) nor a secret. ``-o name`` prints ``kind/NAME`` lines; without ``-o``
(or with ``-o wide``) a table, as the kind's ``list`` command prints it. ``knm playbook show
-o yaml`` still prints the API's object as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from knm.cli.remote.session import (
    OK,
    UsageError,
    as_sent,
    command,
    emit_json,
    output_format,
    output_parent,
)

if TYPE_CHECKING:
    from knm.client.sync import Client

PAGE = 100


def _items(client: Client, kind: str, name: str | None, bodies: bool) -> list[Any]:
    """The kind's items (the one named): with their bodies when ``bodies`` asks."""
    from knm.cli.remote.apply import find
    from knm.cli.remote.content import api_of
    from knm.client import NotFound

    api = api_of(client, kind)
    if name is not None:
        item = find(api, name)
        if item is None:
            raise NotFound(f"{kind} {name!r} not found")
        return [item]
    items: list[Any] = []
    while True:
        found = api.list(page=len(items) // PAGE + 1, page_size=PAGE)
        items.extend(found.items)
        if not found.items or len(items) >= found.total:
            break
    return [api.get(item.id) for item in items] if bodies else items


def _clusters(client: Client, name: str | None) -> list[Any]:
    if name is not None:
        return [client.cluster(name)]
    clusters: list[Any] = []
    while True:
        found = client.clusters(page=len(clusters) // PAGE + 1, page_size=PAGE)
        clusters.extend(found.items)
        if not found.items or len(clusters) >= found.total:
            return clusters


@command
def get(args: argparse.Namespace, client: Client) -> int:
    from knm.cli.remote import clusters, content, documents, render

    given, _, named = args.kind.partition("/")  # ``knm get playbook/ntp``, as kubectl takes
    name = args.name or named or None
    kind = documents.kind_of(given)
    if kind is None:
        raise UsageError(f"unknown kind {given!r}: one of {', '.join(documents.KINDS)}")
    chosen = output_format(args)
    if kind == "cluster":
        found = _clusters(client, name)
        docs = [documents.of_cluster(c) for c in found]
        table_kind, rows = clusters.CLUSTER, [as_sent(c) for c in found]
    else:
        found = _items(client, kind, name, bodies=chosen in ("json", "yaml"))
        docs = (
            [documents.of_item(kind, item) for item in found] if chosen in ("json", "yaml") else []
        )
        table_kind, rows = content.KINDS[kind], found
    if chosen == "yaml":
        sys.stdout.write(documents.dump_all(docs))
    elif chosen == "json":
        emit_json(docs[0] if name is not None else docs)
    elif chosen == "name":
        sys.stdout.write("".join(f"{kind}/{row['name'] if isinstance(row, dict) else row.name}\n"
                                 for row in rows))  # fmt: skip
    else:
        render.print_list(args, table_kind, rows, {"total": len(rows)}, len(rows))
    return OK


def register(subparsers: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "get",
        parents=[parent, output_parent()],
        help="playbooks, scripts, workflows or clusters, as `knm apply -f` takes them back",
        description="-o yaml prints one document per item, which `knm apply -f` takes back "
        "unchanged: kind, name and the writable fields, never read-only fields (id, version, "
        "times) nor secrets. -o json: one object for a NAME, else a list. -o name: kind/NAME "
        "lines. Default (and -o wide): a table.",
    )
    p.add_argument("kind", metavar="KIND", help="playbook, script, workflow or cluster (or plural)")
    p.add_argument("name", nargs="?", metavar="NAME", help="one item (default: all of them)")
    p.set_defaults(func=get)
