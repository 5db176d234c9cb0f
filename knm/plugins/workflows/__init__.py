"""Workflows: DAGs of steps of any registered type, rolled through node batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knm.core.db import MigrationSet
from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.workflows import routes
from knm.plugins.workflows.approval import ApprovalStep
from knm.plugins.workflows.builtins import builtin_workflows
from knm.plugins.workflows.executor import WorkflowExecutor
from knm.plugins.workflows.library import WORKFLOW
from knm.plugins.workflows.schemas import WorkflowsSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("workflows", WorkflowsSettings, description="Workflow execution")]


@hookimpl
def knm_executors() -> list[Any]:
    return [WorkflowExecutor()]


@hookimpl
def knm_step_types() -> list[Any]:
    return [ApprovalStep()]


@hookimpl
def knm_content_kinds() -> list[Any]:
    return [WORKFLOW]


@hookimpl
def knm_builtin_content() -> list[Any]:
    return builtin_workflows()


@hookimpl
def knm_routes() -> list[Any]:
    return routes.ROUTES


@hookimpl
def knm_migrations() -> list[MigrationSet]:
    return [MigrationSet("workflows", Path(__file__).with_name("migrations"))]
