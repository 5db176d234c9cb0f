"""``knm playbook|script|workflow list|show|create|edit|delete|versions``.

``create -f FILE`` and ``edit -f FILE`` read YAML or JSON: either a whole item (a mapping with
``name``, ``description``, ``category``, ``tags``, and ``content`` or ``definition``), or just
the body (a playbook's YAML, a script's text, a workflow's definition) with ``--name`` and the
other fields as options. ``edit`` without ``-f`` opens the body in ``$EDITOR`` and saves it only
if it changed, conditionally on the version it started from.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.session import OK, UsageError, command, emit_json
from knm.client import NotFound
from knm.client.families import ContentApi

if TYPE_CHECKING:
    from knm.client.sync import Client

ITEM_FIELDS = frozenset(
    {"name", "description", "category", "tags", "is_active", "content", "definition"}
    | {"language", "parameters"}
)
NOUNS = {"playbook": "playbooks", "script": "scripts", "workflow": "workflows"}


def api_of(client: Client, noun: str) -> ContentApi:
    return getattr(client, NOUNS[noun])


def resolve(api: ContentApi, ref: str) -> int:
    """The id of an item given by id or by exact name."""
    if ref.isdigit():
        return int(ref)
    for item in api.list(q=ref, page_size=100).items:
        if item.name == ref:
            return item.id
    label = api.plural[:-1].capitalize()
    raise NotFound(f"{label} {ref!r} not found")


def read_document(path: str) -> tuple[str, Any]:
    """The file's text and its parsed value (None when it is not YAML or JSON)."""
    import yaml

    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return text, yaml.safe_load(text)
    except yaml.YAMLError:
        return text, None


def _fields_from(args: argparse.Namespace, noun: str, path: str, creating: bool) -> dict[str, Any]:
    text, parsed = read_document(path)
    body_field = "definition" if noun == "workflow" else "content"
    if isinstance(parsed, dict) and ITEM_FIELDS & parsed.keys() and "steps" not in parsed:
        fields = dict(parsed)
    elif noun == "workflow":
        if not isinstance(parsed, dict):
            raise UsageError(f"{path}: a workflow definition must be a YAML or JSON mapping")
        fields = {body_field: parsed}
    else:
        fields = {body_field: text}
    for name in ("name", "description", "category", "language"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "tag", None):
        fields["tags"] = args.tag
    if creating and "name" not in fields:
        raise UsageError("the item needs a name: put it in the file or give --name")
    return fields


def _print_item(item: Any, noun: str) -> None:
    values = {
        "id": item.id,
        "name": item.name,
        "description": item.description,
        "category": item.category,
        "version": item.version,
        "builtin": item.is_builtin,
        "active": item.is_active,
        "tags": item.tags,
        "updated": item.updated_at,
        "updated_by": item.updated_by,
    }
    if item.language:
        values["language"] = item.language
    if item.parameters:
        values["parameters"] = [p.get("name") for p in item.parameters]
    render.print_fields(values)
    body = item.body
    if body is not None:
        text = body if isinstance(body, str) else _yaml_dump(body)
        render.out().rule(style="dim")
        print(text.rstrip("\n"))


@command
def list_items(args: argparse.Namespace, client: Client) -> int:
    found = api_of(client, args.noun).list(
        q=args.q, category=args.category, page=args.page, page_size=args.page_size
    )
    if args.json:
        emit_json({"total": found.total, NOUNS[args.noun]: found.items})
        return OK
    columns = ["id", "name", "category", "version", "is_builtin", "updated_at", "description"]
    render.print_table(found.items, columns, found.total)
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item = api.get(resolve(api, args.item))
    if args.json:
        emit_json(item)
    else:
        _print_item(item, args.noun)
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    fields = _fields_from(args, args.noun, args.file, creating=True)
    name = fields.pop("name")
    api = api_of(client, args.noun)
    item = api.create(name, fields.pop(api.body_field, None), **fields)
    if args.json:
        emit_json(item)
    else:
        print(f"created {args.noun} {item.id} ({item.name}), version {item.version}")
    return OK


def _yaml_dump(body: Any) -> str:
    import yaml

    return yaml.safe_dump(body, sort_keys=False)


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def _edit_in_editor(body: Any) -> Any | None:
    """The body after the user's editor, or None when it did not change."""
    as_text = body if isinstance(body, str) else _yaml_dump(body)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(as_text)
    try:
        subprocess.run([*shlex.split(editor), handle.name], check=True)
        edited = Path(handle.name).read_text()
    finally:
        os.unlink(handle.name)
    if edited == as_text:
        return None
    return edited if isinstance(body, str) else _yaml_load(edited)


@command
def edit(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item = api.get(resolve(api, args.item))
    if args.file:
        fields = _fields_from(args, args.noun, args.file, creating=False)
    else:
        fields = {
            name: getattr(args, name)
            for name in ("name", "description", "category")
            if getattr(args, name, None) is not None
        }
        if args.tag:
            fields["tags"] = args.tag
        if not fields:
            new_body = _edit_in_editor(item.body if item.body is not None else "")
            if new_body is None:
                print("no changes")
                return OK
            fields[api.body_field] = new_body
    # Conditional on the version read: someone else's change meanwhile is a 409, not lost.
    updated = api.update(item.id, version=item.version, **fields)
    if args.json:
        emit_json(updated)
    else:
        print(f"updated {args.noun} {updated.id} ({updated.name}), version {updated.version}")
    return OK


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item_id = resolve(api, args.item)
    if not args.yes and sys.stdin.isatty():
        answer = input(f"delete {args.noun} {args.item}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return OK
    api.delete(item_id)
    if args.json:
        emit_json({"deleted": item_id})
    else:
        print(f"deleted {args.noun} {item_id}")
    return OK


@command
def versions(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item_id = resolve(api, args.item)
    if args.show is not None:
        version = api.version(item_id, args.show)
        if args.json:
            emit_json(version)
        else:
            body = version.definition if version.definition is not None else version.content
            text = body if isinstance(body, str) else _yaml_dump(body)
            print(text.rstrip("\n"))
        return OK
    found = api.versions(item_id, page_size=100)
    if args.json:
        emit_json({"total": found.total, "versions": found.items})
    else:
        render.print_table(found.items, ["version", "created_at", "created_by"], found.total)
    return OK


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    for noun in NOUNS:
        sub = nouns[noun]
        p = sub.add_parser("list", parents=[parent], help=f"list {NOUNS[noun]}")
        p.add_argument("-q", help="search in names and descriptions")
        p.add_argument("--category")
        p.add_argument("--page", type=int, default=1)
        p.add_argument("--page-size", type=int, default=20)
        p.set_defaults(func=list_items, noun=noun)

        p = sub.add_parser("show", parents=[parent], help=f"one {noun}, with its body")
        live(p.add_argument("item", help="id or name"), noun)
        p.set_defaults(func=show, noun=noun)

        for name, func in (("create", create), ("edit", edit)):
            text = f"create a {noun} from a file" if name == "create" else f"change a {noun}"
            p = sub.add_parser(name, parents=[parent], help=text)
            if name == "edit":
                live(p.add_argument("item", help="id or name"), noun)
            p.add_argument(
                "-f", "--file", required=name == "create", help="YAML or JSON file ('-': stdin)"
            )
            p.add_argument("--name")
            p.add_argument("--description")
            p.add_argument("--category")
            p.add_argument("--tag", action="append", help="a tag (repeat for more)")
            if noun == "script":
                p.add_argument("--language", choices=["shell", "python"])
            p.set_defaults(func=func, noun=noun)

        p = sub.add_parser("delete", parents=[parent], help=f"delete a {noun}")
        live(p.add_argument("item", help="id or name"), noun)
        p.add_argument("-y", "--yes", action="store_true", help="do not ask")
        p.set_defaults(func=delete, noun=noun)

        p = sub.add_parser("versions", parents=[parent], help=f"a {noun}'s versions")
        live(p.add_argument("item", help="id or name"), noun)
        p.add_argument("--show", type=int, metavar="N", help="print version N's body")
        p.set_defaults(func=versions, noun=noun)
