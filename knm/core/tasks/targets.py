"""From a request's cluster and node names (or selector) to the nodes a task runs on."""

from __future__ import annotations

from typing import Any

from knm.core.tasks.executor import TargetNode


async def credential_port(knm: Any, credential_id: int | None) -> int | None:
    if credential_id is None:
        return None
    from knm.core.credentials import load_credential

    return (await load_credential(knm, credential_id)).port


async def resolve(knm: Any, request: Any) -> list[TargetNode]:
    """The request's nodes with addresses and ports (node's port, else credential's, else 22)."""
    from knm.core.targets import resolve_targets

    port = await credential_port(knm, getattr(request, "credential_id", None))
    resolution = await resolve_targets(knm, request, credential_port=port)
    return [
        TargetNode(name=n.name, address=n.address, port=n.port, labels=dict(n.labels))
        for n in resolution.nodes
    ]
