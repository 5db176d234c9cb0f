"""Kubernetes: the ``kubernetes`` cluster provider and the ``k8s`` executor (cordon, uncordon,
drain, label, unlabel, taint, untaint, record_boot_id, wait_ready)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from knm.core.clusters import ClusterProvider
from knm.core.db import MigrationSet
from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.core.tasks import Executor
from knm.plugins.k8s.client import lifespan
from knm.plugins.k8s.executor import K8sExecutor
from knm.plugins.k8s.provider import KubernetesProvider
from knm.plugins.k8s.schemas import K8sSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("k8s", K8sSettings, description="Kubernetes node actions")]


@hookimpl
def knm_executors() -> list[Executor]:
    return [K8sExecutor()]


@hookimpl
def knm_cluster_providers() -> list[ClusterProvider]:
    return [KubernetesProvider()]


@hookimpl
def knm_migrations() -> list[MigrationSet]:
    return [MigrationSet("k8s", Path(__file__).parent / "migrations")]


@hookimpl
def knm_lifespan() -> list[Callable[[Any], AbstractAsyncContextManager[None]]]:
    return [lifespan]
