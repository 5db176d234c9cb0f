"""knm — automation for the nodes of Kubernetes clusters.

The public API: build an app (``create_app``), mount knm in your own Litestar app
(``KnmPlugin(KnmConfig(...))``), and write plugins (``hookimpl`` and the types hooks return).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ExecutorSettings",
    "FeatureSpec",
    "KnmConfig",
    "KnmPlugin",
    "MigrationSet",
    "__version__",
    "create_app",
    "hookimpl",
]

# Resolved lazily so that `import knm` (done by every plugin, and by `knm.client`) imports
# nothing: not pluggy, not the server.
_LAZY = {
    "hookimpl": "knm.core.hookspecs",
    "KnmConfig": "knm.core.config",
    "KnmPlugin": "knm.core.litestar_plugin",
    "create_app": "knm.core.app",
    "FeatureSpec": "knm.core.features",
    "ExecutorSettings": "knm.core.features",
    "MigrationSet": "knm.core.db",
}

if TYPE_CHECKING:
    from knm.core.app import create_app
    from knm.core.config import KnmConfig
    from knm.core.db import MigrationSet
    from knm.core.features import ExecutorSettings, FeatureSpec
    from knm.core.hookspecs import hookimpl
    from knm.core.litestar_plugin import KnmPlugin


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
