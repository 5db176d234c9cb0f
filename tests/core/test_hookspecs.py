"""The plugin kernel: documented hooks, a manager per app, loud failures, blocking."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pluggy
import pytest

from knm.core import hookspecs
from knm.core.manager import DEFAULT_PLUGINS, make_plugin_manager
from knm.testing.client import ApiClient, assert_envelope

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
HOOKS = [
    (name, fn)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("knm_")
]


@pytest.mark.parametrize(("name", "fn"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_has_a_docstring_and_a_section_in_the_plugin_docs(name: str, fn: Any) -> None:
    assert fn.__doc__ and len(fn.__doc__.strip()) > 40, (
        f"{name} needs a docstring saying what to return"
    )
    docs = DOCS.read_text()
    params = ", ".join(inspect.signature(fn).parameters)
    assert f"### `{name}({params})" in docs, f"docs/plugins.md lacks a section for {name}({params})"


def test_builtin_plugins_load_without_entry_points() -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    assert {name for name, _ in DEFAULT_PLUGINS} <= {name for name, _ in pm.list_name_plugin()}


def test_each_app_gets_its_own_plugin_manager() -> None:
    assert make_plugin_manager(load_entrypoints=False) is not make_plugin_manager(
        load_entrypoints=False
    )


def test_a_misspelled_hook_fails_loudly() -> None:
    class Typo:
        @hookspecs.hookimpl
        def knm_executor(self) -> list[Any]:  # the hook is knm_executors
            return []

    with pytest.raises(pluggy.PluginValidationError):
        make_plugin_manager(load_entrypoints=False, extra_plugins=[Typo()])


def test_a_blocked_plugin_is_not_loaded() -> None:
    pm = make_plugin_manager(load_entrypoints=False, blocked=["ansible"])
    assert pm.get_plugin("ansible") is None
    assert pm.is_blocked("ansible")


def test_plugins_are_also_declared_as_entry_points() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="knm")}
    for name, module in DEFAULT_PLUGINS:
        assert declared.get(name) == module


async def test_admins_see_loaded_plugins_and_their_contributions(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    body = assert_envelope(await knm_client.get("/plugins", headers=admin_headers), 200)
    plugins = {p["name"]: p for p in body["data"]["plugins"]}
    assert "ssh" in plugins and plugins["ssh"]["version"]
    assert "ssh" in plugins["ssh"]["contributes"]["features"]
    assert plugins["static"]["contributes"]["cluster_providers"] == ["static"]
    operator = await knm_client.create_user(admin_headers, "op", "operator")
    assert_envelope(await knm_client.get("/plugins", headers=operator), 403)
