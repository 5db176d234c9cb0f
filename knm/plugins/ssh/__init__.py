"""The SSH executor: one command fanned out to many nodes."""

from __future__ import annotations

from knm.core.features import FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.plugins.ssh.schemas import SshSettings


@hookimpl
def knm_features() -> list[FeatureSpec]:
    return [FeatureSpec("ssh", SshSettings, description="SSH command execution")]
