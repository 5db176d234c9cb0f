"""``GET /plugins``: what is loaded and what each plugin contributes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from knm.core.auth.guards import ADMIN
from knm.core.envelope import Envelope, ok
from knm.core.manager import plugin_version

# The hooks whose results are lists of named things worth listing per plugin.
_CONTRIBUTIONS = {
    "knm_executors": "executors",
    "knm_step_types": "step_types",
    "knm_features": "features",
    "knm_cluster_providers": "cluster_providers",
    "knm_transports": "transports",
    "knm_builtin_content": "builtin_content",
    "knm_migrations": "migrations",
}


class PluginInfo(msgspec.Struct):
    name: str
    version: str
    hooks: list[str]
    contributes: dict[str, list[str]]


class PluginList(msgspec.Struct):
    total: int
    plugins: list[PluginInfo]


def _label(item: Any) -> str:
    for attr in ("kind", "name", "namespace"):
        value = getattr(item, attr, None)
        if isinstance(value, str):
            return value
    return type(item).__name__


def describe(pm: Any) -> list[PluginInfo]:
    infos = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda pair: pair[0]):
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        contributes: dict[str, list[str]] = {}
        for hook_name, label in _CONTRIBUTIONS.items():
            impl = getattr(plugin, hook_name, None)
            if hook_name in hooks and callable(impl):
                contributes[label] = [_label(item) for item in impl() or []]
        infos.append(PluginInfo(name, plugin_version(pm, plugin), hooks, contributes))
    return infos


@get("/plugins", guards=[ADMIN], summary="Loaded plugins and their contributions")
async def list_plugins(request: Request[Any, Any, Any]) -> Envelope[PluginList]:
    infos = describe(request.app.state["knm"].pm)
    return ok(PluginList(len(infos), infos))
