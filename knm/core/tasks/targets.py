"""From a request's cluster and node names (or selector) to the nodes a task runs on."""

from __future__ import annotations

from typing import Any

from knm.core.tasks.executor import Prepared


async def prepare_targets(knm: Any, request: Any) -> Prepared:
    """The request's credential (decrypted once), cluster (read once) and nodes with addresses
    and ports (node's port, else credential's, else 22): what ``prepare`` carries to ``run``."""
    from knm.core.targets import resolve_targets

    credential = None
    credential_id = getattr(request, "credential_id", None)
    if credential_id is not None:
        from knm.core.bounds import fits_bigint
        from knm.core.credentials import load_credential
        from knm.core.errors import NotFound

        if not fits_bigint(credential_id):
            raise NotFound(f"Credential ID {credential_id} not found")

        credential = await load_credential(knm, credential_id)
    port = credential.port if credential is not None else None
    resolution = await resolve_targets(knm, request, credential_port=port)
    return Prepared(
        nodes=resolution.nodes,
        credential=credential,
        cluster=resolution.source,
    )
