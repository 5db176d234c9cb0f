"""``Knm``: the state of one running knm (config, plugins, database, keys), shared by every route.

Built by ``KnmPlugin`` and kept in ``app.state["knm"]``; started and stopped by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import asyncpg
import pluggy

from knm.core import audit, content, db, keys
from knm.core.auth import passwords, users
from knm.core.auth.cache import PrincipalCache
from knm.core.config import KnmConfig
from knm.core.embedded_pg import EmbeddedPostgres
from knm.core.features import FeatureSpec, FeatureStore
from knm.core.forwarded import TrustedProxies, client_address
from knm.core.keys import Keys
from knm.core.listen import Listener
from knm.core.manager import collect, make_plugin_manager
from knm.core.registry import Registry, StartupError
from knm.core.telemetry import Telemetry

if TYPE_CHECKING:
    from knm.core.notifications.delivery import DeliveryWorker
    from knm.core.progress import ProgressHub
    from knm.core.schedules.firing import Firing
    from knm.core.tasks.events import EventLog
    from knm.core.tasks.runner import Runner
    from knm.core.tasks.status_cache import StatusCache

log = logging.getLogger("knm")

#: Seconds between checks that the embedded PostgreSQL still runs, and the longest wait
#: between attempts to start it again.
SUPERVISE_INTERVAL = 1.0
SUPERVISE_MAX_BACKOFF = 30.0


class Knm:
    """The running knm. Code it calls names its type, ``knm.core.state.Knm``, not this class."""

    def __init__(self, config: KnmConfig, pm: pluggy.PluginManager | None = None) -> None:
        self.config = config
        self.pm = pm or make_plugin_manager(
            blocked=config.blocked_plugins,
            load_entrypoints=config.load_entrypoints,
            named_plugins=config.plugins,
        )
        #: What the plugins contribute, collected once here; see ``knm.core.registry``.
        self.registry = Registry(self.pm)
        self.feature_specs: list[FeatureSpec] = self.registry.features
        self.hasher = passwords.make_hasher(config)
        self.dummy_hash = passwords.dummy_hash(self.hasher)
        #: Where requests hash and verify passwords: off the event loop.
        self.passwords = passwords.HashPool(self.hasher, passwords.pool_size(config))
        self.trusted_proxies = TrustedProxies(config.forwarded_allow_ips)
        self.embedded: EmbeddedPostgres | None = None
        self._pool: asyncpg.Pool | None = None
        self._keys: Keys | None = None
        self._secret = ""
        self.features: FeatureStore = None  # type: ignore[assignment]
        self._stack = AsyncExitStack()
        self.executors = self.registry.executors
        # The engine: started by ``start(serve=True)``, None in a process that only migrates or
        # administers (nothing there reaches for them).
        self.events: EventLog = None  # type: ignore[assignment]
        self.progress: ProgressHub = None  # type: ignore[assignment]
        self.listener: Listener | None = None
        self.auth_cache: PrincipalCache | None = None
        self.status_cache: StatusCache | None = None
        self.runner: Runner = None  # type: ignore[assignment]
        #: Sends queued notifications; in the processes that run tasks (``config.runner``).
        self.notifications: DeliveryWorker | None = None
        #: The schedules' firing loop, in a process that runs tasks (``config.runner``).
        self.firing: Firing | None = None
        self.telemetry = Telemetry()
        self._url = ""
        self._supervisor: asyncio.Task[None] | None = None
        #: ``loop.time()`` since the supervisor found the embedded PostgreSQL down, else None.
        self.embedded_down_since: float | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StartupError("the database is not connected yet")
        return self._pool

    @property
    def keys(self) -> Keys:
        assert self._keys is not None
        return self._keys

    def migration_sets(self) -> list[db.MigrationSet]:
        return [
            db.MigrationSet("core", db.CORE_MIGRATIONS),
            *self.registry.migrations,
        ]

    def database_url(self) -> str:
        """The configured database, else the embedded one (started or adopted: blocking)."""
        if self.config.database_url:
            return self.config.database_url
        if self.embedded is None:
            self.embedded = EmbeddedPostgres(self.config.resolved_data_dir())
        return self.embedded.start()

    def secret(self) -> str:
        if self.config.secret_key:
            return self.config.secret_key
        if self.config.database_url:
            raise StartupError(
                "KNM_SECRET_KEY is required with an external database "
                "(every process sharing it must use the same secret)"
            )
        return keys.load_or_create_secret(self.config.resolved_data_dir())

    async def start(self, *, serve: bool = True) -> None:
        """Connect, migrate and check the secret; with ``serve``, also start plugins' lifespans."""
        try:
            await self._start(serve=serve)
        except BaseException:
            # Whatever started (the embedded PostgreSQL above all) must not outlive a failed start.
            await self.stop()
            raise

    async def _start(self, *, serve: bool) -> None:
        secret = self.secret()
        self._secret = secret
        self._keys = Keys.from_secret(secret)
        url = self._url = await asyncio.to_thread(self.database_url)
        self._pool = await db.connect(
            url, min_size=self.config.db_pool_min, max_size=self.config.db_pool_max
        )
        async with self._pool.acquire() as conn:
            await db.migrate(conn, self.migration_sets())
            await keys.check_fingerprint(conn, secret, self.config.previous_secret_keys)
            await self._ensure_admin(conn)
            await content.sync_builtins(self, conn)
        self.features = FeatureStore(self._pool, self.feature_specs, self.config.settings_refresh)
        if not serve:
            return
        await self._start_engine()
        if self.embedded is not None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise_database(self.embedded), name="knm-embedded-pg-supervisor"
            )
        for factory in collect(self.pm.hook.knm_lifespan()):
            await self._stack.enter_async_context(factory(self))

    async def _start_engine(self) -> None:
        from knm.core.progress import ProgressHub
        from knm.core.schedules.firing import Firing
        from knm.core.tasks.events import EventLog
        from knm.core.tasks.runner import Runner
        from knm.core.tasks.status_cache import StatusCache, VersionChecks
        from knm.core.tasks.store import versions_of

        self.listener = Listener(self.connect_one)
        self.auth_cache = PrincipalCache(self.config.auth_cache_seconds, self.listener)
        pool = self.pool
        self.status_cache = StatusCache(
            self.listener, VersionChecks(lambda task_ids: versions_of(pool, task_ids))
        )
        await self.listener.start()
        self.progress = ProgressHub(self.pool, self.listener)
        await self.progress.start()
        self.events = EventLog(self.pool, self.progress.deliver)
        await self.events.start()
        self.runner = Runner(self, claim=self.config.runner)
        await self.runner.start()
        if self.config.runner:
            from knm.core.crypto import keyring_of
            from knm.core.notifications.delivery import DeliveryWorker, settings_of

            self.notifications = DeliveryWorker(
                self.pool, keyring_of(self), settings_of(self.config), listener=self.listener
            )
            await self.notifications.start()
            # Schedules fire where tasks run; any number of such processes fire each once.
            self.firing = Firing(self)
            await self.firing.start()

    async def _supervise_database(self, embedded: EmbeddedPostgres) -> None:
        """Starts the embedded PostgreSQL again when it dies, with bounded backoff. The pool
        replaces broken connections by itself, the listener listens again, and the runner's
        leases carry tasks over (or reap them as lost)."""
        backoff = SUPERVISE_INTERVAL
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL if self.embedded_down_since is None else backoff)
            try:
                restarted = await asyncio.to_thread(embedded.ensure_running)
            except Exception as exc:
                if self.embedded_down_since is None:
                    self.embedded_down_since = loop.time()
                log.error(
                    "the embedded PostgreSQL is down and did not start again (retrying in "
                    "%.0f s): %s",
                    min(backoff * 2, SUPERVISE_MAX_BACKOFF),
                    getattr(exc, "error", None) or exc,
                )
                backoff = min(backoff * 2, SUPERVISE_MAX_BACKOFF)
                continue
            if restarted:
                log.warning("the embedded PostgreSQL had stopped; started it again")
            elif self.embedded_down_since is not None:
                log.info("the embedded PostgreSQL runs again")
            self.embedded_down_since = None
            backoff = SUPERVISE_INTERVAL

    async def connect_one(self) -> asyncpg.Connection:
        """A connection of its own (for LISTEN), outside the pool."""
        return await db.connect_one(self._url)

    def client_of(self, request: Any) -> str:
        """The client's address: the peer, or what a trusted proxy forwarded (``forwarded``)."""
        return client_address(request.scope, self.trusted_proxies)

    def forget_user(self, user_id: int) -> None:
        """Drop the user's cached authentications here at once (other processes hear it
        through ``knm_auth``)."""
        if self.auth_cache is not None:
            self.auth_cache.forget_user(user_id)

    async def task_finished(self, task: Any) -> None:
        for impl in self.pm.hook.knm_task_finished.get_hookimpls():
            try:
                impl.function(task=task)
            except Exception:
                # A notification that fails never changes the task.
                log.exception(
                    "knm_task_finished of %s failed for %s", impl.plugin_name, task.task_id
                )

    async def stop(self) -> None:
        # Every step is bounded: a plugin lifespan, a loop or a pooled connection that never
        # lets go must not keep the process (or a test's teardown) from ending.
        try:
            if self._supervisor is not None:
                self._supervisor.cancel()
                with contextlib.suppress(BaseException):
                    await _bounded("the supervisor", self._supervisor)
                self._supervisor = None
            # No new fires while the runner winds down.
            if self.firing is not None:
                await _bounded("the schedules' firing loop", self.firing.stop())
                self.firing = None
            # Tasks first: plugins' lifespans (SSH connections …) serve them until they end.
            if self.runner is not None:
                await self.runner.stop(grace=self.config.shutdown_grace)
            if self.notifications is not None:
                await _bounded("the notification delivery", self.notifications.stop())
                self.notifications = None
            await _bounded("the plugins' lifespans", self._stack.aclose())
            if self.events is not None:
                await _bounded("the event log", self.events.stop())
            if self.progress is not None:
                await _bounded("the progress hub", self.progress.stop())
            if self.listener is not None:
                await _bounded("the listener", self.listener.stop())
        finally:
            self.passwords.close()
            if self._pool is not None:
                pool, self._pool = self._pool, None
                if not await _bounded("the database pool", pool.close()):
                    pool.terminate()
            if self.embedded is not None:
                await asyncio.to_thread(self.embedded.stop)
                self.embedded = None

    async def _ensure_admin(self, conn: asyncpg.Connection) -> None:
        # Two replicas starting on an empty database must not both create an admin.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", db.MIGRATION_LOCK_KEY + 1)
            if await users.exists_any(conn):
                return
            password = self.config.admin_password
            generated = not password
            if generated:
                password = secrets.token_urlsafe(12)
            await users.create(conn, "admin", self.hasher.hash(password), "admin")
        if generated:
            # Shown once, on the terminal that started knm, and never logged.
            print(
                f"knm: created user 'admin' with password {password} (shown only once; "
                "change it with `knm admin user reset-password admin`)",
                file=sys.stderr,
                flush=True,
            )
        else:
            log.info("created user 'admin' with the password from KNM_ADMIN_PASSWORD")

    # --- audit ---------------------------------------------------------------------------

    async def audit(
        self,
        request: Any,
        action: str,
        target: str,
        *,
        conn: Any = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> None:
        principal = request.scope.get("user")
        await self.audit_record(
            conn or self.pool,
            principal=principal,
            action=action,
            target=target,
            outcome=outcome,
            client=self.client_of(request),
            detail=detail,
        )

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
    ) -> None:
        if principal is not None:
            user_id, username, role = principal.user_id, principal.username, principal.role
        await audit.record(
            conn,
            action=action,
            target=target,
            outcome=outcome,
            client=client,
            user_id=user_id,
            username=username,
            role=role,
            detail=detail,
        )


#: Seconds each step of :meth:`Knm.stop` may take before it is abandoned.
STOP_STEP_TIMEOUT = 15.0


async def _bounded(what: str, step: Any, timeout: float | None = None) -> bool:
    """Await one shutdown step for at most ``timeout`` seconds; False (and a warning naming
    the step) when it had to be abandoned."""
    # Not wait_for: it waits for the cancelled step to end, which a stuck step may never do.
    timeout = STOP_STEP_TIMEOUT if timeout is None else timeout
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait([task], timeout=timeout)
    if not done:
        task.cancel()
        log.warning("shutdown: %s did not finish within %.0f s; going on", what, timeout)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("shutdown: %s failed: %r", what, task.exception())
    return True
