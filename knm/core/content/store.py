"""SQL over ``content_items`` and ``content_versions``: every kind in one pair of tables.

Ids are per kind (``(kind, id)`` is the key): each kind's next id comes from its row of
``content_ids``, so a fresh install has playbook 1, script 1 and workflow 1."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from knm.core.content.kinds import ContentDraft, ContentItem, ContentKind
from knm.core.errors import Conflict

Conn = asyncpg.Connection | asyncpg.Pool

_META = (
    "id, kind, name, description, extras, category, tags, is_builtin, is_active, version, "
    "created_at, updated_at, created_by, updated_by"
)
_ALL = f"{_META}, body"


class ListQuery(msgspec.Struct, kw_only=True):
    category: str | None = None
    is_builtin: bool | None = None
    is_active: bool | None = None
    tag: str | None = None
    q: str | None = None
    #: Filters on the kind's extras fields (``{"language": "shell"}``).
    extras: dict[str, str] = msgspec.field(default_factory=dict)
    limit: int = 20
    offset: int = 0


def _item(kind: ContentKind, row: asyncpg.Record) -> ContentItem:
    body = row.get("body")
    return ContentItem(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        description=row["description"],
        body=None if body is None else msgspec.convert(body, kind.body_type),
        category=row["category"],
        is_builtin=row["is_builtin"],
        is_active=row["is_active"],
        version=row["version"],
        tags=list(row["tags"]),
        extras=kind.decode_extras(row["extras"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
    )


def versioned_state(kind: ContentKind, body: Any, extras: Any) -> tuple[Any, dict[str, Any]]:
    """The body and versioned extras as plain data: what changes when a new version is made."""
    return (
        msgspec.to_builtins(body),
        {name: msgspec.to_builtins(getattr(extras, name)) for name in kind.versioned},
    )


async def fetch(
    conn: Conn, kind: ContentKind, item_id: int, *, lock: bool = False
) -> ContentItem | None:
    if not 1 <= item_id < 2**63:
        return None
    row = await conn.fetchrow(
        f"SELECT {_ALL} FROM content_items WHERE kind = $1 AND id = $2"
        + (" FOR UPDATE" if lock else ""),
        kind.kind,
        item_id,
    )
    return None if row is None else _item(kind, row)


async def fetch_by_name(conn: Conn, kind: ContentKind, name: str) -> ContentItem | None:
    row = await conn.fetchrow(
        f"SELECT {_ALL} FROM content_items WHERE kind = $1 AND lower(name) = lower($2)",
        kind.kind,
        name,
    )
    return None if row is None else _item(kind, row)


async def name_taken(conn: Conn, kind: ContentKind, name: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM content_items WHERE kind = $1 AND lower(name) = lower($2)",
            kind.kind,
            name,
        )
    )


async def search(
    conn: Conn, kind: ContentKind, query: ListQuery, *, with_body: bool
) -> tuple[int, list[ContentItem]]:
    args: list[Any] = [kind.kind]
    conditions = ["kind = $1"]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        conditions.append(sql.replace("?", f"${len(args)}"))

    if query.category is not None:
        add("category = ?", query.category)
    if query.is_builtin is not None:
        add("is_builtin = ?", query.is_builtin)
    if query.is_active is not None:
        add("is_active = ?", query.is_active)
    if query.tag is not None:
        add("tags @> ARRAY[?::text]", query.tag)
    if query.q:
        found = "strpos(lower({}), lower(?)) > 0"
        add(f"({found.format('name')} OR {found.format('description')})", query.q)
    if query.extras:
        add("extras @> ?", query.extras)
    where = " AND ".join(conditions)
    total = await conn.fetchval(f"SELECT count(*) FROM content_items WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT {_ALL if with_body else _META} FROM content_items WHERE {where} "
        f"ORDER BY lower(name), id LIMIT {int(query.limit)} OFFSET {int(query.offset)}",
        *args,
    )
    return total, [_item(kind, row) for row in rows]


async def _add_version(conn: Conn, kind: ContentKind, item: ContentItem) -> None:
    body, extras = versioned_state(kind, item.body, item.extras)
    await conn.execute(
        "INSERT INTO content_versions "
        "(kind, item_id, version, body, extras, created_by, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        kind.kind,
        item.id,
        item.version,
        body,
        extras,
        item.updated_by,
        item.updated_at,
    )


def _duplicate(kind: ContentKind, name: str) -> Conflict:
    return Conflict(f'{kind.label} "{name}" already exists', message="duplicate name")


async def insert(
    conn: asyncpg.Connection,
    kind: ContentKind,
    draft: ContentDraft,
    *,
    username: str | None,
    is_builtin: bool = False,
) -> ContentItem:
    """Insert an item with the kind's next id, and its version 1 (call inside a transaction:
    the kind's counter row stays locked until it ends, and a failed insert gives its id back)."""
    try:
        row = await conn.fetchrow(
            "WITH next AS (INSERT INTO content_ids (kind, last_id) VALUES ($1, 1) "
            "ON CONFLICT (kind) DO UPDATE SET last_id = content_ids.last_id + 1 "
            "RETURNING last_id) "
            "INSERT INTO content_items (id, kind, name, description, body, extras, category, "
            "tags, is_builtin, is_active, created_by, updated_by) "
            "SELECT next.last_id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10 FROM next "
            f"RETURNING {_ALL}",
            kind.kind,
            draft.name,
            draft.description,
            msgspec.to_builtins(draft.body),
            msgspec.to_builtins(draft.extras) if draft.extras is not None else {},
            draft.category,
            draft.tags,
            is_builtin,
            draft.is_active,
            username,
        )
    except asyncpg.UniqueViolationError:
        raise _duplicate(kind, draft.name) from None
    item = _item(kind, row)
    await _add_version(conn, kind, item)
    return item


async def update(
    conn: asyncpg.Connection,
    kind: ContentKind,
    item_id: int,
    draft: ContentDraft,
    *,
    new_version: bool,
    username: str | None,
) -> ContentItem:
    """Save ``draft`` over the item; with ``new_version`` also bump and keep the version."""
    try:
        row = await conn.fetchrow(
            "UPDATE content_items SET name = $3, description = $4, body = $5, extras = $6, "
            "category = $7, tags = $8, is_active = $9, updated_by = $10, updated_at = now(), "
            "version = version + $11::int "
            f"WHERE kind = $1 AND id = $2 RETURNING {_ALL}",
            kind.kind,
            item_id,
            draft.name,
            draft.description,
            msgspec.to_builtins(draft.body),
            msgspec.to_builtins(draft.extras) if draft.extras is not None else {},
            draft.category,
            draft.tags,
            draft.is_active,
            username,
            1 if new_version else 0,
        )
    except asyncpg.UniqueViolationError:
        raise _duplicate(kind, draft.name) from None
    item = _item(kind, row)
    if new_version:
        await _add_version(conn, kind, item)
    return item


async def delete(conn: Conn, kind: ContentKind, item_id: int) -> None:
    await conn.execute("DELETE FROM content_items WHERE kind = $1 AND id = $2", kind.kind, item_id)


async def versions(
    conn: Conn, kind: ContentKind, item_id: int, *, limit: int, offset: int
) -> tuple[int, list[asyncpg.Record]]:
    total = await conn.fetchval(
        "SELECT count(*) FROM content_versions WHERE kind = $1 AND item_id = $2",
        kind.kind,
        item_id,
    )
    rows = await conn.fetch(
        "SELECT version, created_at, created_by FROM content_versions "
        "WHERE kind = $1 AND item_id = $2 "
        f"ORDER BY version DESC LIMIT {int(limit)} OFFSET {int(offset)}",
        kind.kind,
        item_id,
    )
    return total, rows


async def version(
    conn: Conn, kind: ContentKind, item_id: int, number: int
) -> asyncpg.Record | None:
    if not 1 <= number < 2**31:
        return None
    return await conn.fetchrow(
        "SELECT version, created_at, created_by, body, extras FROM content_versions "
        "WHERE kind = $1 AND item_id = $2 AND version = $3",
        kind.kind,
        item_id,
        number,
    )
