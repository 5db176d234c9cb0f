"""The web console: a page at knm's path prefix (``/``) built only on the public API.

Everything it shows comes from ``/api/v1`` and the progress WebSocket, called by the browser
with the user's own token, so the console can do nothing a client cannot;
``KNM_BLOCKED_PLUGINS=console`` removes it. The page and its assets are plain ES modules and a
stylesheet shipped as package data: no build step, no CDN.
"""

from __future__ import annotations

from typing import Any

from knm.core.hookspecs import hookimpl
from knm.plugins.console.pages import ROUTES


@hookimpl
def knm_pages() -> list[Any]:
    return list(ROUTES)
