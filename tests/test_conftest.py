"""The suite's table of slow tests (``tests/conftest.py``) names only what exists: an entry
left behind by a rename would quietly put a slow test back into the quick run."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).parent


def _table() -> tuple[dict[str, str], dict[str, str]]:
    spec = importlib.util.spec_from_file_location("knm_suite_conftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SLOW_MODULES, module.SLOW_TESTS


def test_every_slow_module_exists_and_says_why() -> None:
    modules, _ = _table()
    for prefix, reason in modules.items():
        assert (ROOT / prefix).exists(), prefix
        assert reason.strip(), prefix


def test_every_slow_test_is_a_test_function_of_its_module_and_says_why() -> None:
    _, tests = _table()
    for entry, reason in tests.items():
        path, name = entry.split("::")
        tree = ast.parse((ROOT / path).read_text())
        names = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert name in names, entry
        assert reason.strip(), entry
