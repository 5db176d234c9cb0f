"""Every hook a knm plugin may implement. Each docstring is that hook's reference.

Hooks are synchronous and declarative: they return objects, and the async work lives on
methods of those objects (pluggy has no async support, and a coroutine is never ``None``).
Every hook here collects the results of all implementations; none is ``firstresult``. The
contribution hooks are called once per app, by the core's registry (``knm.core.registry``):
code looks contributions up in ``knm.registry``, and a name given twice is refused at start-up
naming both plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from knm.core.clusters.provider import ClusterProvider
    from knm.core.content.kinds import BuiltinContent, ContentKind
    from knm.core.db import MigrationSet
    from knm.core.features import FeatureSpec
    from knm.core.policy import CommandContext, Violation
    from knm.core.state import Knm
    from knm.core.tasks.executor import Executor
    from knm.core.tasks.steps import StepType
    from knm.core.transport import Transport
    from knm.wire.tasks import TaskStatus

PROJECT = "knm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def knm_migrations() -> list[MigrationSet]:
    """Return ``list[MigrationSet]``: folders of numbered ``.sql`` files, one namespace each.

    Called once at startup and by ``knm migrate``; each namespace's files are applied in number
    order, exactly once per database.
    """


@hookspec
def knm_features() -> list[FeatureSpec]:
    """Return ``list[FeatureSpec]``: the feature switches and settings structs the plugin adds.

    Called when the app is built. Each spec names a kind (``ssh``), the public switch name
    (``ssh_enabled``) and a settings struct whose defaults apply until an admin changes them
    through ``PUT /api/v1/features/automation/<kind>``.
    """


@hookspec
def knm_routes() -> list[Any]:
    """Return Litestar route handlers or controllers to mount under ``/api/v1``.

    Called once when the app is built. Handlers get knm's authentication, envelope and
    exception handling; mark public handlers with ``opt={"public": True}``.
    """


@hookspec
def knm_pages() -> list[Any]:
    """Return Litestar route handlers to mount under knm's path prefix itself, beside
    ``/api/v1`` rather than under it: web pages and their assets (the console serves ``/``).

    Called once when the app is built. They get knm's error envelope but no authentication:
    a page holds no data of its own and calls the API, with its user's token, for everything
    it shows. Blocking the plugin (``KNM_BLOCKED_PLUGINS``) removes its pages.
    """


@hookspec
def knm_executors() -> list[Executor]:
    """Return ``list[Executor]``: the execution kinds the plugin adds (``ssh``, ``ansible``...).

    Called once when the app is built. Each executor gets the generic execute, status, cancel,
    rerun and history routes under ``/api/v1/automation/<route>/``, and is also a workflow step
    type. Duplicate kinds are an error.
    """


@hookspec
def knm_step_types() -> list[StepType]:
    """Return ``list[StepType]``: workflow step types that are not executors (``approval``...).

    Called once when the app is built. Duplicate names (including executors' kinds) are an error.
    """


@hookspec
def knm_builtin_content() -> list[BuiltinContent]:
    """Return ``list[BuiltinContent]``: playbooks, scripts and workflows shipped as package data.

    Called at startup; each item is upserted by ``(kind, name)``: it keeps its id, and gets a new
    version when its body changed. Builtins are read-only over the API.
    """


@hookspec
def knm_content_kinds() -> list[ContentKind]:
    """Return ``list[ContentKind]``: kinds of stored, versioned content (``playbook``, ``script``).

    Called once when the app is built; each kind's list/get/create/update/delete/versions/clone
    routes are mounted under its ``route``. Duplicate kinds, plurals or routes are an error.
    """


@hookspec
def knm_check_command(command: str, context: CommandContext) -> list[Violation]:
    """Return ``list[Violation]`` for ``command`` (empty when the plugin has no objection).

    Called (through ``knm.core.policy.check``) before any task that runs a shell command is
    created, on stored shell scripts when they are saved, and again on commands rendered inside
    workflows. ``context`` is a ``knm.core.policy.CommandContext``: the executor or step type
    (``kind``), ``cluster_name``, ``username``, ``role`` and ``sudo``. Every implementation must
    pass: one violation blocks the command with 422.
    """


@hookspec
def knm_cluster_providers() -> list[ClusterProvider]:
    """Return ``list[ClusterProvider]``: cluster kinds (``static``, ``kubernetes``) and how they
    list their nodes and resolve a node name to an address.

    Called once when the app is built. Duplicate kinds are an error.
    """


@hookspec
def knm_transports() -> list[Transport]:
    """Return ``list[Transport]`` (``knm.core.transport.Transport``): ways to reach a node and
    run a command there, each under its ``name``.

    Called once when the app is built. Duplicate names are an error.
    ``knm.registry.transport_for`` picks the one for a cluster (``ssh`` for
    every cluster today, served by the ssh plugin). ``TaskContext.run_shell`` runs through it.
    """


@hookspec
def knm_cli(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add subcommands to the ``knm`` command line through ``subparsers.add_parser``.

    Called only when the command line names a command knm does not know itself (so ``knm
    --help`` and knm's own commands start without importing plugins), with the plugins the
    server's settings choose; a blocked plugin is never imported. Set ``func`` with
    ``parser.set_defaults(func=...)``; it receives the parsed namespace and returns an exit code.
    """


@hookspec
def knm_lifespan() -> list[Callable[[Knm], AbstractAsyncContextManager[None]]]:
    """Return ``list[Callable[[Knm], AsyncContextManager]]``: work started with the app.

    Each factory is entered after the database is ready and exited at shutdown, in reverse
    order (connection pools, background loops).
    """


@hookspec
def knm_task_finished(task: TaskStatus) -> None:
    """Called once after a task's terminal state is written, with its ``TaskStatus``.

    For side effects such as notifications. The return value is ignored, and an exception is
    logged and never changes the task.
    """
