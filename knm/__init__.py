"""knm — automation for the nodes of Kubernetes clusters.

The public API: build an app (``create_app``), mount knm in your own Litestar app
(``KnmPlugin(KnmConfig(...))``), and write plugins (``hookimpl`` and the types hooks return).
"""

from __future__ import annotations

# Not ``typing``: this runs before the ``knm`` program's Ctrl-C guard (``knm.cli.entry``), so
# it imports nothing at all; type checkers know the name.
TYPE_CHECKING = False

__version__ = "0.1.0"

#: What a client-only install says when asked for the server (``knm serve``, ``knm.create_app``).
SERVER_MISSING = (
    "the knm server is not installed (this is the client-only kube-node-manager-client); "
    "install kube-node-manager (from knm's source tree: pip install .)"
)

__all__ = [
    "CommandContext",
    "ExecRequest",
    "Executor",
    "ExecutorSettings",
    "FeatureSpec",
    "HostKeys",
    "Knm",
    "KnmConfig",
    "KnmPlugin",
    "MigrationSet",
    "NodeResult",
    "Prepared",
    "RunResult",
    "StepOutcome",
    "StepRun",
    "StepType",
    "TargetNode",
    "TaskContext",
    "Transport",
    "TransportError",
    "Violation",
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
    # The type of the running knm that hooks, executors and providers are handed.
    "Knm": "knm.core.state",
    # Writing executors and step types, and running shell on nodes (``ctx.run_shell``).
    "ExecRequest": "knm.core.tasks",
    "Executor": "knm.core.tasks",
    "NodeResult": "knm.core.tasks",
    "Prepared": "knm.core.tasks",
    "TargetNode": "knm.core.tasks",
    "TaskContext": "knm.core.tasks",
    "StepOutcome": "knm.core.tasks.steps",
    "StepRun": "knm.core.tasks.steps",
    "StepType": "knm.core.tasks.steps",
    "CommandContext": "knm.core.policy",
    "Violation": "knm.core.policy",
    "HostKeys": "knm.core.transport",
    "RunResult": "knm.core.transport",
    "Transport": "knm.core.transport",
    "TransportError": "knm.core.transport",
}

if TYPE_CHECKING:
    from typing import Any

    from knm.core.app import create_app
    from knm.core.config import KnmConfig
    from knm.core.db import MigrationSet
    from knm.core.features import ExecutorSettings, FeatureSpec
    from knm.core.hookspecs import hookimpl
    from knm.core.litestar_plugin import KnmPlugin
    from knm.core.policy import CommandContext, Violation
    from knm.core.state import Knm
    from knm.core.tasks import ExecRequest, Executor, NodeResult, Prepared, TargetNode, TaskContext
    from knm.core.tasks.steps import StepOutcome, StepRun, StepType
    from knm.core.transport import HostKeys, RunResult, Transport, TransportError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knm' has no attribute {name!r}")
    import importlib

    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # The client-only distribution (kube-node-manager-client) ships this module without
        # the server's: say which install has it rather than "No module named 'knm.core'".
        if exc.name == "knm.core":
            raise ModuleNotFoundError(f"knm.{name}: {SERVER_MISSING}", name=exc.name) from None
        raise
    return getattr(found, name)
