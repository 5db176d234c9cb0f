"""Workflows: DAGs of steps of any registered type."""

from __future__ import annotations

from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.workflows.schemas import WorkflowsSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("workflows", WorkflowsSettings, description="Workflow execution")]
