"""Versioned content (playbooks, scripts, workflows, ...): one implementation for every kind.

A plugin declares a ``ContentKind`` through ``knm_content_kinds`` and gets its routes; it ships
``BuiltinContent`` through ``knm_builtin_content``; its executor loads items with
``get_runnable``.
"""

from __future__ import annotations

from typing import Any

from knm.core.content.builtins import sync_builtins
from knm.core.content.kinds import (
    BuiltinContent,
    ContentDraft,
    ContentItem,
    ContentKind,
)
from knm.core.content.routes import content_routes, kind_routes
from knm.core.content.schemas import schemas_for
from knm.core.content.service import get_by_name, get_pinned, get_runnable

__all__ = [
    "BuiltinContent",
    "ContentDraft",
    "ContentItem",
    "ContentKind",
    "content_routes",
    "get_by_name",
    "get_pinned",
    "get_runnable",
    "kind_routes",
    "routes_for",
    "schemas_for",
    "sync_builtins",
]


def routes_for(registry: Any) -> list[Any]:
    """The routes of every content kind in ``registry`` (a ``knm.core.registry.Registry``)."""
    return content_routes(list(registry.content_kinds.values()))
