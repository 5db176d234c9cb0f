"""The ``static`` cluster provider: clusters whose nodes are listed by hand."""

from __future__ import annotations

from knm.core.clusters import ClusterProvider
from knm.core.hookspecs import hookimpl
from knm.plugins.static.provider import StaticProvider


@hookimpl
def knm_cluster_providers() -> list[ClusterProvider]:
    return [StaticProvider()]
