"""The core's one registry of what plugins contribute: built once, checked, and shown."""

from __future__ import annotations

from typing import Any

import pytest

from knm.core.config import KnmConfig
from knm.core.content import ContentKind
from knm.core.hookspecs import hookimpl
from knm.core.manager import make_plugin_manager
from knm.core.plugins_route import describe
from knm.core.registry import Registry, StartupError
from knm.core.runtime import Knm
from knm.core.tasks.steps import StepOutcome, StepType
from knm.plugins.static.provider import StaticProvider
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin


def _manager(**plugins: Any) -> Any:
    pm = make_plugin_manager(load_entrypoints=False)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return pm


class _Approval(StepType):
    name = "approval"

    async def run(self, knm: Any, run: Any, cancelled: Any) -> StepOutcome:
        raise NotImplementedError


class _StepPlugin:
    @hookimpl
    def knm_step_types(self) -> list[StepType]:
        return [_Approval()]


class _ScriptKindPlugin:
    @hookimpl
    def knm_content_kinds(self) -> list[ContentKind]:
        return [ContentKind(kind="script", plural="scriptz", route="/scriptz", label="Scriptz")]


class _StaticPlugin:
    @hookimpl
    def knm_cluster_providers(self) -> list[Any]:
        return [StaticProvider()]


class _Counting:
    """Gives one step type, and counts how often it is asked."""

    calls = 0

    @hookimpl
    def knm_step_types(self) -> list[StepType]:
        type(self).calls += 1

        class Counted(_Approval):
            name = "counted"

        return [Counted()]


def test_two_plugins_giving_the_same_executor_kind_are_refused_naming_both() -> None:
    pm = _manager(first=TestExecutorPlugin(), second=TestExecutorPlugin())
    with pytest.raises(StartupError) as refused:
        Registry(pm)
    text = str(refused.value)
    assert "executor kind 'test'" in text
    assert "'first'" in text and "'second'" in text


def test_two_plugins_giving_the_same_step_type_are_refused_naming_both() -> None:
    with pytest.raises(StartupError) as refused:
        Registry(_manager(mine=_StepPlugin()))
    text = str(refused.value)
    assert "step type 'approval'" in text
    assert "'workflows'" in text and "'mine'" in text


def test_two_plugins_giving_the_same_content_kind_are_refused_naming_both() -> None:
    with pytest.raises(StartupError) as refused:
        Registry(_manager(mine=_ScriptKindPlugin()))
    text = str(refused.value)
    assert "content kind 'script'" in text
    assert "'scripts'" in text and "'mine'" in text


def test_two_plugins_giving_the_same_cluster_provider_are_refused_naming_both() -> None:
    with pytest.raises(StartupError) as refused:
        Registry(_manager(mine=_StaticPlugin()))
    text = str(refused.value)
    assert "cluster kind 'static'" in text
    assert "'static'" in text and "'mine'" in text


def test_a_duplicate_stops_the_app_from_being_built() -> None:
    with pytest.raises(StartupError, match="'mine'"):
        Knm(KnmConfig(load_entrypoints=False), _manager(mine=_StepPlugin()))


def test_the_registry_records_which_plugin_gave_what() -> None:
    registry = Registry(_manager(counting=_Counting()))
    assert registry.step_types.origin["counted"] == "counting"
    assert registry.step_types.origin["approval"] == "workflows"
    assert registry.cluster_providers.origin["static"] == "static"
    assert registry.transports.origin["ssh"] == "ssh"
    assert registry.contributions["counting"] == {"step_types": ["counted"]}
    assert registry.contributions["scripts"]["content_kinds"] == ["script"]


def test_the_registry_is_built_once_per_app_and_later_lookups_call_no_hook() -> None:
    _Counting.calls = 0
    knm = Knm(KnmConfig(load_entrypoints=False), _manager(counting=_Counting()))
    assert _Counting.calls == 1
    assert "counted" in knm.registry.step_types
    knm.registry.transport_for()
    knm.registry.provider_for("static")
    knm.registry.content_kind("script")
    describe(knm)
    assert _Counting.calls == 1
    other = Knm(KnmConfig(load_entrypoints=False), _manager(counting=_Counting()))
    assert _Counting.calls == 2
    assert other.registry is not knm.registry


def test_plugins_keep_per_app_state_in_its_own_slot() -> None:
    made: list[object] = []
    one, two = (Registry(_manager()) for _ in range(2))

    def factory() -> object:
        made.append(object())
        return made[-1]

    assert one.state_for(_Counting, factory) is one.state_for(_Counting, factory)
    assert two.state_for(_Counting, factory) is not one.state_for(_Counting, factory)
    assert len(made) == 2
    assert one.drop_state(_Counting) is made[0]
    assert one.state_for(_Counting, factory) is made[2]


def test_an_unknown_cluster_kind_lists_the_known_ones() -> None:
    from knm.core.errors import Invalid

    with pytest.raises(Invalid, match=r"known kinds: .*static"):
        Registry(_manager()).provider_for("nope")


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [_Counting()]


async def test_plugins_route_shows_which_plugin_gave_what_from_the_registry(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    knm = knm_client.http.app.state["knm"]  # type: ignore[attr-defined]
    asked = _Counting.calls
    body = assert_envelope(await knm_client.get("/plugins", headers=admin_headers), 200)
    plugins = {p["name"]: p for p in body["data"]["plugins"]}
    assert _Counting.calls == asked, "the route called a hook instead of reading the registry"
    assert plugins["workflows"]["contributes"]["step_types"] == ["approval"]
    assert plugins["scripts"]["contributes"]["content_kinds"] == ["script"]
    assert plugins["ssh"]["contributes"]["transports"] == ["ssh"]
    for name, given in knm.registry.contributions.items():
        assert plugins[name]["contributes"] == given
