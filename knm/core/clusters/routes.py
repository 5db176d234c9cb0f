"""``/clusters``: admins manage clusters, every role reads them and lists their nodes.

A cluster's body is flat: the common fields (``name``, ``kind``, ``description``, ``bastion``)
beside its provider's config fields (static: ``nodes``). The provider is known only once ``kind``
is read, so the body is decoded here in two steps instead of by Litestar, with the same rules:
bad shape or types → 400 naming the field, bad values → 422 listing every problem.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, delete, get, post, put

from knm.core.auth.guards import ADMIN, VIEWER
from knm.core.bounds import fits_bigint
from knm.core.clusters import store
from knm.core.clusters.provider import Bastion, Cluster, ClusterProvider, Node, config_fields
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, offset, ok
from knm.core.errors import BadRequest, Conflict, Invalid, KnmError, NotFound
from knm.core.selectors import parse_selector
from knm.core.tasks import locks
from knm.wire.errors import field_message

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.clusters")

_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
MAX_DESCRIPTION = 1024
#: Problems listed in one 422 before the rest are counted.
MAX_PROBLEMS = 20


class ClusterFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    kind: str
    description: str = ""
    bastion: Bastion | None = None
    #: Used by execute requests of this cluster that name no ``credential_id``.
    default_credential_id: int | None = None


class ClusterChanges(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A PUT: fields left out keep their value; ``"bastion": null`` removes the bastion."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    kind: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    bastion: Bastion | msgspec.UnsetType | None = msgspec.UNSET
    default_credential_id: int | msgspec.UnsetType | None = msgspec.UNSET


class ClusterBody(msgspec.Struct, kw_only=True):
    """``POST /clusters``, as the OpenAPI document shows it: the common fields, and the
    provider's config fields beside them (static: ``nodes: [{name, address, port, labels}]``).
    The handler decodes the body itself, once ``kind`` says which provider's fields are
    allowed; this struct only checks the common part's shape first."""

    name: str
    kind: str
    description: str = ""
    bastion: Bastion | None = None
    default_credential_id: int | None = None


class ClusterChangesBody(msgspec.Struct, kw_only=True):
    """``PUT /clusters/{name}``: any of the common fields and the provider's; those left out
    keep their value."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    kind: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    bastion: Bastion | msgspec.UnsetType | None = msgspec.UNSET
    default_credential_id: int | msgspec.UnsetType | None = msgspec.UNSET


class ClusterOut(msgspec.Struct, kw_only=True):
    """A cluster as the API shows it: these fields and the provider's public config fields
    (static: ``nodes``) beside them; never its secret fields."""

    id: int
    name: str
    kind: str
    description: str
    bastion: Bastion | None
    default_credential_id: int | None
    created_at: datetime | None
    updated_at: datetime | None


class ClusterList(msgspec.Struct):
    total: int
    clusters: list[ClusterOut]


class NodeList(msgspec.Struct):
    total: int
    nodes: list[Node]


class LockList(msgspec.Struct):
    total: int
    locks: list[locks.HeldLock]


_COMMON = frozenset(f.encode_name for f in msgspec.structs.fields(ClusterFields))


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


# --- decoding and rules ------------------------------------------------------------------------


def _object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        values = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise BadRequest("body must be a JSON object")
    return values


def _convert(values: Any, target: type[Any]) -> Any:
    try:
        return msgspec.convert(values, target, strict=True)
    except msgspec.ValidationError as exc:
        raise BadRequest(field_message(str(exc))) from None


def _config_part(provider: ClusterProvider, values: dict[str, Any]) -> dict[str, Any]:
    """The body's provider fields; any field neither common nor the provider's is a 400."""
    known = set(config_fields(provider))
    rest = {key: value for key, value in values.items() if key not in _COMMON}
    if unknown := sorted(set(rest) - known):
        raise BadRequest(f"Object contains unknown field `{unknown[0]}`")
    return rest


def _problems(name: str, description: str, bastion: Bastion | None) -> list[str]:
    found = []
    if not _NAME.fullmatch(name):
        found.append(
            f"name {name!r} must be 1-63 characters of lowercase letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit"
        )
    if len(description) > MAX_DESCRIPTION:
        found.append(f"description is longer than {MAX_DESCRIPTION} characters")
    if "\x00" in description:
        found.append("description must not contain NUL characters")
    if bastion is not None:
        found.extend(bastion.problems())
    return found


def _require(provider: ClusterProvider, config: Any) -> None:
    """A required field left out is a malformed body (400), as msgspec says it for the rest."""
    if missing := provider.missing(config):
        raise BadRequest(f"Object missing required field `{missing[0]}`")


def _refuse(problems: list[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"and {len(problems) - MAX_PROBLEMS} more problems")
    raise Invalid("; ".join(shown))


async def _check_bastion(conn: Any, bastion: Bastion | None) -> None:
    if bastion is None or bastion.credential_id is None:
        return
    if not fits_bigint(bastion.credential_id) or not await store.credential_exists(
        conn, bastion.credential_id
    ):
        raise NotFound(f"Credential ID {bastion.credential_id} not found")


async def _check_default_credential(conn: Any, credential_id: int | None) -> None:
    if credential_id is None:
        return
    if credential_id < 1 or not await store.credential_exists(conn, credential_id):
        raise NotFound(f"Credential ID {credential_id} not found")


def present(knm: Knm, row: store.ClusterRow, config: Any = None) -> dict[str, Any]:
    """A cluster as the API shows it: common fields and the provider's public config, flat."""
    shown: dict[str, Any] = row.config
    provider = knm.registry.cluster_providers.get(row.kind)
    if provider is not None:
        try:
            if config is None:
                config = store.full_config(knm, provider, row)
            shown = provider.public_config(config)
        except KnmError as exc:
            # Listing must not fail for one bad row; the stored part holds no secrets.
            log.warning("cluster %s: showing the stored config only: %s", row.name, exc.error)
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "description": row.description,
        **shown,
        "bastion": row.bastion,
        "default_credential_id": row.default_credential_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


# --- routes ------------------------------------------------------------------------------------


@get("/clusters", guards=[VIEWER], summary="List clusters")
async def list_clusters(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[ClusterList]:
    knm = _knm(request)
    total, rows = await store.list_rows(knm.pool, page_size, offset(page, page_size))
    # Sent as built: each cluster's provider fields sit beside the common ones.
    return ok({"total": total, "clusters": [present(knm, row) for row in rows]})


@get("/clusters/{name:str}", guards=[VIEWER], summary="One cluster")
async def get_cluster(request: Request[Any, Any, Any], name: str) -> Envelope[ClusterOut]:
    knm = _knm(request)
    return ok(present(knm, await store.get_row(knm.pool, name)))


@post("/clusters", guards=[ADMIN], summary="Register a cluster")
async def create_cluster(
    request: Request[Any, Any, Any], data: ClusterBody
) -> Envelope[ClusterOut]:
    knm = _knm(request)
    values = _object(await request.body())
    fields: ClusterFields = _convert(
        {k: v for k, v in values.items() if k in _COMMON}, ClusterFields
    )
    provider = knm.registry.provider_for(fields.kind)
    config = _convert(_config_part(provider, values), provider.config_type)
    _require(provider, config)
    _refuse(_problems(fields.name, fields.description, fields.bastion) + provider.validate(config))
    async with knm.pool.acquire() as conn:
        await _check_bastion(conn, fields.bastion)
        await _check_default_credential(conn, fields.default_credential_id)
        if await conn.fetchval("SELECT 1 FROM clusters WHERE name = $1", fields.name):
            raise Conflict(f"cluster {fields.name!r} already exists")
        cluster = Cluster(
            id=None, name=fields.name, kind=fields.kind, description=fields.description,
            config=config, bastion=fields.bastion,
        )  # fmt: skip
        await provider.check(knm, cluster)
        async with conn.transaction():
            cluster_id = await store.next_id(conn)
            shown, secret = store.split_config(provider, config)
            row = await store.insert(
                conn,
                store.ClusterRow(
                    id=cluster_id, name=fields.name, kind=fields.kind,
                    description=fields.description, config=shown,
                    secrets=store.seal(knm, cluster_id, secret),
                    bastion=None if fields.bastion is None else msgspec.to_builtins(fields.bastion),
                    default_credential_id=fields.default_credential_id,
                ),
            )  # fmt: skip
            await knm.audit(
                request, "cluster.create", row.name, conn=conn, detail={"kind": row.kind}
            )
    return created(present(knm, row, config), "cluster created")


@put("/clusters/{name:str}", guards=[ADMIN], summary="Change a cluster (fields left out are kept)")
async def update_cluster(
    request: Request[Any, Any, Any], name: str, data: ClusterChangesBody
) -> Envelope[ClusterOut]:
    knm = _knm(request)
    values = _object(await request.body())
    changes: ClusterChanges = _convert(
        {k: v for k, v in values.items() if k in _COMMON}, ClusterChanges
    )
    async with knm.pool.acquire() as conn, conn.transaction():
        row = await store.get_row(conn, name, lock=True)
        provider = knm.registry.provider_for(row.kind)
        if changes.kind is not msgspec.UNSET and changes.kind != row.kind:
            raise Invalid(f"a cluster's kind cannot change: {row.name} is {row.kind}")
        config_changes = _config_part(provider, values)
        config = store.full_config(knm, provider, row)
        if config_changes:
            config = _convert(
                {**msgspec.to_builtins(config), **config_changes}, provider.config_type
            )
        new_name = row.name if changes.name is msgspec.UNSET else changes.name
        description = (
            row.description if changes.description is msgspec.UNSET else changes.description
        )
        if changes.bastion is msgspec.UNSET:
            bastion = None if row.bastion is None else msgspec.convert(row.bastion, Bastion)
        else:
            bastion = changes.bastion
        _require(provider, config)
        _refuse(_problems(new_name, description, bastion) + provider.validate(config))
        if changes.bastion is not msgspec.UNSET:
            await _check_bastion(conn, bastion)
        default_credential_id = row.default_credential_id
        if changes.default_credential_id is not msgspec.UNSET:
            default_credential_id = changes.default_credential_id
            await _check_default_credential(conn, default_credential_id)
        secrets = row.secrets
        if config_changes:
            cluster = Cluster(
                id=row.id, name=new_name, kind=row.kind, description=description,
                config=config, bastion=bastion,
                created_at=row.created_at, updated_at=row.updated_at,
            )  # fmt: skip
            await provider.check(knm, cluster)
            shown, secret = store.split_config(provider, config)
            secrets = store.seal(knm, row.id, secret)
        else:
            shown = row.config
        updated = await store.update(
            conn,
            msgspec.structs.replace(
                row, name=new_name, description=description, config=shown, secrets=secrets,
                bastion=None if bastion is None else msgspec.to_builtins(bastion),
                default_credential_id=default_credential_id,
            ),
        )  # fmt: skip
        await knm.audit(
            request, "cluster.update", row.name, conn=conn, detail={"fields": sorted(values)}
        )
    return ok(present(knm, updated, config), "cluster updated")


@delete("/clusters/{name:str}", guards=[ADMIN], status_code=200, summary="Remove a cluster")
async def delete_cluster(request: Request[Any, Any, Any], name: str) -> Done:
    knm = _knm(request)
    async with knm.pool.acquire() as conn, conn.transaction():
        await store.delete(conn, name)
        await knm.audit(request, "cluster.delete", name, conn=conn)
    return ok(message="cluster deleted")


@get("/clusters/{name:str}/nodes", guards=[VIEWER], summary="A cluster's nodes")
async def list_nodes(
    request: Request[Any, Any, Any],
    name: str,
    selector: str | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[NodeList]:
    knm = _knm(request)
    chosen = parse_selector(selector) if selector else None
    cluster = await store.get_cluster(knm, name)
    nodes = await knm.registry.provider_for(cluster.kind).list_nodes(knm, cluster)
    if chosen:
        nodes = [node for node in nodes if chosen.matches(node.labels)]
    start = offset(page, page_size)
    return ok(NodeList(len(nodes), nodes[start : start + page_size]))


@get("/locks", guards=[VIEWER], summary="Node locks held by pending and running tasks")
async def list_locks(
    request: Request[Any, Any, Any],
    cluster_name: str | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[LockList]:
    """The per-node locks of disruptive work (cordon, drain, disruptive workflow steps) that
    active tasks hold now, by cluster and node, with the holding task's kind and user."""
    knm = _knm(request)
    total, found = await locks.held(knm.pool, cluster_name, page_size, offset(page, page_size))
    return ok(LockList(total, found))


ROUTES = [
    list_clusters,
    get_cluster,
    create_cluster,
    update_cluster,
    delete_cluster,
    list_nodes,
    list_locks,
]
