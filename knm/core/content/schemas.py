"""The wire structs of one content kind, built from its ``ContentKind`` (they name its body field
and carry its extras), so OpenAPI documents each kind with its own names."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import msgspec

from knm.core.content.kinds import ContentItem, ContentKind

_REQUEST = {"kw_only": True, "forbid_unknown_fields": True}


class CloneRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``name`` of the copy; by default "<name> (copy)"."""

    name: str | None = None


class KindSchemas(msgspec.Struct, frozen=True):
    create: type[msgspec.Struct]
    update: type[msgspec.Struct]
    item: type[msgspec.Struct]
    list_item: type[msgspec.Struct]
    page: type[msgspec.Struct]
    version_entry: type[msgspec.Struct]
    version_list: type[msgspec.Struct]
    version_detail: type[msgspec.Struct]


def _field(info: msgspec.structs.FieldInfo) -> tuple[str, Any, Any]:
    if info.default is not msgspec.NODEFAULT:
        return (info.name, info.type, info.default)
    if info.default_factory is not msgspec.NODEFAULT:
        return (info.name, info.type, msgspec.field(default_factory=info.default_factory))
    return (info.name, info.type)


def _extras(kind: ContentKind, only: tuple[str, ...] | None = None) -> list[tuple[str, Any, Any]]:
    if kind.extras is None:
        return []
    return [
        _field(f) for f in msgspec.structs.fields(kind.extras) if only is None or f.name in only
    ]


@cache
def schemas_for(kind: ContentKind) -> KindSchemas:
    prefix = kind.type_prefix
    body = (kind.body_field, kind.body_type)
    extras = _extras(kind)
    create = msgspec.defstruct(
        f"{prefix}Create",
        [
            ("name", str),
            body,
            ("description", str, ""),
            ("category", str, "general"),
            ("tags", list[str], msgspec.field(default_factory=list)),
            ("is_active", bool, True),
            *extras,
        ],
        **_REQUEST,
    )
    # PUT changes what it carries; ``version`` there is the optimistic-concurrency check.
    update = msgspec.defstruct(
        f"{prefix}Update",
        [
            (name, annotation | msgspec.UnsetType, msgspec.UNSET)
            for name, annotation in [
                ("name", str),
                ("description", str),
                body,
                ("category", str),
                ("tags", list[str]),
                ("is_active", bool),
                *[(f[0], f[1]) for f in extras],
                ("version", int),
            ]
        ],
        **_REQUEST,
    )
    head = [("id", int), ("name", str), ("description", str)]
    extra_out = [(f[0], f[1]) for f in extras]
    tail = [
        ("category", str),
        ("is_builtin", bool),
        ("is_active", bool),
        ("version", int),
        ("tags", list[str]),
        ("created_at", datetime),
        ("updated_at", datetime),
        ("created_by", str | None),
        ("updated_by", str | None),
    ]
    item = msgspec.defstruct(prefix, [*head, body, *extra_out, *tail], kw_only=True)
    summary = (
        [(f.name, f.type) for f in msgspec.structs.fields(kind.summary_type)]
        if kind.summary_type
        else []
    )
    listed_body = [body] if kind.list_includes_body else []
    list_item = msgspec.defstruct(
        f"{prefix}Summary", [*head, *listed_body, *extra_out, *tail, *summary], kw_only=True
    )
    page = msgspec.defstruct(f"{prefix}List", [("total", int), (kind.plural, list[list_item])])
    version_fields = [("version", int), ("created_at", datetime), ("created_by", str | None)]
    version_entry = msgspec.defstruct(f"{prefix}VersionEntry", version_fields, kw_only=True)
    version_list = msgspec.defstruct(
        f"{prefix}VersionList", [("total", int), ("versions", list[version_entry])]
    )
    versioned = [(f[0], f[1]) for f in _extras(kind, kind.versioned)]
    version_detail = msgspec.defstruct(
        f"{prefix}Version", [*version_fields, body, *versioned], kw_only=True
    )
    return KindSchemas(
        create, update, item, list_item, page, version_entry, version_list, version_detail
    )


def _common(kind: ContentKind, item: ContentItem) -> dict[str, Any]:
    values = {
        "id": item.id,
        "name": item.name,
        "description": item.description,
        "category": item.category,
        "is_builtin": item.is_builtin,
        "is_active": item.is_active,
        "version": item.version,
        "tags": item.tags,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "created_by": item.created_by,
        "updated_by": item.updated_by,
    }
    for name in kind.extra_fields:
        values[name] = getattr(item.extras, name)
    return values


def item_out(kind: ContentKind, item: ContentItem) -> msgspec.Struct:
    return schemas_for(kind).item(**_common(kind, item), **{kind.body_field: item.body})


def list_item_out(kind: ContentKind, item: ContentItem) -> msgspec.Struct:
    values = _common(kind, item)
    if kind.list_includes_body:
        values[kind.body_field] = item.body
    if kind.summary is not None:
        computed = kind.summary(item)
        values.update({name: getattr(computed, name) for name in kind.summary_fields})
    return schemas_for(kind).list_item(**values)
