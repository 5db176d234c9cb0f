"""Kubernetes node actions: cordon, drain, label, taint, wait Ready."""

from __future__ import annotations

from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.k8s.schemas import K8sSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("k8s", K8sSettings, description="Kubernetes node actions")]
