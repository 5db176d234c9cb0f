"""The one registry of what plugins contribute, built once per ``Knm`` when it is made.

Executors, step types, cluster providers, content kinds and transports are each collected from
their hook here, once, checked, and kept by name. Each implementation is called by itself so the
registry knows which plugin gave which item: a name given twice is refused at start-up with a
``StartupError`` naming both plugins, and ``GET /plugins`` shows who gave what from
``contributions``. Nothing else calls these hooks; code asks ``knm.registry``.

The registry also holds a typed per-app state slot for plugins (``state_for``), so a plugin
keeps what belongs to one app on that app, not in a module-level map keyed by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from knm.core.errors import FeatureUnavailable, Invalid, KnmError

if TYPE_CHECKING:
    from knm.core.clusters.provider import ClusterProvider
    from knm.core.content.kinds import ContentKind
    from knm.core.db import MigrationSet
    from knm.core.features import FeatureSpec
    from knm.core.tasks.executor import Executor
    from knm.core.tasks.steps import StepType
    from knm.core.transport import Transport

T = TypeVar("T")

#: The hooks listed per plugin by ``GET /plugins``, under these labels.
CONTRIBUTIONS = {
    "knm_executors": "executors",
    "knm_step_types": "step_types",
    "knm_features": "features",
    "knm_cluster_providers": "cluster_providers",
    "knm_content_kinds": "content_kinds",
    "knm_transports": "transports",
    "knm_builtin_content": "builtin_content",
    "knm_migrations": "migrations",
}


class StartupError(KnmError):
    message = "knm cannot start"


def label(item: Any) -> str:
    """The name an item is known by (``kind``, ``name`` or ``namespace``)."""
    for attr in ("kind", "name", "namespace"):
        value = getattr(item, attr, None)
        if isinstance(value, str):
            return value
    return type(item).__name__


def contributions(pm: pluggy.PluginManager, hook_name: str) -> Iterator[tuple[str, Any]]:
    """``(plugin name, item)`` for every item every implementation of ``hook_name`` returns,
    in the order pluggy would call them (last registered first)."""
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or getattr(impl, "wrapper", False):
            continue
        for item in impl.function() or []:
            yield impl.plugin_name, item


class _Named(dict[str, T]):
    """Items by name, remembering which plugin gave each, refusing a name given twice."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.origin: dict[str, str] = {}

    def add(self, name: str, item: T, plugin: str) -> None:
        if name in self:
            raise StartupError(
                f"{self.what} {name!r} is given twice: by plugin {self.origin[name]!r} "
                f"and by plugin {plugin!r}"
            )
        self[name] = item
        self.origin[name] = plugin


class Registry:
    """What the loaded plugins contribute, by name; see the module docstring."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        #: plugin name -> label (``executors``...) -> the names of what it gave.
        self.contributions: dict[str, dict[str, list[str]]] = {}
        self.features: list[FeatureSpec] = self._list("knm_features")
        self.migrations: list[MigrationSet] = self._list("knm_migrations")
        # Builtin content is read again at each sync, which ships what plugins give then;
        # here it is only recorded, for ``GET /plugins``.
        self._collect("knm_builtin_content")
        self.executors: _Named[Executor] = _Named("executor kind")
        for plugin, executor in self._collect("knm_executors"):
            self.executors.add(executor.kind, executor, plugin)
        self.step_types: _Named[StepType] = self._step_types()
        self.cluster_providers: _Named[ClusterProvider] = self._cluster_providers()
        self.content_kinds: _Named[ContentKind] = self._content_kinds()
        self.transports: _Named[Transport] = _Named("transport")
        for plugin, transport in self._collect("knm_transports"):
            self.transports.add(transport.name, transport, plugin)
        self._state: dict[Any, Any] = {}

    # --- lookups ------------------------------------------------------------------------------

    def provider_for(self, kind: str) -> ClusterProvider:
        """The provider of cluster ``kind``, or ``Invalid`` listing the kinds that exist."""
        try:
            return self.cluster_providers[kind]
        except KeyError:
            known = ", ".join(sorted(self.cluster_providers)) or "none"
            raise Invalid(f"unknown cluster kind {kind!r}; known kinds: {known}") from None

    def content_kind(self, kind: str | ContentKind) -> ContentKind:
        """The content kind named ``kind`` (a ``ContentKind`` is returned as it is)."""
        if not isinstance(kind, str):
            return kind
        try:
            return self.content_kinds[kind]
        except KeyError:
            raise LookupError(f"no content kind {kind!r} is registered") from None

    def transport_for(self, cluster: Any = None) -> Transport:
        """The transport that reaches ``cluster``'s nodes: SSH for every cluster today."""
        found = self.transports.get("ssh")
        if found is None:
            raise FeatureUnavailable(
                "no plugin provides the ssh transport (is the ssh plugin blocked?)"
            )
        return found

    def state_for(self, key: Any, factory: Callable[[], T]) -> T:
        """This app's value under ``key``, made by ``factory`` on first use.

        Use a key the plugin owns (a class, or a module-level sentinel) so plugins never share
        a slot; the value lives and dies with the app.
        """
        try:
            return self._state[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._state[key] = factory()
            return value

    def drop_state(self, key: Any) -> Any:
        """Forget this app's value under ``key`` and return it (None when there was none), so
        a plugin's lifespan can close it at shutdown and a restarted app makes a fresh one."""
        return self._state.pop(key, None)

    # --- building -----------------------------------------------------------------------------

    def _collect(self, hook_name: str) -> list[tuple[str, Any]]:
        found = list(contributions(self.pm, hook_name))
        tag = CONTRIBUTIONS.get(hook_name)
        if tag is not None:
            for plugin, item in found:
                self.contributions.setdefault(plugin, {}).setdefault(tag, []).append(label(item))
        return found

    def _list(self, hook_name: str) -> list[Any]:
        return [item for _, item in self._collect(hook_name)]

    def _step_types(self) -> _Named[StepType]:
        from knm.core.tasks.steps import ExecutorStep

        found: _Named[StepType] = _Named("step type")
        for kind, executor in self.executors.items():
            # A workflow is not a step of another: a workflow could then run itself without end.
            if kind != "workflow":
                found.add(kind, ExecutorStep(executor), self.executors.origin[kind])
        for plugin, step_type in self._collect("knm_step_types"):
            found.add(step_type.name, step_type, plugin)
        return found

    def _cluster_providers(self) -> _Named[ClusterProvider]:
        from knm.core.clusters.provider import COMMON_FIELDS, config_fields

        found: _Named[ClusterProvider] = _Named("cluster kind")
        for plugin, provider in self._collect("knm_cluster_providers"):
            kind = getattr(provider, "kind", "")
            if not kind or not isinstance(kind, str):
                raise StartupError(
                    f"cluster provider {provider!r} of plugin {plugin!r} has no kind"
                )
            fields = set(config_fields(provider))
            if clash := sorted(fields & COMMON_FIELDS):
                raise StartupError(
                    f"cluster kind {kind!r} (plugin {plugin!r}): config fields {clash} clash "
                    "with the common fields"
                )
            if missing := sorted(set(provider.secret_fields) - fields):
                raise StartupError(
                    f"cluster kind {kind!r} (plugin {plugin!r}): secret fields {missing} are not "
                    "config fields"
                )
            found.add(kind, provider, plugin)
        return found

    def _content_kinds(self) -> _Named[ContentKind]:
        from knm.core.content.kinds import ContentKind

        found: _Named[ContentKind] = _Named("content kind")
        # A kind's plural, route and struct names must be unique too, not only its name.
        others: _Named[str] = _Named("content kind")
        for plugin, spec in self._collect("knm_content_kinds"):
            if not isinstance(spec, ContentKind):
                raise StartupError(
                    f"knm_content_kinds of plugin {plugin!r} returned {spec!r}, not a ContentKind"
                )
            found.add(spec.kind, spec, plugin)
            for key in (f"plural {spec.plural}", f"route {spec.route}", f"type {spec.type_prefix}"):
                if key in others:
                    raise StartupError(
                        f"content kinds {others[key]!r} (plugin {others.origin[key]!r}) and "
                        f"{spec.kind!r} (plugin {plugin!r}) clash on their {key}"
                    )
                others.add(key, spec.kind, plugin)
        return found
