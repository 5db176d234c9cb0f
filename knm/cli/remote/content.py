"""``knm playbook|script|workflow list|show|create|edit|delete|versions|diff|rollback``.

``create -f FILE`` and ``edit -f FILE`` read YAML or JSON: either a whole item (a mapping with
``name``, ``description``, ``category``, ``tags``, and ``content`` or ``definition``), or just
the body (a playbook's YAML, a script's text, a workflow's definition) with ``--name`` and the
other fields as options. ``edit`` without ``-f`` opens the body in ``$EDITOR`` and saves it only
if it changed, conditionally on the version it started from; a body the server refuses reopens
with the errors on top. ``diff V1 [V2]`` shows what changed between versions, ``rollback V``
makes version V's body the current one (as a new version).
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
from knm.cli.remote import render, yaml_input
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    delete_asked,
    done,
    output_parent,
    reference,
)
from knm.client import BadRequest, KnmError, NotFound, ValidationFailed
from knm.client.families import ContentApi

if TYPE_CHECKING:
    from knm.client.sync import Client

ITEM_FIELDS = frozenset(
    {"name", "description", "category", "tags", "is_active", "content", "definition"}
    | {"language", "parameters"}
)
NOUNS = {"playbook": "playbooks", "script": "scripts", "workflow": "workflows"}
COLUMNS = ("id", "name", "category", "version", "is_builtin", "updated_at", "description")
WIDE = ("tags", "is_active", "updated_by", "created_at")
#: Each noun's kind, with what ``-o wide`` adds for it alone.
KINDS = {
    "playbook": render.Kind("playbook", "id", COLUMNS, WIDE),
    "script": render.Kind("script", "id", COLUMNS, (*WIDE, "language")),
    "workflow": render.Kind("workflow", "id", COLUMNS, (*WIDE, "step_count")),
}
VERSION = render.Kind("version", "version", ("version", "created_at", "created_by"))


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


def _fields_from(args: argparse.Namespace, noun: str, path: str, creating: bool) -> dict[str, Any]:
    text = yaml_input.read_text(path)
    try:
        parsed = yaml_input.load(text, path)
    except yaml_input.NotYaml:
        if noun == "workflow":
            raise
        parsed = None  # a playbook's or a script's body, which the server checks as it is
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
        render.rule()
        print(text.rstrip("\n"))


@command
def list_items(args: argparse.Namespace, client: Client) -> int:
    found = api_of(client, args.noun).list(
        q=args.q, category=args.category, page=args.page, page_size=args.page_size
    )
    document = {"total": found.total, NOUNS[args.noun]: found.items}
    render.print_list(args, KINDS[args.noun], found.items, document, found.total)
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item = api.get(resolve(api, args.item))
    render.print_object(args, KINDS[args.noun], item, lambda wide: _print_item(item, args.noun))
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    fields = _fields_from(args, args.noun, args.file, creating=True)
    name = fields.pop("name")
    api = api_of(client, args.noun)
    item = api.create(name, fields.pop(api.body_field, None), **fields)
    return done(args, item, f"created {args.noun} {item.id} ({item.name}), version {item.version}")


def _yaml_dump(body: Any) -> str:
    import yaml

    return yaml.safe_dump(body, sort_keys=False)


#: The first line of the note ``edit`` puts above the body when the server refused it; the note
#: (this line and the ``#`` lines after it) is taken off again before the body is sent.
ERROR_NOTE = "# knm: the server refused this edit; fix it and save, or save unchanged to give up."


def _run_editor(text: str) -> str:
    """``text`` after the user's ``$VISUAL``/``$EDITOR`` (vi), as they saved it."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    try:
        subprocess.run([*shlex.split(editor), handle.name], check=True)
        return Path(handle.name).read_text()
    finally:
        os.unlink(handle.name)


def _with_note(text: str, problems: list[str]) -> str:
    # No trailing blanks: a YAML parser's caret line under an empty source line is all spaces.
    lines = [ERROR_NOTE, *(f"#   {line}".rstrip() for p in problems for line in p.splitlines())]
    return "\n".join([*lines, "#", text])


def _without_note(text: str) -> str:
    if not text.startswith(ERROR_NOTE):
        return text
    lines = text.split("\n")
    end = 1
    while end < len(lines) and lines[end].startswith("#"):
        end += 1
    return "\n".join(lines[end:])


def _problems(exc: KnmError) -> list[str]:
    """What was wrong, one line each, at its line and column when the server says where."""
    found = [
        f"line {d.line}{f', column {d.column}' if d.column else ''}: {d.message}"
        if d.line
        else f"{d.field}: {d.message}"
        for d in exc.details or []
    ]
    return found or [exc.error or exc.message]


def _edit_body(api: ContentApi, item: Any) -> Any | None:
    """The body edited in the user's editor and saved (the updated item), or None when the user
    changed nothing. A body the server refuses (bad YAML, a shell syntax error, an invalid
    workflow) reopens with the errors on top, as ``kubectl edit`` does; saving it unchanged
    gives up, keeping the edit in a file."""
    body = item.body if item.body is not None else ""
    original = body if isinstance(body, str) else _yaml_dump(body)
    shown = original
    while True:
        edited = _run_editor(shown)
        if edited == shown and shown != original:
            kept = Path(tempfile.mkstemp(prefix=f"knm-{item.name}-", suffix=".yaml")[1])
            kept.write_text(_without_note(edited))
            raise UsageError(f"edit not saved; what you wrote is in {kept}")
        text = _without_note(edited)
        if text == original:
            return None
        try:
            new_body = text if isinstance(body, str) else yaml_input.load(text, "the definition")
            if not isinstance(body, str) and not isinstance(new_body, dict):
                raise ValidationFailed("a workflow definition must be a YAML mapping")
            # Conditional on the version read: another change meanwhile is a 409, not lost.
            return api.update(item.id, version=item.version, **{api.body_field: new_body})
        except (ValidationFailed, BadRequest) as exc:
            shown = _with_note(text, _problems(exc))
        except yaml_input.NotYaml as exc:
            shown = _with_note(text, [exc.note])


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
    if fields:
        # Conditional on the version read: someone else's change meanwhile is a 409, not lost.
        updated = api.update(item.id, version=item.version, **fields)
    else:
        updated = _edit_body(api, item)
        if updated is None:
            print("no changes")
            return OK
    return done(
        args,
        updated,
        f"updated {args.noun} {updated.id} ({updated.name}), version {updated.version}",
    )


def _version_text(api: ContentApi, item_id: int, version: int | None) -> tuple[str, int]:
    """A version's body as text (the item's current one for None), and its number."""
    if version is None:
        current = api.get(item_id)
        body, version = current.body, current.version
    else:
        found = api.version(item_id, version)
        body = found.definition if found.definition is not None else found.content
    text = "" if body is None else body if isinstance(body, str) else _yaml_dump(body)
    return text, version


@command
def diff(args: argparse.Namespace, client: Client) -> int:
    import difflib

    api = api_of(client, args.noun)
    item_id = resolve(api, args.item)
    old, old_version = _version_text(api, item_id, args.old)
    new, new_version = _version_text(api, item_id, args.new)
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{args.noun} {args.item} version {old_version}",
        tofile=f"{args.noun} {args.item} version {new_version}",
    )
    sys.stdout.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
    return OK


@command
def rollback(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item = api.get(resolve(api, args.item))
    old = api.version(item.id, args.version)
    fields: dict[str, Any] = {
        api.body_field: old.definition if old.definition is not None else old.content
    }
    if old.language is not None:
        fields["language"] = old.language
    if old.parameters is not None:
        fields["parameters"] = old.parameters
    if all(getattr(item, name) == value for name, value in fields.items()):
        # Every successful PUT is a new version (the contract): an identical one is noise.
        return done(
            args,
            item,
            f"{args.noun} {item.id} ({item.name}) already has version {old.version}'s body",
        )
    # Conditional on the version read, like edit: a change meanwhile is a 409, not undone.
    updated = api.update(item.id, version=item.version, **fields)
    return done(
        args,
        updated,
        f"rolled {args.noun} {updated.id} ({updated.name}) back to version {old.version}'s "
        f"body, as version {updated.version}",
    )


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item_id = resolve(api, args.item)
    return delete_asked(args, args.noun, args.item, item_id, lambda: api.delete(item_id))


@command
def versions(args: argparse.Namespace, client: Client) -> int:
    api = api_of(client, args.noun)
    item_id = resolve(api, args.item)
    if args.show is not None:
        version = api.version(item_id, args.show)

        def body(wide: bool) -> None:
            text = version.definition if version.definition is not None else version.content
            text = text if isinstance(text, str) else _yaml_dump(text)
            print(text.rstrip("\n"))

        render.print_object(args, VERSION, version, body)
        return OK
    found = api.versions(item_id, page_size=100)
    document = {"total": found.total, "versions": found.items}
    render.print_list(args, VERSION, found.items, document, found.total)
    return OK


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    listing = [parent, output_parent()]
    for noun in NOUNS:
        sub = nouns[noun]
        p = sub.add_parser("list", parents=listing, help=f"list {NOUNS[noun]}")
        p.add_argument("-q", help="search in names and descriptions")
        p.add_argument("--category")
        p.add_argument("--page", type=int, default=1)
        p.add_argument("--page-size", type=int, default=20)
        p.set_defaults(func=list_items, noun=noun)

        p = sub.add_parser("show", parents=listing, help=f"one {noun}, with its body")
        live(p.add_argument("item", type=reference(noun), help="id or name"), noun)
        p.set_defaults(func=show, noun=noun)

        for name, func in (("create", create), ("edit", edit)):
            text = f"create a {noun} from a file" if name == "create" else f"change a {noun}"
            p = sub.add_parser(name, parents=[parent], help=text)
            if name == "edit":
                live(p.add_argument("item", type=reference(noun), help="id or name"), noun)
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
        live(p.add_argument("item", type=reference(noun), help="id or name"), noun)
        p.add_argument("-y", "--yes", action="store_true", help="do not ask")
        p.set_defaults(func=delete, noun=noun)

        p = sub.add_parser("versions", parents=listing, help=f"a {noun}'s versions")
        live(p.add_argument("item", type=reference(noun), help="id or name"), noun)
        p.add_argument("--show", type=int, metavar="N", help="print version N's body")
        p.set_defaults(func=versions, noun=noun)

        p = sub.add_parser(
            "diff", parents=[parent], help=f"what changed between two versions of a {noun}"
        )
        p.add_argument("item", type=reference(noun), help="id or name")
        p.add_argument("old", type=int, metavar="V1", help="the older version")
        p.add_argument(
            "new", type=int, nargs="?", metavar="V2", help="the newer version (default: current)"
        )
        p.set_defaults(func=diff, noun=noun)

        p = sub.add_parser(
            "rollback", parents=[parent], help=f"make an earlier version's body the {noun}'s"
        )
        p.add_argument("item", type=reference(noun), help="id or name")
        p.add_argument("version", type=int, metavar="V", help="the version to go back to")
        p.set_defaults(func=rollback, noun=noun)
