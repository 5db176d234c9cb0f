"""Builtin content: what plugins ship through ``knm_builtin_content``, upserted at startup."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core import db
from knm.core.content import service, store
from knm.core.content.kinds import (
    BuiltinContent,
    ContentDraft,
    ContentItem,
    ContentKind,
)
from knm.core.manager import collect

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.content")

#: Replicas starting together sync one at a time.
SYNC_LOCK_KEY = db.MIGRATION_LOCK_KEY + 5


def _draft(kind: ContentKind, shipped: BuiltinContent) -> ContentDraft:
    body = msgspec.convert(msgspec.to_builtins(shipped.body), kind.body_type)
    extras = None
    if kind.extras is not None:
        extras = msgspec.convert(msgspec.to_builtins(shipped.extras or {}), kind.extras)
    return service.normalized(
        ContentDraft(
            kind=kind.kind,
            id=None,
            name=shipped.name,
            description=shipped.description,
            body=body,
            category=shipped.category,
            tags=list(shipped.tags),
            is_active=shipped.is_active,
            extras=extras,
        )
    )


def _meta(item: ContentItem | ContentDraft) -> tuple[Any, ...]:
    return (item.name, item.description, item.category, item.tags, item.is_active)


async def _upsert(conn: Any, kind: ContentKind, draft: ContentDraft) -> None:
    current = await store.fetch_by_name(conn, kind, draft.name)
    if current is None:
        await store.insert(conn, kind, draft, username=None, is_builtin=True)
        return
    if not current.is_builtin:
        # Never overwrite a user's item; the builtin waits until that name is free.
        log.warning(
            "builtin %s %r not installed: a user-made one has that name", kind.kind, draft.name
        )
        return
    new_version = store.versioned_state(kind, draft.body, draft.extras) != store.versioned_state(
        kind, current.body, current.extras
    )
    same_meta = _meta(current) == _meta(draft)
    if new_version or not same_meta:
        await store.update(conn, kind, current.id, draft, new_version=new_version, username=None)


async def sync_builtins(knm: Knm, conn: Any = None) -> None:
    """Upsert every plugin's builtin content by ``(kind, name)``: ids stay, a changed body makes
    a new version. Items a plugin no longer ships are left in place.

    Runs on ``conn`` when given (startup passes the connection it already holds), else on a
    connection from the pool.
    """
    if conn is None:
        async with knm.pool.acquire() as own:
            await _sync(knm, own)
    else:
        await _sync(knm, conn)


async def _sync(knm: Knm, conn: Any) -> None:
    kinds = knm.registry.content_kinds
    shipped: list[BuiltinContent] = collect(knm.pm.hook.knm_builtin_content())
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SYNC_LOCK_KEY)
        for item in shipped:
            kind = kinds.get(item.kind)
            if kind is None:
                log.warning("builtin %r has unknown content kind %r; skipped", item.name, item.kind)
                continue
            try:
                draft = _draft(kind, item)
            except msgspec.ValidationError as exc:
                log.error("builtin %s %r does not fit its kind: %s", item.kind, item.name, exc)
                continue
            problems = service.base_problems(kind, draft)
            if problems:
                log.error("builtin %s %r skipped: %s", item.kind, item.name, "; ".join(problems))
                continue
            await _upsert(conn, kind, draft)
