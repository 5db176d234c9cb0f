"""``GET /plugins``: what is loaded, what each plugin contributes, and whether it can work.

A plugin that depends on something outside knm (Ansible needs an interpreter its run user can
reach) may say why it cannot work in this app: its plugin object (the module, for a module
plugin) defines ``unavailable(knm) -> str | None`` (or a coroutine function), returning the
reason, naming the cause and the fix, or None. It is not a hook: a plugin answers only for
itself, and only this route asks (the plugin's own routes answer 503 with the same reason).
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, get

from knm.core.auth.guards import ADMIN
from knm.core.envelope import Envelope, ok
from knm.core.manager import plugin_version
from knm.core.registry import CONTRIBUTIONS

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.plugins")


class PluginInfo(msgspec.Struct):
    name: str
    version: str
    hooks: list[str]
    contributes: dict[str, list[str]]
    #: False when the plugin says it cannot work here; ``reason`` says why and what to do.
    available: bool = True
    reason: str | None = None


class PluginList(msgspec.Struct):
    total: int
    plugins: list[PluginInfo]


def describe(knm: Knm) -> list[PluginInfo]:
    """Each loaded plugin, with what it gave as the registry recorded it (no hook is called)."""
    pm = knm.pm
    infos = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda pair: pair[0]):
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        given = knm.registry.contributions.get(name, {})
        contributes = {
            label: list(given[label]) for label in CONTRIBUTIONS.values() if label in given
        }
        infos.append(PluginInfo(name, plugin_version(pm, plugin), hooks, contributes))
    return infos


async def unavailable(knm: Knm, plugin: Any) -> str | None:
    """The plugin's own ``unavailable(knm)`` answer; a failing check is a reason too."""
    check = getattr(plugin, "unavailable", None)
    if not callable(check):
        return None
    try:
        reason = check(knm)
        if inspect.isawaitable(reason):
            reason = await reason
    except Exception as exc:
        log.exception("checking whether plugin %r can work failed", plugin)
        return f"its availability check failed: {type(exc).__name__}: {exc}"
    return str(reason) if reason else None


@get("/plugins", guards=[ADMIN], summary="Loaded plugins, their contributions and availability")
async def list_plugins(request: Request[Any, Any, Any]) -> Envelope[PluginList]:
    knm = request.app.state["knm"]
    infos = describe(knm)
    for info in infos:
        reason = await unavailable(knm, knm.pm.get_plugin(info.name))
        info.available, info.reason = reason is None, reason
    return ok(PluginList(len(infos), infos))
