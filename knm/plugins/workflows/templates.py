"""Rendering ``{{ params.name }}`` and ``{{ steps.<id>.<key> }}`` in step fields.

Only these two namespaces are rendered; every other ``{{ … }}`` (Ansible's own Jinja in
``extra_vars``) passes through untouched. Values rendered into a ``command`` are shell-quoted, so
a parameter can never add shell syntax.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

PATTERN = re.compile(r"\{\{\s*(params|steps)\.([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*\}\}")
SHELL_FIELDS = frozenset({"command"})


class RenderError(Exception):
    pass


def references(value: Any) -> Iterator[tuple[str, str]]:
    """Every (namespace, name) a value refers to."""
    if isinstance(value, str):
        for match in PATTERN.finditer(value):
            yield match.group(1), match.group(2)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _lookup(
    namespace: str, name: str, params: dict[str, str], steps: dict[str, dict[str, Any]]
) -> str:
    if namespace == "params":
        if name not in params:
            raise RenderError(f"parameter {name!r} has no value")
        return str(params[name])
    step_id, _, key = name.partition(".")
    if step_id not in steps:
        raise RenderError(f"step {step_id!r} has no result yet")
    value: Any = steps[step_id]
    for part in key.split(".") if key else []:
        if not isinstance(value, dict) or part not in value:
            raise RenderError(f"step {step_id!r} has no result {key!r}")
        value = value[part]
    return value if isinstance(value, str) else str(value)


def render(
    value: Any, params: dict[str, str], steps: dict[str, dict[str, Any]], *, shell: bool = False
) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            text = _lookup(match.group(1), match.group(2), params, steps)
            return shlex.quote(text) if shell else text

        return PATTERN.sub(substitute, value)
    if isinstance(value, dict):
        return {
            k: render(v, params, steps, shell=shell or k in SHELL_FIELDS) for k, v in value.items()
        }
    if isinstance(value, list):
        return [render(v, params, steps, shell=shell) for v in value]
    return value
