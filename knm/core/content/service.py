"""Content operations with their rules: create, merge-update, delete, clone, and the look-ups
executors use (``get_runnable``, ``get_by_name``)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.content import store
from knm.core.content.kinds import ContentDraft, ContentItem, ContentKind
from knm.core.errors import Conflict, ErrorDetail, Invalid, NotFound, PayloadTooLarge

if TYPE_CHECKING:
    from knm.core.state import Knm

MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_LABEL = 64
MAX_TAGS = 50


def normalized(draft: ContentDraft) -> ContentDraft:
    tags = list(dict.fromkeys(tag.strip() for tag in draft.tags))
    return msgspec.structs.replace(
        draft, name=draft.name.strip(), category=draft.category.strip(), tags=tags
    )


def _nul_fields(draft: ContentDraft) -> list[str]:
    # PostgreSQL text and jsonb cannot hold U+0000; say so instead of failing on insert.
    fields = {
        "name": draft.name,
        "description": draft.description,
        "category": draft.category,
        "tags": draft.tags,
        "body": draft.body,
        "extras": draft.extras,
    }
    return [name for name, value in fields.items() if b"\\u0000" in msgspec.json.encode(value)]


def base_problems(kind: ContentKind, draft: ContentDraft) -> list[str]:
    problems = []
    if not draft.name:
        problems.append("name must not be empty")
    elif len(draft.name) > MAX_NAME:
        problems.append(f"name must be at most {MAX_NAME} characters")
    if len(draft.description) > MAX_DESCRIPTION:
        problems.append(f"description must be at most {MAX_DESCRIPTION} characters")
    if not draft.category:
        problems.append("category must not be empty")
    elif len(draft.category) > MAX_LABEL:
        problems.append(f"category must be at most {MAX_LABEL} characters")
    if len(draft.tags) > MAX_TAGS:
        problems.append(f"at most {MAX_TAGS} tags are allowed")
    if any(not tag or len(tag) > MAX_LABEL for tag in draft.tags):
        problems.append(f"every tag must have 1 to {MAX_LABEL} characters")
    for name in _nul_fields(draft):
        problems.append(
            f"{kind.body_field if name == 'body' else name} must not contain NUL characters"
        )
    return problems


def check_size(kind: ContentKind, body: Any) -> None:
    if kind.max_body_bytes is None:
        return
    size = kind.body_size(body)
    if size > kind.max_body_bytes:
        raise PayloadTooLarge(
            f"{kind.body_field} is {size} bytes; at most {kind.max_body_bytes} are allowed"
        )


_BASE_FIELDS = ("name", "description", "category", "tags")


def detail_of(kind: ContentKind, problem: str | ErrorDetail) -> ErrorDetail:
    """A problem with its place: a sentence goes to the field it names first (``name must not
    be empty``; ``every tag …`` is ``tags``), else to the kind's body field."""
    if isinstance(problem, ErrorDetail):
        return problem
    first = problem.split(" ", 1)[0].rstrip(":")
    fields = (*_BASE_FIELDS, kind.body_field, *kind.extra_fields)
    if first in fields:
        return ErrorDetail(field=first, message=problem)
    if " tag" in f" {problem}":
        return ErrorDetail(field="tags", message=problem)
    return ErrorDetail(field=kind.body_field, message=problem)


def refuse(kind: ContentKind, problems: list[str | ErrorDetail]) -> Invalid:
    """The 422 listing every problem, in ``error`` and with its place in ``details``."""
    details = [detail_of(kind, problem) for problem in problems]
    return Invalid("; ".join(d.message for d in details), details=details)


async def check(knm: Knm, kind: ContentKind, draft: ContentDraft) -> ContentDraft:
    """``draft`` normalized, or 413/422 with every problem found."""
    check_size(kind, draft.body)
    draft = normalized(draft)
    problems: list[str | ErrorDetail] = list(base_problems(kind, draft))
    if kind.validate is not None and not problems:
        found = kind.validate(knm, draft)
        if inspect.isawaitable(found):
            found = await found
        problems.extend(found or [])
    if problems:
        raise refuse(kind, problems)
    return draft


def draft_from_create(kind: ContentKind, data: msgspec.Struct) -> ContentDraft:
    extras = None
    if kind.extras is not None:
        extras = kind.extras(**{name: getattr(data, name) for name in kind.extra_fields})
    return ContentDraft(
        kind=kind.kind,
        id=None,
        name=data.name,  # type: ignore[attr-defined]
        description=data.description,  # type: ignore[attr-defined]
        body=getattr(data, kind.body_field),
        category=data.category,  # type: ignore[attr-defined]
        tags=list(data.tags),  # type: ignore[attr-defined]
        is_active=data.is_active,  # type: ignore[attr-defined]
        extras=extras,
    )


def merged(kind: ContentKind, item: ContentItem, data: msgspec.Struct) -> ContentDraft:
    """The item with the fields ``data`` carries (the others stay as they are)."""

    def given(name: str, current: Any) -> Any:
        value = getattr(data, name)
        return current if value is msgspec.UNSET else value

    extras = item.extras
    if kind.extras is not None:
        changes = {
            name: getattr(data, name)
            for name in kind.extra_fields
            if getattr(data, name) is not msgspec.UNSET
        }
        extras = msgspec.structs.replace(item.extras, **changes)
    return ContentDraft(
        kind=kind.kind,
        id=item.id,
        name=given("name", item.name),
        description=given("description", item.description),
        body=given(kind.body_field, item.body),
        category=given("category", item.category),
        tags=list(given("tags", item.tags)),
        is_active=given("is_active", item.is_active),
        extras=extras,
    )


def read_only(kind: ContentKind, item: ContentItem) -> Conflict:
    return Conflict(
        f'{kind.label} "{item.name}" is builtin and read-only; clone it to make an editable copy',
        message="builtin content is read-only",
    )


async def load(conn: Any, kind: ContentKind, item_id: int, *, lock: bool = False) -> ContentItem:
    item = await store.fetch(conn, kind, item_id, lock=lock)
    if item is None:
        raise NotFound(kind.not_found(item_id))
    return item


async def create(
    knm: Knm, conn: Any, kind: ContentKind, draft: ContentDraft, username: str
) -> ContentItem:
    draft = await check(knm, kind, draft)
    async with conn.transaction():
        return await store.insert(conn, kind, draft, username=username)


async def update(
    knm: Knm, conn: Any, kind: ContentKind, item_id: int, data: msgspec.Struct, username: str
) -> ContentItem:
    body = getattr(data, kind.body_field)
    if body is not msgspec.UNSET:
        check_size(kind, body)
    async with conn.transaction():
        item = await load(conn, kind, item_id, lock=True)
        if item.is_builtin:
            raise read_only(kind, item)
        expected = data.version  # type: ignore[attr-defined]
        if expected is not msgspec.UNSET and expected != item.version:
            raise Conflict(
                f"version mismatch: current is {item.version}", message="version mismatch"
            )
        draft = await check(knm, kind, merged(kind, item, data))
        # Every successful PUT answers version + 1 (the wire contract), whatever it changed.
        return await store.update(conn, kind, item_id, draft, new_version=True, username=username)


async def delete(conn: Any, kind: ContentKind, item_id: int) -> ContentItem:
    async with conn.transaction():
        item = await load(conn, kind, item_id, lock=True)
        if item.is_builtin:
            raise read_only(kind, item)
        await store.delete(conn, kind, item_id)
    return item


async def _copy_name(conn: Any, kind: ContentKind, name: str) -> str:
    candidate = f"{name} (copy)"
    number = 2
    while await store.name_taken(conn, kind, candidate):
        candidate = f"{name} (copy {number})"
        number += 1
    return candidate


async def clone(
    conn: Any, kind: ContentKind, item_id: int, name: str | None, username: str
) -> ContentItem:
    source = await load(conn, kind, item_id)
    draft = ContentDraft(
        kind=kind.kind,
        id=None,
        name=name if name is not None else await _copy_name(conn, kind, source.name),
        description=source.description,
        body=source.body,
        category=source.category,
        tags=source.tags,
        is_active=source.is_active,
        extras=source.extras,
    )
    # The source already passed the kind's rules; only the new name needs checking.
    draft = normalized(draft)
    problems = base_problems(kind, draft)
    if problems:
        raise refuse(kind, list(problems))
    async with conn.transaction():
        return await store.insert(conn, kind, draft, username=username)


async def get_by_name(knm: Knm, kind: str | ContentKind, name: str) -> ContentItem:
    """The item of ``kind`` named ``name`` (case-insensitive), or NotFound."""
    spec = knm.registry.content_kind(kind)
    item = await store.fetch_by_name(knm.pool, spec, name)
    if item is None:
        raise NotFound(f'{spec.label} "{name}" not found')
    return item


async def get_runnable(knm: Knm, kind: str | ContentKind, item_id: int) -> ContentItem:
    """The item to execute: NotFound ("Playbook ID 9 not found"), or Conflict when inactive."""
    spec = knm.registry.content_kind(kind)
    item = await load(knm.pool, spec, item_id)
    if not item.is_active:
        raise Conflict(f'{spec.label} "{item.name}" is inactive', message="content is inactive")
    return item


async def get_pinned(knm: Knm, kind: str | ContentKind, item_id: int, version: int) -> ContentItem:
    """The item as it was at ``version``: what a task created with that version runs, whatever
    was saved since (NotFound when the item is gone)."""
    spec = knm.registry.content_kind(kind)
    item = await load(knm.pool, spec, item_id)
    if item.version == version:
        return item
    row = await store.version(knm.pool, spec, item_id, version)
    if row is None:
        raise NotFound(f"{spec.label} ID {item_id} has no version {version}")
    body = row["body"] if spec.body_type is str else msgspec.convert(row["body"], spec.body_type)
    return msgspec.structs.replace(
        item, body=body, extras=spec.decode_extras(row["extras"]), version=version
    )
