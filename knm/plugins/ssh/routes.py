"""``/automation/ssh/host-keys``: the pinned host keys — list them, pin one, forget one.

Forgetting a pin is how an admin accepts a rebuilt node under ``tofu`` (its next connection
pins the new key); pinning one by hand is how nodes are admitted under ``strict``.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncssh
import msgspec
from litestar import Request, delete, get, put

from knm.core.auth.guards import ADMIN, VIEWER
from knm.core.envelope import Done, Envelope, PageNo, PageSize, offset, ok
from knm.core.errors import Invalid, NotFound
from knm.plugins.ssh import hostkeys
from knm.plugins.ssh.schemas import HostKeyList, HostKeyPin

_BASE = "/automation/ssh/host-keys"
_TAGS = ["ssh"]


class PinRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: One OpenSSH public key line ("ssh-ed25519 AAAA... [comment]").
    public_key: Annotated[str, msgspec.Meta(max_length=16 * 1024)]


@get(_BASE, guards=[VIEWER], tags=_TAGS, summary="Pinned SSH host keys")
async def list_host_keys(
    request: Request[Any, Any, Any],
    cluster: str | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[HostKeyList]:
    pool = request.app.state["knm"].pool
    total, pins = await hostkeys.list_pins(pool, cluster, page_size, offset(page, page_size))
    return ok(HostKeyList(total, pins))


@put(
    f"{_BASE}/{{cluster:str}}/{{node:str}}",
    guards=[ADMIN],
    tags=_TAGS,
    summary="Pin a node's host key (replacing any pin)",
)
async def pin_host_key(
    request: Request[Any, Any, Any], cluster: str, node: str, data: PinRequest
) -> Envelope[HostKeyPin]:
    knm = request.app.state["knm"]
    try:
        key = asyncssh.import_public_key(data.public_key)
    except (asyncssh.KeyImportError, ValueError):
        raise Invalid("public_key is not an SSH public key") from None
    async with knm.pool.acquire() as conn:
        pinned = await hostkeys.set_pin(conn, cluster, node, key)
        await knm.audit(
            request, "ssh.host_key.pin", f"{cluster}/{node}", conn=conn,
            detail={"fingerprint": pinned.fingerprint},
        )  # fmt: skip
    return ok(pinned, "host key pinned")


@delete(
    f"{_BASE}/{{cluster:str}}/{{node:str}}",
    guards=[ADMIN],
    status_code=200,
    tags=_TAGS,
    summary="Forget a node's pinned host key",
)
async def forget_host_key(request: Request[Any, Any, Any], cluster: str, node: str) -> Done:
    knm = request.app.state["knm"]
    async with knm.pool.acquire() as conn:
        if not await hostkeys.forget(conn, cluster, node):
            raise NotFound(f"no host key pinned for node {node} of cluster {cluster}")
        await knm.audit(request, "ssh.host_key.forget", f"{cluster}/{node}", conn=conn)
    return ok(message="host key forgotten")


ROUTES = [list_host_keys, pin_host_key, forget_host_key]
