"""The ``/schema`` UI (Swagger UI) served with its own assets, so it works offline: the
scripts, styles and icon come from knm (the ``openapi-ui-bundles`` package), never a CDN.

Its Authorize button takes the bearer token of knm's security scheme; "try it" calls then carry
it."""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from openapi_ui_bundles.swagger_ui import static_path

#: Where the assets are served, under the schema's path.
ASSETS = "/assets"


def render_plugin(schema_path: str) -> SwaggerRenderPlugin:
    """Swagger UI at ``schema_path`` itself (and ``/swagger`` under it), loading only knm's
    copies of its assets."""
    assets = f"{schema_path.rstrip('/')}{ASSETS}"
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{assets}/swagger-ui-bundle.js",
        css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        # The token entered in Authorize survives a reload of the page.
        init_oauth={},
    )


def assets_router(schema_path: str) -> Router:
    return create_static_files_router(
        path=f"{schema_path.rstrip('/')}{ASSETS}",
        directories=[static_path],
        name="knm-schema-assets",
        cache_control=CacheControlHeader(max_age=86_400, public=True),
        include_in_schema=False,
        opt={"public": True},
    )
