"""``create_app()``: the standalone knm server, built from the same plugin embedders use."""

from __future__ import annotations

from litestar import Litestar
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig

from knm import __version__
from knm.core import schema_ui
from knm.core.config import KnmConfig
from knm.core.litestar_plugin import KnmPlugin
from knm.core.runtime import Knm


def create_app(config: KnmConfig | None = None, *, knm: Knm | None = None) -> Litestar:
    config = config or (knm.config if knm else KnmConfig.from_env())
    plugin = KnmPlugin(config, knm=knm)
    prefix = config.path_prefix.rstrip("/")
    schema_path = f"{prefix}/schema"
    return Litestar(
        route_handlers=[schema_ui.assets_router(schema_path)],
        plugins=[plugin],
        openapi_config=OpenAPIConfig(
            title="knm — Kube Node Manager automation API",
            version=__version__,
            path=schema_path,
            render_plugins=[schema_ui.render_plugin(schema_path)],
        ),
        logging_config=LoggingConfig(
            root={"level": config.log_level.upper(), "handlers": ["queue_listener"]},
            log_exceptions="debug",
            disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 422, 429},
        ),
        debug=False,
    )
