"""Plugins meet only through the core: no module of one plugin imports another plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import knm.plugins

PLUGINS = Path(knm.plugins.__file__).parent


def _imported(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module == "knm.plugins":
                names.extend(f"knm.plugins.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_a_plugin_imports_another_plugin() -> None:
    crossings = []
    for path in sorted(PLUGINS.rglob("*.py")):
        parts = path.relative_to(PLUGINS).parts
        if len(parts) < 2:
            continue
        own = parts[0]
        for name in _imported(ast.parse(path.read_text(), str(path))):
            pieces = name.split(".")
            if pieces[:2] == ["knm", "plugins"] and len(pieces) > 2 and pieces[2] != own:
                crossings.append(f"{path.relative_to(PLUGINS)} imports {name}")
    assert crossings == []
