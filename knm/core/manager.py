"""The plugin manager factory: one manager per app, never a global."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from knm.core import hookspecs

log = logging.getLogger("knm.plugins")

#: Builtin plugins, by the name each is registered under. They are also declared in the ``knm``
#: entry-point group, so they load like a third party's; this list keeps them loadable when
#: entry-point loading is off (tests).
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("static", "knm.plugins.static"),
    ("ssh", "knm.plugins.ssh"),
    ("ansible", "knm.plugins.ansible"),
    ("scripts", "knm.plugins.scripts"),
    ("k8s", "knm.plugins.k8s"),
    ("workflows", "knm.plugins.workflows"),
    ("console", "knm.plugins.console"),
)


def make_plugin_manager(
    *,
    blocked: Iterable[str] = (),
    load_entrypoints: bool = True,
    extra_plugins: Iterable[Any] = (),
    named_plugins: Iterable[str] = (),
) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    for name, module_path in DEFAULT_PLUGINS:
        if pm.is_blocked(name) or pm.has_plugin(name):
            continue
        pm.register(importlib.import_module(module_path), name=name)
    if load_entrypoints:
        # Builtins are listed under the same names in the entry-point group; already registered.
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for plugin in extra_plugins:
        pm.register(plugin)
    for spec in named_plugins:
        if not pm.is_blocked(spec):  # blocked: not even imported
            pm.register(load_object(spec), name=spec)
    pm.check_pending()
    return pm


def load_object(spec: str) -> Any:
    """``module`` or ``module:attribute``; a class is instantiated."""
    module_path, _, attribute = spec.partition(":")
    obj: Any = importlib.import_module(module_path)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj() if isinstance(obj, type) else obj


def plugin_version(pm: pluggy.PluginManager, plugin: Any) -> str:
    for loaded, dist in pm.list_plugin_distinfo():
        if loaded is plugin:
            return str(dist.version)
    from knm import __version__

    return __version__


def collect(hook_results: Iterable[list[Any] | None]) -> list[Any]:
    """Flatten a collect-all hook's results (each implementation returns a list)."""
    items: list[Any] = []
    for result in hook_results:
        if result:
            items.extend(result)
    return items
