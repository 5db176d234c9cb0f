"""Builtin workflows, shipped as package data (``builtin/*.json``)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from knm.core.content import BuiltinContent


class _Shipped(msgspec.Struct, kw_only=True):
    name: str
    description: str = ""
    category: str = "maintenance"
    tags: list[str] = msgspec.field(default_factory=list)
    definition: dict[str, object]


#: Installed first, so on a fresh install workflow 1 is read-only (client examples run
#: "workflow 1"); the rest follow by file name.
FIRST = ("node_diagnostics.json",)


def _order(path: Path) -> tuple[int, str]:
    return (FIRST.index(path.name) if path.name in FIRST else len(FIRST), path.name)


def builtin_workflows() -> list[BuiltinContent]:
    found = []
    for path in sorted(Path(__file__).with_name("builtin").glob("*.json"), key=_order):
        shipped = msgspec.json.decode(path.read_bytes(), type=_Shipped)
        found.append(
            BuiltinContent(
                kind="workflow",
                name=shipped.name,
                description=shipped.description,
                category=shipped.category,
                tags=shipped.tags,
                body=shipped.definition,
            )
        )
    return found
