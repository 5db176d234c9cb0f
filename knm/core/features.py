"""Feature switches and executor settings, and the ``/features`` routes.

Each executor plugin contributes a ``FeatureSpec`` (its kind, switch and settings struct)
through ``knm_features``. Settings live in the ``feature_settings`` table; every process reads
them through a short cache, so a change made through one process reaches every other one within
``settings_refresh`` seconds.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from typing import Any

import msgspec
from litestar import Request, get, put

from knm.core.auth.guards import ADMIN
from knm.core.envelope import Envelope, ok
from knm.core.errors import BadRequest, FeatureDisabled, Invalid, NotFound

MASTER = "automation"


class ExecutorSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings every executor has. ``max_concurrent``'s meaning is documented per kind."""

    enabled: bool = True
    timeout: int = 300
    max_concurrent: int = 10
    #: Tasks of this kind running at once across all workers; more wait as ``pending`` (FIFO).
    max_tasks: int = 100

    def problems(self) -> list[str]:
        """Value rules beyond the types; each problem is one sentence."""
        found = []
        if self.timeout <= 0:
            found.append("timeout must be greater than 0")
        if not 1 <= self.max_concurrent <= 10_000:
            found.append("max_concurrent must be between 1 and 10000")
        if not 1 <= self.max_tasks <= 10_000:
            found.append("max_tasks must be between 1 and 10000")
        return found


class MasterSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True


class FeatureSpec(msgspec.Struct, frozen=True):
    """A switchable executor: ``kind`` names its route (``/features/automation/<kind>``)."""

    kind: str
    settings_type: type[ExecutorSettings]
    #: The boolean's name in ``GET /features`` (``ssh_enabled``).
    switch: str = ""
    description: str = ""

    @property
    def switch_name(self) -> str:
        return self.switch or f"{self.kind}_enabled"


def executable_problem(path: str) -> str | None:
    """Why ``path`` cannot be run, or None."""
    resolved = shutil.which(path)
    if resolved is None:
        return f"{path} does not exist or is not executable"
    return None


class FeatureStore:
    def __init__(self, pool: Any, specs: list[FeatureSpec], refresh: float) -> None:
        self.pool = pool
        self.specs = {spec.kind: spec for spec in specs}
        self.refresh = refresh
        self._cache: dict[str, msgspec.Struct] = {}
        self._loaded_at = -math.inf
        #: The read under way and the generation it started in; bumped by invalidate().
        self._reading: tuple[int, asyncio.Future[dict[str, msgspec.Struct]]] | None = None
        self._generation = 0

    def spec(self, kind: str) -> FeatureSpec:
        try:
            return self.specs[kind]
        except KeyError:
            raise NotFound(f"no feature {kind!r}; known: {', '.join(sorted(self.specs))}") from None

    async def _load(self) -> dict[str, msgspec.Struct]:
        age = time.monotonic() - self._loaded_at
        if age < self.refresh:
            return self._cache
        # One shared read, never a lock: a lock hands itself from waiter to waiter one
        # event-loop turn at a time, and with 50 requests in flight the last waited ~50 turns
        # (the status route's p99 was 170 ms for it, its p50 6 ms).
        if self._reading is None or self._reading[0] != self._generation:
            future = asyncio.ensure_future(self._read(self._generation))
            # Its callers may all be gone (cancelled requests) when it fails.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._reading = (self._generation, future)
        if self._cache and age < 2 * self.refresh:
            # Only the periodic refresh is due (an invalidate() zeroes the age): answer from
            # what we have while the read brings any news from other processes, rather than
            # stall every request in flight for a database round trip.
            return self._cache
        return await asyncio.shield(self._reading[1])

    async def _read(self, generation: int) -> dict[str, msgspec.Struct]:
        try:
            rows = await self.pool.fetch("SELECT kind, settings FROM feature_settings")
        finally:
            if self._reading is not None and self._reading[0] == generation:
                self._reading = None
        stored = {r["kind"]: r["settings"] for r in rows}
        cache: dict[str, msgspec.Struct] = {
            MASTER: msgspec.convert(stored.get(MASTER, {}), MasterSettings)
        }
        for kind, spec in self.specs.items():
            try:
                cache[kind] = msgspec.convert(stored.get(kind, {}), spec.settings_type)
            except msgspec.ValidationError:
                # Settings stored by an older version with fields since removed: defaults.
                cache[kind] = spec.settings_type()
        if generation == self._generation:
            # A read that began before an invalidate() answers its own callers only.
            self._cache, self._loaded_at = cache, time.monotonic()
        return cache

    def invalidate(self) -> None:
        self._generation += 1
        self._loaded_at = -math.inf

    async def master(self) -> MasterSettings:
        return (await self._load())[MASTER]  # type: ignore[return-value]

    async def settings(self, kind: str) -> Any:
        self.spec(kind)
        return (await self._load())[kind]

    async def require(self, kind: str) -> Any:
        """The kind's settings if both switches are on, else FeatureDisabled naming the switch."""
        loaded = await self._load()
        if not loaded[MASTER].enabled:  # type: ignore[attr-defined]
            raise FeatureDisabled("automation.enabled is off")
        settings = loaded[self.spec(kind).kind]
        if not settings.enabled:  # type: ignore[attr-defined]
            raise FeatureDisabled(f"automation.{self.spec(kind).switch_name} is off")
        return settings

    async def save(self, kind: str, settings: msgspec.Struct) -> None:
        await self.pool.execute(
            "INSERT INTO feature_settings (kind, settings) VALUES ($1, $2) "
            "ON CONFLICT (kind) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()",
            kind,
            msgspec.to_builtins(settings),
        )
        self.invalidate()

    async def public(self) -> dict[str, dict[str, bool]]:
        loaded = await self._load()
        flags: dict[str, bool] = {"enabled": loaded[MASTER].enabled}  # type: ignore[attr-defined]
        for kind, spec in sorted(self.specs.items()):
            flags[spec.switch_name] = loaded[kind].enabled  # type: ignore[attr-defined]
        return {MASTER: flags}


def _merge(current: msgspec.Struct, body: bytes, target: type[Any]) -> Any:
    try:
        changes = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(changes, dict):
        raise BadRequest("body must be a JSON object")
    merged = {**msgspec.to_builtins(current), **changes}
    try:
        return msgspec.convert(merged, target, strict=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc)) from None


@get("/features", opt={"public": True}, summary="Feature switches (no auth)")
async def read_features(request: Request[Any, Any, Any]) -> Envelope[dict[str, dict[str, bool]]]:
    store: FeatureStore = request.app.state["knm"].features
    return ok(await store.public())


def settings_routes(specs: list[FeatureSpec]) -> list[Any]:
    """``GET``/``PUT /features/automation[/{kind}]``, their answers typed with the settings of
    the executors this knm has (each plugin brings its own), for the OpenAPI document."""
    ordered = sorted(specs, key=lambda spec: spec.kind)
    everything: Any = msgspec.defstruct(
        "AutomationSettings",
        [("enabled", bool), *((spec.kind, spec.settings_type) for spec in ordered)],
        kw_only=True,
    )
    one: Any = MasterSettings
    for spec in ordered:
        one = one | spec.settings_type

    async def read_settings(request: Request[Any, Any, Any]) -> Envelope[dict[str, Any]]:
        store: FeatureStore = request.app.state["knm"].features
        data: dict[str, Any] = {"enabled": (await store.master()).enabled}
        for kind in sorted(store.specs):
            data[kind] = msgspec.to_builtins(await store.settings(kind))
        return ok(data)

    async def update_settings(
        request: Request[Any, Any, Any], kind: str
    ) -> Envelope[dict[str, Any]]:
        """``enabled`` (the master switch) answers ``{"enabled": …}``; an executor's kind, its
        settings."""
        store: FeatureStore = request.app.state["knm"].features
        body = await request.body()
        if kind == "enabled":
            new: Any = _merge(await store.master(), body, MasterSettings)
            await store.save(MASTER, new)
            await _audit(request, "features.update", MASTER)
            return ok({"enabled": new.enabled}, "feature updated")
        spec = store.spec(kind)
        new = _merge(await store.settings(kind), body, spec.settings_type)
        problems = new.problems()
        if problems:
            raise Invalid("; ".join(problems))
        await store.save(kind, new)
        await _audit(request, "features.update", kind)
        return ok(msgspec.to_builtins(new), "settings updated")

    # Sent as built (dicts); the annotations say what they hold.
    read_settings.__annotations__ = {
        "request": Request[Any, Any, Any],
        "return": Envelope[everything],
    }
    update_settings.__annotations__ = {
        "request": Request[Any, Any, Any],
        "kind": str,
        "return": Envelope[one],
    }
    return [
        get(
            "/features/automation",
            guards=[ADMIN],
            summary="Every switch and executor setting",
        )(read_settings),
        put(
            "/features/automation/{kind:str}",
            guards=[ADMIN],
            summary="Change a switch or settings",
        )(update_settings),
    ]


async def _audit(request: Request[Any, Any, Any], action: str, target: str) -> None:
    hook = getattr(request.app.state["knm"], "audit", None)
    if hook is not None:
        await hook(request, action, target)


ROUTES = [read_features]
