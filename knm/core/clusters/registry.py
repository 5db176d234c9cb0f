"""Which provider serves which kind: collected from ``knm_cluster_providers`` once per ``Knm``."""

from __future__ import annotations

from typing import Any

from knm.core.clusters.provider import COMMON_FIELDS, ClusterProvider, config_fields
from knm.core.errors import Invalid, KnmError
from knm.core.manager import collect

_CACHE = "_cluster_providers"


class ProviderConflict(KnmError):
    """The loaded plugins disagree (two providers for one kind): a deployment error."""

    message = "cluster providers misconfigured"


def providers_of(knm: Any) -> dict[str, ClusterProvider]:
    """Every loaded provider by kind; checked and cached on ``knm`` at first use."""
    cached: dict[str, ClusterProvider] | None = getattr(knm, _CACHE, None)
    if cached is not None:
        return cached
    found: dict[str, ClusterProvider] = {}
    for provider in collect(knm.pm.hook.knm_cluster_providers()):
        kind = getattr(provider, "kind", "")
        if not kind or not isinstance(kind, str):
            raise ProviderConflict(f"cluster provider {provider!r} has no kind")
        if kind in found:
            raise ProviderConflict(
                f"cluster kind {kind!r} is provided twice: by {type(found[kind]).__name__} "
                f"and {type(provider).__name__}"
            )
        fields = set(config_fields(provider))
        if clash := sorted(fields & COMMON_FIELDS):
            raise ProviderConflict(
                f"cluster kind {kind!r}: config fields {clash} clash with the common fields"
            )
        if missing := sorted(set(provider.secret_fields) - fields):
            raise ProviderConflict(
                f"cluster kind {kind!r}: secret fields {missing} are not config fields"
            )
        found[kind] = provider
    setattr(knm, _CACHE, found)
    return found


def provider_for(knm: Any, kind: str) -> ClusterProvider:
    """The provider of ``kind``, or ``Invalid`` listing the kinds that exist."""
    providers = providers_of(knm)
    try:
        return providers[kind]
    except KeyError:
        known = ", ".join(sorted(providers)) or "none"
        raise Invalid(f"unknown cluster kind {kind!r}; known kinds: {known}") from None
