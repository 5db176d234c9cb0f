"""The SSH executor: one command fanned out to many nodes, and the SSH transport it runs on."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from knm.core.db import MigrationSet
from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.ssh.executor import SshExecutor
from knm.plugins.ssh.routes import ROUTES
from knm.plugins.ssh.schemas import SshSettings
from knm.plugins.ssh.transport import TRANSPORT, SshTransport

_EXECUTOR = SshExecutor()


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("ssh", SshSettings, description="SSH command execution")]


@hookimpl
def knm_executors() -> list[SshExecutor]:
    return [_EXECUTOR]


@hookimpl
def knm_transports() -> list[SshTransport]:
    return [TRANSPORT]


@hookimpl
def knm_routes() -> list[Any]:
    return list(ROUTES)


@hookimpl
def knm_migrations() -> list[MigrationSet]:
    return [MigrationSet("ssh", Path(__file__).parent / "migrations")]


@hookimpl
def knm_lifespan() -> list[Callable[[Any], AbstractAsyncContextManager[None]]]:
    return [TRANSPORT.lifespan]
