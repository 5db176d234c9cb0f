"""The documents ``knm apply -f`` reads and ``knm get -o yaml`` prints: one item each, with a
``kind`` (``playbook``, ``script``, ``workflow``, ``cluster``; ``Playbook`` too), a ``name``,
and the item's writable fields as the API takes them.

A cluster's own ``kind`` (its provider: ``static``, ``kubernetes``) is ``provider`` here, since
``kind`` says what the document is. Read-only fields (``id``, ``version``, ``created_at``, ...)
are ignored, so a document that carries them still applies.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from knm.cli.remote import yaml_input
from knm.cli.remote.session import UsageError, as_sent

if TYPE_CHECKING:
    from knm.client.models import Cluster, ContentItem

#: Every kind a document may have, by its name and plural (``knm get playbooks``).
KINDS = ("playbook", "script", "workflow", "cluster")
LIBRARY = ("playbook", "script", "workflow")
#: Fields the server sets: a document may carry them (``knm playbook show -o yaml``), apply
#: leaves them out.
READ_ONLY = frozenset(
    {"id", "version", "is_builtin", "created_at", "updated_at", "created_by", "updated_by"}
    | {"step_count"}
)
#: A library item's writable fields, in the order ``knm get`` prints them; the body comes last.
LIBRARY_FIELDS = ("description", "category", "tags", "is_active", "language", "parameters")
#: A cluster's common fields beside its provider's, as ``knm get`` prints them.
CLUSTER_FIELDS = ("description", "bastion", "default_credential_id")
#: File names a directory gives to ``apply -f DIR``.
SUFFIXES = (".yaml", ".yml", ".json")


class Document(msgspec.Struct, kw_only=True):
    """One item to apply: where it was read (``path``, ``index`` from 1 in its file), its kind
    and name, and the fields it sets (read-only ones left out)."""

    path: str
    index: int
    kind: str
    name: str
    fields: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def where(self) -> str:
        return f"{self.path}, document {self.index}"


def kind_of(text: str) -> str | None:
    """The kind a document's ``kind`` or ``knm get``'s argument names (``Playbook``,
    ``playbooks``), or None."""
    word = text.lower()
    word = word[:-1] if word.endswith("s") and word[:-1] in KINDS else word
    return word if word in KINDS else None


def files_of(path: str, recursive: bool) -> list[Path]:
    """The files ``-f path`` means: the file itself, or a directory's YAML and JSON files,
    sorted (and those of its subdirectories with ``recursive``)."""
    given = Path(path)
    if not given.is_dir():
        return [given]
    found = given.rglob("*") if recursive else given.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix in SUFFIXES)


def _loaded(path: str, text: str) -> list[Any]:
    values = yaml_input.load_all(text, path)
    # A top-level list (``knm get -o json`` of several items) holds one document per entry.
    flat: list[Any] = []
    for value in values:
        if isinstance(value, list):
            flat.extend(value)
        elif value is not None:  # an empty document (a trailing ``---``) is nothing
            flat.append(value)
    return flat


def parse(path: str, index: int, value: Any) -> Document:
    """One document as read, or a UsageError naming its file and index."""
    where = f"{path}, document {index}"
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping with kind, name and the item's fields")
    given = str(value.get("kind") or "")
    kind = kind_of(given)
    if kind is None:
        known = ", ".join(KINDS)
        raise UsageError(f"{where}: kind {given!r} is not one of {known}")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: the {kind} needs a name")
    fields = {k: v for k, v in value.items() if k not in READ_ONLY and k not in ("kind", "name")}
    if kind == "cluster" and not isinstance(fields.get("provider", ""), str):
        raise UsageError(f"{where}: provider is the cluster's kind (static, kubernetes, ...)")
    return Document(path=path, index=index, kind=kind, name=name, fields=fields)


def read(paths: list[str], recursive: bool) -> list[Document]:
    """Every document of the files ``-f`` names, in order; ``-`` reads stdin. A file that
    cannot be read or parsed is a UsageError before anything is applied."""
    documents: list[Document] = []
    for given in paths:
        if given == "-":
            named = [("-", yaml_input.read_text("-"))]
        else:
            files = files_of(given, recursive)
            if not files:
                raise UsageError(f"{given}: no .yaml, .yml or .json files in it")
            named = [(str(file), file.read_text()) for file in files]
        for path, text in named:
            for index, value in enumerate(_loaded(path, text), start=1):
                documents.append(parse(path, index, value))
    seen: dict[str, Document] = {}
    for document in documents:
        if document.ref in seen:
            first = seen[document.ref]
            raise UsageError(f"{document.where}: {document.ref} is also in {first.where}")
        seen[document.ref] = document
    return documents


def of_item(kind: str, item: ContentItem) -> dict[str, Any]:
    """A library item as a document ``knm apply`` takes back unchanged."""
    document: dict[str, Any] = {"kind": kind, "name": item.name}
    for name in LIBRARY_FIELDS:
        value = getattr(item, name)
        if value is not None:
            document[name] = value
    body_field = "definition" if kind == "workflow" else "content"
    document[body_field] = item.body
    return document


def of_cluster(cluster: Cluster) -> dict[str, Any]:
    """A cluster as a document ``knm apply`` takes back unchanged: its common fields and its
    provider's public ones (secrets are never in the API's answer, so never here)."""
    shown = as_sent(cluster)
    document: dict[str, Any] = {"kind": "cluster", "name": cluster.name}
    document["provider"] = shown.pop("kind")
    for name in CLUSTER_FIELDS:
        document[name] = shown.pop(name, None)
    for name, value in shown.items():
        if name not in READ_ONLY and name != "name":
            document[name] = value
    return document


@functools.cache
def _dumper() -> Any:
    """A YAML dumper that writes multi-line strings (a playbook, a script) as ``|`` blocks, so
    they read and diff line by line."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def dump(value: Any) -> str:
    """``value`` as YAML, keys in order, multi-line strings as blocks."""
    import yaml

    data = msgspec.to_builtins(value)
    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, allow_unicode=True)


def dump_all(values: list[Any]) -> str:
    """Several documents, ``---`` between them."""
    return "---\n".join(dump(value) for value in values)
