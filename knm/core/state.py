"""``Knm``: what the code handed a running knm may use of it — its config, database pool,
registry of contributions, feature switches, event log, progress hub, task runner, keys and
audit log. Routes, executors, cluster providers, step types, transports and plugins take a
``knm: Knm``.

This is the type, not the thing: the running knm is ``knm.core.runtime.Knm`` (built by
``KnmPlugin``, kept in ``app.state["knm"]``), which starts and stops what is listed here. The
type lives apart so that everything can name it without importing the runtime, which imports
the plugin manager, the content sync and the registry: naming the runtime's class closed a
circle of imports through the whole core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncpg
    import pluggy
    from argon2 import PasswordHasher

    from knm.core.auth.cache import PrincipalCache
    from knm.core.config import KnmConfig
    from knm.core.db import MigrationSet
    from knm.core.embedded_pg import EmbeddedPostgres
    from knm.core.features import FeatureSpec, FeatureStore
    from knm.core.keys import Keys
    from knm.core.listen import Listener
    from knm.core.progress import ProgressHub
    from knm.core.registry import Registry
    from knm.core.schedules.firing import Firing
    from knm.core.tasks.events import EventLog
    from knm.core.tasks.executor import Executor
    from knm.core.tasks.runner import Runner
    from knm.core.tasks.status_cache import StatusCache
    from knm.core.telemetry import Telemetry


class Knm(Protocol):
    """A running knm, as the code it calls sees it (``knm.core.runtime.Knm`` is the one)."""

    config: KnmConfig
    pm: pluggy.PluginManager
    #: What the plugins contribute, by name (executors, step types, providers, ...).
    registry: Registry
    feature_specs: list[FeatureSpec]
    features: FeatureStore
    hasher: PasswordHasher
    #: A hash to verify against when a login names no user, so both take as long.
    dummy_hash: str
    embedded: EmbeddedPostgres | None
    embedded_down_since: float | None
    #: Started by ``start(serve=True)``; None in a process that only migrates or administers.
    events: EventLog
    progress: ProgressHub
    runner: Runner
    #: The schedules' firing loop, in a process that runs tasks.
    firing: Firing | None
    listener: Listener | None
    auth_cache: PrincipalCache | None
    status_cache: StatusCache | None
    #: This process's HTTP and process series for ``/metrics``.
    telemetry: Telemetry
    #: The secret in use (``knm.core.crypto.keyring_of`` builds the keyring from it).
    _secret: str

    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def executors(self) -> Mapping[str, Executor]:
        """``registry.executors``: every executor by kind."""
        ...

    def migration_sets(self) -> list[MigrationSet]: ...

    async def connect_one(self) -> asyncpg.Connection: ...

    def forget_user(self, user_id: int) -> None: ...

    async def task_finished(self, task: Any) -> None: ...

    async def audit(
        self,
        request: Any,
        action: str,
        target: str,
        *,
        conn: Any = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> None: ...

    async def audit_record(
        self,
        conn: Any,
        *,
        principal: Any,
        action: str,
        target: str,
        outcome: str = "ok",
        client: str = "",
        username: str | None = None,
        user_id: int | None = None,
        role: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...
