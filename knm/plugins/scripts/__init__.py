"""The scripts executor: stored shell and python scripts with typed parameters."""

from __future__ import annotations

from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.scripts.schemas import ScriptsSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("scripts", ScriptsSettings, description="Script library execution")]
