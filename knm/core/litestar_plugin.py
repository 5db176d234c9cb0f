"""``KnmPlugin``: mounts knm into any Litestar app; the standalone server is built from it too.

Everything knm adds lives under ``config.path_prefix``: the ``/api/v1`` tree, its WebSocket, its
OpenAPI document, ``/metrics`` and the probes ``/healthz`` and ``/readyz``. Authentication, the
envelope and knm's exception handling are attached to knm's router only, so the host's own
routes, handlers and dependencies are left as they were. App-level handlers (for unknown routes
and wrong methods) are added only where the host has none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Router, get
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPlugin
from litestar.response import Response

from knm.core import audit, bounds, features, health, metrics, plugins_route, progress_route
from knm.core.auth import logfilter
from knm.core.auth import routes as auth_routes
from knm.core.auth.middleware import AuthMiddleware
from knm.core.clusters import routes as cluster_routes
from knm.core.config import KnmConfig
from knm.core.credentials import routes as credential_routes
from knm.core.envelope import EXCEPTION_HANDLERS, ErrorEnvelope
from knm.core.manager import collect
from knm.core.notifications import routes as notification_routes
from knm.core.runtime import Knm
from knm.core.schedules import routes as schedule_routes
from knm.core.tasks import routes as task_routes
from knm.core.windows import routes as window_routes

if TYPE_CHECKING:
    from knm.core.state import Knm

#: A little above the largest body any route takes (scripts: 1 MiB of content).
MAX_BODY = 4 * 1024 * 1024

_ERRORS = {
    400: "malformed request or bad parameters",
    401: "token missing, invalid or expired",
    403: "role too low, or feature disabled",
    404: "not found",
    409: "conflict",
    422: "validation failed",
    429: "too many requests",
    500: "internal error",
}


#: The name of the security scheme every route but the public ones requires.
BEARER = "bearerAuth"
SECURITY_SCHEME = SecurityScheme(
    type="http",
    scheme="bearer",
    bearer_format="JWT",
    description="A JWT from POST /auth/login, or an API token (knm_…) from POST /tokens.",
)


def _documented(handlers: list[Any]) -> list[Any]:
    """The routes beside ``/api/v1``: the probes are public; ``/metrics`` checks a token
    itself (unless ``KNM_METRICS_PUBLIC``), so it is documented as needing one."""
    for handler in handlers:
        _document(handler)
        if handler is metrics.metrics:
            handler.security = [{BEARER: []}]
        elif handler in (health.healthz, health.readyz):
            handler.tags = ["health"]
    return handlers


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _area(handler: Any) -> str:
    """The API area a route belongs to: its first path segment (``clusters``, ``auth``)."""
    path = next(iter(handler.paths), "/").strip("/")
    return path.split("/", 1)[0] or "knm"


def _document(handler: Any) -> None:
    """What knm's OpenAPI document says of a route: the error envelopes it answers, the bearer
    token it needs (public routes: none), its area's tag, and an operation id that does not
    depend on where knm is mounted."""
    if not hasattr(handler, "responses"):
        return  # WebSocket handlers have no HTTP responses to document
    specs = {
        code: ResponseSpec(data_container=ErrorEnvelope, description=text)
        for code, text in _ERRORS.items()
    }
    handler.responses = {**specs, **(handler.responses or {})}
    # ``[{}]``: anyone may call it (an empty list would inherit a host's global requirement).
    handler.security = [{}] if handler.opt.get("public") else [{BEARER: []}]
    if not handler.tags:
        handler.tags = [_area(handler)]
    if handler.operation_id is None:
        handler.operation_id = _camel(handler.handler_name)


class KnmPlugin(InitPlugin):
    def __init__(self, config: KnmConfig | None = None, *, knm: Knm | None = None) -> None:
        self.config = config or (knm.config if knm else KnmConfig.from_env())
        self.knm = knm or Knm(self.config)

    def route_handlers(self) -> list[Any]:
        handlers: list[Any] = [
            *auth_routes.ROUTES,
            *features.ROUTES,
            *features.settings_routes(self.knm.feature_specs),
            *audit.ROUTES,
            plugins_route.list_plugins,
            health.version,
            *credential_routes.ROUTES,
            *cluster_routes.ROUTES,
            *task_routes.ROUTES,
            *notification_routes.ROUTES,
            *schedule_routes.ROUTES,
            *window_routes.ROUTES,
            *progress_route.ROUTES,
            *(r for ex in self.knm.executors.values() for r in task_routes.executor_routes(ex)),
            *_content_routes(self.knm.registry),
            *collect(self.knm.pm.hook.knm_routes()),
        ]
        for handler in handlers:
            _document(handler)
        return handlers

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        knm = self.knm
        logfilter.install()
        api = Router(
            path=self.config.api_prefix,
            route_handlers=self.route_handlers(),
            middleware=[
                knm.telemetry.middleware(),
                DefineMiddleware(
                    AuthMiddleware, exclude_from_auth_key="public", exclude_http_methods=["OPTIONS"]
                ),
            ],
            exception_handlers=dict(EXCEPTION_HANDLERS),
            request_max_body_size=MAX_BODY,
            before_request=bounds.before_request,
        )
        app_config.route_handlers.append(api)
        app_config.route_handlers.append(
            Router(
                path=self.config.path_prefix.rstrip("/") or "/",
                route_handlers=_documented([metrics.metrics, health.healthz, health.readyz]),
                middleware=[knm.telemetry.middleware()],
                exception_handlers=dict(EXCEPTION_HANDLERS),
            )
        )
        pages = collect(knm.pm.hook.knm_pages())
        if pages:
            app_config.route_handlers.append(
                Router(
                    path=self.config.path_prefix.rstrip("/") or "/",
                    route_handlers=pages,
                    middleware=[knm.telemetry.middleware()],
                    exception_handlers=dict(EXCEPTION_HANDLERS),
                    include_in_schema=False,
                )
            )
        app_config.state["knm"] = knm
        for exc_type, handler in EXCEPTION_HANDLERS.items():
            if exc_type is not HTTPException or exc_type in app_config.exception_handlers:
                continue
            if exc_type is HTTPException and any(
                key in app_config.exception_handlers for key in (404, 405, HTTPException)
            ):
                continue
            app_config.exception_handlers[exc_type] = handler
        if app_config.openapi_config is not None:
            _add_security_scheme(app_config.openapi_config)
        own_schema = f"{self.config.path_prefix.rstrip('/')}/schema"
        if (
            self.config.path_prefix
            and app_config.openapi_config is not None
            # knm's standalone app (create_app) serves its whole schema there already.
            and (app_config.openapi_config.path or "").rstrip("/") != own_schema
        ):
            app_config.route_handlers.append(_schema_router(self.config.path_prefix))

        @asynccontextmanager
        async def lifespan(_: Litestar) -> AsyncIterator[None]:
            await knm.start()
            try:
                yield
            finally:
                await knm.stop()

        app_config.lifespan.append(lifespan)
        return app_config


def _add_security_scheme(config: OpenAPIConfig) -> None:
    """knm's bearer scheme beside the host's own components (the ``/schema`` UI's Authorize)."""
    components = config.components
    if isinstance(components, list):
        components.append(Components(security_schemes={BEARER: SECURITY_SCHEME}))
        return
    schemes = dict(components.security_schemes or {})
    schemes.setdefault(BEARER, SECURITY_SCHEME)
    components.security_schemes = schemes


def _content_routes(registry: Any) -> list[Any]:
    from knm.core.content import routes_for

    return routes_for(registry)


def _schema_router(prefix: str) -> Router:
    """knm's own OpenAPI document under its prefix, limited to knm's paths."""
    api = f"{prefix.rstrip('/')}/api/v1"

    @get("/openapi.json", include_in_schema=False, opt={"public": True})
    async def knm_openapi(request: Any) -> Response[Any]:
        document = request.app.openapi_schema.to_schema()
        document["paths"] = {
            path: item for path, item in document.get("paths", {}).items() if path.startswith(api)
        }
        return Response(document, media_type="application/json")

    return Router(path=f"{prefix.rstrip('/')}/schema", route_handlers=[knm_openapi])
