"""From a request's cluster and node names (or selector) to the nodes a task runs on, and
``Prepared``: what ``Executor.prepare`` returns and ``run`` is given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.clusters.provider import Node

if TYPE_CHECKING:
    from knm.core.state import Knm

#: A resolved node as an executor sees it: the provider's ``Node``, its port decided. The one
#: struct from the provider to the executor (and back from ``task_nodes`` when a task is
#: recovered); a status answer reads the row straight into the wire's ``NodeResult``.
TargetNode = Node


class Prepared(msgspec.Struct, kw_only=True):
    """What ``prepare`` returns: the nodes, and what status answers should show."""

    nodes: list[TargetNode]
    #: Extra fields of the execute and status answers (``command``, ``playbook_name`` …).
    summary: dict[str, Any] = msgspec.field(default_factory=dict)
    #: The request as it should be stored (secrets removed); defaults to the request itself.
    stored_request: dict[str, Any] | None = None
    #: Values kept sealed with the task (``ctx.secrets`` at run time), masked in all output.
    secrets: dict[str, str] = msgspec.field(default_factory=dict)
    #: The request's ``DecryptedCredential`` and ``Cluster``, loaded once: a task started in
    #: this process runs with them instead of reading and decrypting them again.
    credential: Any = None
    cluster: Any = None
    #: Anything else ``prepare`` loaded that ``run`` needs (``ctx.carried``), under keys the
    #: executor owns. Only a task claimed in this process gets it: ``run`` loads what is absent.
    carried: dict[str, Any] = msgspec.field(default_factory=dict)


async def prepare_targets(knm: Knm, request: Any) -> Prepared:
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
