"""``knm apply -f FILE|DIR [-R] [--dry-run] [--send-write-only]``: make the server's playbooks,
scripts, workflows and clusters what the files say, as ``kubectl apply`` does.

Each document (see ``knm.cli.remote.documents``) is created when no item of its kind has its
name, updated when it differs, and left alone when not: every successful PUT is a new version,
so an identical item is never sent. Only the fields a document gives are compared and sent;
those it leaves out keep the server's value. Inside a field, a key the document leaves out is
not a difference when the server's value for it is empty (null, "", [], {}, false) or a whole
mapping or list: those are the defaults the API fills in (a static node's ``port: null``, a
workflow's ``strategy``). To reset such a block, write it out; a plain value left out (a label
removed) is a difference.

A library item is changed conditionally on the version read (a change made meanwhile is a 409
for that item, not lost). The cluster API has no version: a cluster is read then changed, last
write wins. Builtin items are read-only: one that differs fails, the others still apply.

Write-only fields (a kubernetes cluster's ``kubeconfig``: the API never shows secrets) cannot be
compared: they are sent with the item's other changes, or alone with ``--send-write-only``, and
never printed. Every item is tried (the exit code is 1 when any failed), unless the server
cannot be reached or refuses the token (exit code 4).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import msgspec

from knm.cli.remote.session import FAILED, OK, command, describe, emit_json, error

if TYPE_CHECKING:
    from knm.cli.remote.documents import Document
    from knm.client.families import ContentApi
    from knm.client.models import ContentItem
    from knm.client.sync import Client


DESCRIPTION = """\
Each document (kind, name and the item's fields) creates its item when none has that name,
changes it when it differs (showing a diff), and leaves it alone when it does not. Only the
fields a document gives are compared and sent. Builtin items are read-only. Write-only fields
(a kubeconfig) are never compared nor printed: they are sent with other changes, or with
--send-write-only. Exit code 1 when any item failed. See docs/cli.md, "Apply and get"."""


class Outcome(msgspec.Struct, kw_only=True):
    """What applying one document did (``--json`` prints these)."""

    kind: str
    name: str
    action: str = ""  # created, configured, unchanged; empty when it failed
    error: str | None = None
    write_only: list[str] = []


class Plan(msgspec.Struct, kw_only=True):
    """The fields of one document that differ from the server's item, and the diff to show."""

    changed: dict[str, Any]
    diff: str
    write_only: list[str] = []


def _default(value: Any) -> bool:
    """Whether a value the document leaves out may be the API's default for it."""
    return value is None or value is False or value == "" or isinstance(value, dict | list)


def pruned(current: Any, desired: Any) -> Any:
    """``current`` without the nested keys ``desired`` leaves out that may hold the API's
    defaults (see the module docstring): those are not differences."""
    if isinstance(current, dict) and isinstance(desired, dict):
        return {
            key: pruned(value, desired.get(key))
            for key, value in current.items()
            if key in desired or not _default(value)
        }
    if isinstance(current, list) and isinstance(desired, list):
        return [
            pruned(value, desired[i] if i < len(desired) else None)
            for i, value in enumerate(current)
        ]
    return current


def plan(
    document: Document, current: dict[str, Any], label: str, *, write_only: bool = False
) -> Plan:
    """How ``document`` differs from ``current`` (the server's item as a document). With
    ``write_only``, a field the server does not show is write-only, not a difference."""
    import difflib

    from knm.cli.remote.documents import dump

    hidden = [k for k in document.fields if write_only and k not in current]
    desired = {k: v for k, v in document.fields.items() if k not in hidden}
    shown = {k: pruned(current.get(k), v) for k, v in desired.items()}
    changed = {k: v for k, v in desired.items() if shown[k] != v}
    lines = difflib.unified_diff(
        dump(shown).splitlines(keepends=True),
        dump(desired).splitlines(keepends=True),
        fromfile=f"{document.ref} ({label})",
        tofile=f"{document.ref} ({document.path})",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return Plan(changed=changed, diff=text if changed else "", write_only=hidden)


def find(api: ContentApi, name: str) -> ContentItem | None:
    """The item named exactly ``name``, with its body, or None."""
    page = 1
    while True:
        found = api.list(q=name, page=page, page_size=100)
        for item in found.items:
            if item.name == name:
                return api.get(item.id)
        if page * 100 >= found.total:
            return None
        page += 1


def apply_item(client: Client, document: Document, dry_run: bool) -> tuple[Outcome, str]:
    """Apply one library document: its outcome and the diff of a change."""
    from knm.cli.remote.content import api_of
    from knm.cli.remote.documents import of_item

    api = api_of(client, document.kind)
    outcome = Outcome(kind=document.kind, name=document.name)
    item = find(api, document.name)
    if item is None:
        if not dry_run:
            fields = dict(document.fields)
            api.create(document.name, fields.pop(api.body_field, None), **fields)
        outcome.action = "created"
        return outcome, ""
    current = of_item(document.kind, item)
    change = plan(document, current, f"server, version {item.version}")
    if not change.changed:
        outcome.action = "unchanged"
        return outcome, ""
    if item.is_builtin:
        outcome.error = "builtin items are read-only; apply a copy under another name"
        return outcome, change.diff
    if not dry_run:
        # Conditional on the version read: someone else's change meanwhile is a 409, not lost.
        api.update(item.id, version=item.version, **change.changed)
    outcome.action = "configured"
    return outcome, change.diff


def _path_problem(provider: str, fields: dict[str, Any], document: Document) -> str | None:
    """Why a kubernetes cluster's ``kubeconfig`` looks like a path where its text belongs."""
    from knm.cli.remote import kubeconfig

    value = fields.get("kubeconfig")
    if provider != "kubernetes" or kubeconfig.path_problem(value, document.where) is None:
        return None
    return f"kubeconfig must hold the kubeconfig's text, and {value!r} looks like a path"


def apply_cluster(
    client: Client, document: Document, dry_run: bool, send_write_only: bool
) -> tuple[Outcome, str]:
    """Apply one cluster document: its outcome and the diff of a change."""
    from knm.cli.remote.documents import of_cluster
    from knm.client import NotFound

    outcome = Outcome(kind="cluster", name=document.name)
    fields = dict(document.fields)
    try:
        cluster = client.cluster(document.name)
    except NotFound:
        provider = fields.pop("provider", None)
        if not provider:
            outcome.error = "a new cluster needs its provider (static, kubernetes, ...)"
            return outcome, ""
        outcome.error = _path_problem(provider, fields, document)
        if outcome.error is not None:
            return outcome, ""
        if not dry_run:
            client.create_cluster(document.name, provider, **fields)
        outcome.action = "created"
        return outcome, ""
    current = of_cluster(cluster)
    change = plan(document, current, "server", write_only=True)
    outcome.write_only = change.write_only
    send = dict(change.changed)
    if send or (send_write_only and change.write_only):
        send.update({name: fields[name] for name in change.write_only})
    if not send:
        outcome.action = "unchanged"
        return outcome, ""
    if "provider" in send:
        send["kind"] = send.pop("provider")  # the server refuses it, saying why
    outcome.error = _path_problem(cluster.kind, send, document)
    if outcome.error is not None:
        return outcome, ""
    if not dry_run:
        client.update_cluster(document.name, **send)
    outcome.action = "configured"
    return outcome, change.diff


def _report(outcome: Outcome, diff: str, dry_run: bool, send_write_only: bool) -> None:
    if outcome.error is not None:
        return
    print(f"{outcome.kind}/{outcome.name} {outcome.action}{' (dry run)' if dry_run else ''}")
    for name in outcome.write_only:
        if outcome.action == "configured" or outcome.action == "created":
            print(f"  {name}: write-only, sent")
        else:
            hint = "" if send_write_only else " (--send-write-only sends it)"
            print(f"  {name}: write-only, not compared, not sent{hint}")
    if diff:
        sys.stdout.write(diff)


@command
def apply(args: argparse.Namespace, client: Client) -> int:
    from knm.cli.remote import documents
    from knm.client import KnmError, TransportError

    found = documents.read(args.file, args.recursive)
    outcomes: list[Outcome] = []
    for document in found:
        try:
            if document.kind == "cluster":
                outcome, diff = apply_cluster(client, document, args.dry_run, args.send_write_only)
            else:
                outcome, diff = apply_item(client, document, args.dry_run)
        except KnmError as exc:
            if isinstance(exc, TransportError) or exc.code == 401:
                raise  # no server, or not logged in: every other item would fail the same way
            outcome, diff = Outcome(kind=document.kind, name=document.name), ""
            outcome.error = describe(exc)
        if outcome.error is not None:
            error(f"{document.ref} ({document.where}): {outcome.error}")
        if not args.json:
            _report(outcome, diff, args.dry_run, args.send_write_only)
        outcomes.append(outcome)
    if args.json:
        emit_json({"dry_run": args.dry_run, "items": outcomes})
    return FAILED if any(o.error is not None for o in outcomes) else OK


def register(subparsers: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "apply",
        parents=[parent],
        help="create or change playbooks, scripts, workflows and clusters from YAML files",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="file",
        action="append",
        required=True,
        metavar="FILE",
        help="a YAML or JSON file of documents, a directory of them, or '-' (stdin); repeatable",
    )
    p.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="also the files of a directory's subdirectories",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument(
        "--send-write-only",
        action="store_true",
        help="send write-only fields (a kubeconfig) even to items otherwise unchanged",
    )
    p.set_defaults(func=apply)
