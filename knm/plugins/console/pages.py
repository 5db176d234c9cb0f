"""The console's page and assets, read once from the package and served with headers that keep
the browser to them: a Content-Security-Policy without ``unsafe-inline`` (scripts, styles and
connections from knm only), no framing, no MIME sniffing, no referrer."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.response import Response

from knm.core.errors import NotFound

STATIC = Path(__file__).parent / "static"

#: ``connect-src 'self'`` covers the progress WebSocket (ws/wss to the page's own host, CSP 3).
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: Litestar adds ``; charset=utf-8`` to the text types.
_TYPES = {
    ".js": "text/javascript",
    # Vendored ES modules keep their upstream name (js-yaml.mjs; see THIRD_PARTY.md).
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _asset(body: bytes, media_type: str) -> Asset:
    return Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def load_assets(folder: Path = STATIC) -> dict[str, Asset]:
    """Every file the page may load, by its name: a request can reach nothing else."""
    return {
        path.name: _asset(path.read_bytes(), _TYPES[path.suffix])
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in _TYPES and path.name != "index.html"
    }


ASSETS = load_assets()
_INDEX = (STATIC / "index.html").read_text()
_pages: dict[str, Asset] = {}


def index_for(prefix: str) -> Asset:
    """The page with its asset URLs under knm's prefix (``/ops/console/app.js``), absolute so
    that the page works at ``/ops`` and ``/ops/`` alike."""
    page = _pages.get(prefix)
    if page is None:
        body = _INDEX.replace("{{prefix}}", html.escape(prefix, quote=True)).encode()
        page = _pages[prefix] = _asset(body, _TYPES[".html"])
    return page


def _send(request: Request[Any, Any, Any], asset: Asset) -> Response[bytes]:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@get("/", include_in_schema=False, opt={"public": True})
async def console_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    prefix = request.app.state["knm"].config.path_prefix.rstrip("/")
    return _send(request, index_for(prefix))


@get("/console/{name:str}", include_in_schema=False, opt={"public": True})
async def console_asset(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(f"console asset {name} not found")
    return _send(request, asset)


ROUTES = [console_page, console_asset]
