"""The scripts executor: stored shell and python scripts with typed parameters."""

from __future__ import annotations

from knm.core.content import BuiltinContent, ContentKind
from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.scripts.executor import ScriptExecutor
from knm.plugins.scripts.library import SCRIPT, builtin_scripts
from knm.plugins.scripts.schemas import ScriptsSettings

_EXECUTOR = ScriptExecutor()


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("scripts", ScriptsSettings, description="Script library execution")]


@hookimpl
def knm_executors() -> list[ScriptExecutor]:
    return [_EXECUTOR]


@hookimpl
def knm_content_kinds() -> list[ContentKind]:
    return [SCRIPT]


@hookimpl
def knm_builtin_content() -> list[BuiltinContent]:
    return builtin_scripts()
