"""The route factory: list, get, create, update, delete, versions and clone for each kind.

Handlers are closures over their kind; their signatures are set explicitly, because the body
and response types are the kind's own structs (``PlaybookCreate``, ``ScriptList``) and the list
filters include the kind's ``filters``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter as Param

from knm.core.auth.guards import OPERATOR, VIEWER, Guard, principal_of
from knm.core.content import service, store
from knm.core.content.kinds import ContentKind
from knm.core.content.schemas import CloneRequest, item_out, list_item_out, schemas_for
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, offset, ok
from knm.core.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from knm.core.state import Knm

_KW = inspect.Parameter.KEYWORD_ONLY
_REQUEST = inspect.Parameter("request", _KW, annotation=Request[Any, Any, Any])
_ITEM_ID = inspect.Parameter("item_id", _KW, annotation=int)
_PAGING = [
    inspect.Parameter("page", _KW, default=1, annotation=PageNo),
    inspect.Parameter("page_size", _KW, default=20, annotation=PageSize),
]


def _signed(fn: Callable[..., Any], params: list[inspect.Parameter], returns: Any) -> Any:
    fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return fn


def _text(name: str, value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise BadRequest(f"{name}: must not contain NUL characters")
    return value


def _feature_guard(feature: str) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        await connection.app.state["knm"].features.require(feature)

    guard.__name__ = f"require_{feature}_enabled"
    return guard  # type: ignore[return-value]


def kind_routes(kind: ContentKind) -> list[Any]:
    """The route handlers of one kind, mounted under ``kind.route``."""
    s = schemas_for(kind)
    gate = [_feature_guard(kind.feature)] if kind.feature else []
    readers, writers = [VIEWER, *gate], [OPERATOR, *gate]
    route, one, tags = kind.route, f"{kind.route}/{{item_id:int}}", [kind.plural]
    label, lower = kind.label, kind.label.lower()
    extras = msgspec.structs.fields(kind.extras) if kind.extras else ()
    filter_types = {f.name: f.type for f in extras if f.name in kind.filters}
    with_body = kind.list_includes_body or kind.summary is not None

    def _knm(request: Request[Any, Any, Any]) -> Any:
        return request.app.state["knm"]

    def meta(name: str) -> dict[str, Any]:
        return {"name": f"{kind.kind}-{name}", "operation_id": f"{kind.kind}_{name}", "tags": tags}

    async def list_items(request: Request[Any, Any, Any], **params: Any) -> Any:
        query = store.ListQuery(
            category=_text("category", params["category"]),
            is_builtin=params["is_builtin"],
            is_active=params["is_active"],
            tag=_text("tag", params["tag"]),
            q=_text("q", params["q"]),
            extras={
                name: _text(name, params[name]) for name in filter_types if params[name] is not None
            },
            limit=params["page_size"],
            offset=offset(params["page"], params["page_size"]),
        )
        total, items = await store.search(_knm(request).pool, kind, query, with_body=with_body)
        return ok(s.page(total, [list_item_out(kind, item) for item in items]))

    filters = [
        _opt("category", str, "only this category"),
        _opt("is_builtin", bool, "only builtin (true) or user-made (false) items"),
        _opt("is_active", bool, "only active (true) or inactive (false) items"),
        _opt("tag", str, "only items carrying this tag"),
        _opt("q", str, "search in name and description, case-insensitive"),
        *[_opt(name, annotation, f"only this {name}") for name, annotation in filter_types.items()],
    ]
    list_handler = get(route, guards=readers, summary=f"List {kind.plural}", **meta("list"))(
        _signed(list_items, [_REQUEST, *filters, *_PAGING], Envelope[s.page])
    )

    async def read_item(request: Request[Any, Any, Any], item_id: int) -> Any:
        return ok(item_out(kind, await service.load(_knm(request).pool, kind, item_id)))

    read_handler = get(one, guards=readers, summary=f"One {lower}", **meta("get"))(
        _signed(read_item, [_REQUEST, _ITEM_ID], Envelope[s.item])
    )

    async def create_item(request: Request[Any, Any, Any], data: Any) -> Any:
        knm = _knm(request)
        username = principal_of(request).username
        draft = service.draft_from_create(kind, data)
        async with knm.pool.acquire() as conn:
            item = await service.create(knm, conn, kind, draft, username)
            await _audit(knm, request, "create", item, conn)
        return created(item_out(kind, item), f"{lower} created")

    create_handler = post(route, guards=writers, summary=f"Create a {lower}", **meta("create"))(
        _signed(
            create_item,
            [_REQUEST, inspect.Parameter("data", _KW, annotation=s.create)],
            Envelope[s.item],
        )
    )

    async def update_item(request: Request[Any, Any, Any], item_id: int, data: Any) -> Any:
        knm = _knm(request)
        username = principal_of(request).username
        async with knm.pool.acquire() as conn:
            item = await service.update(knm, conn, kind, item_id, data, username)
            await _audit(knm, request, "update", item, conn)
        return ok(item_out(kind, item), f"{lower} updated")

    update_handler = put(
        one,
        guards=writers,
        summary=f"Change a {lower}: only the fields given; the version goes up when the "
        f"{kind.body_field} changes",
        **meta("update"),
    )(
        _signed(
            update_item,
            [_REQUEST, _ITEM_ID, inspect.Parameter("data", _KW, annotation=s.update)],
            Envelope[s.item],
        )
    )

    async def delete_item(request: Request[Any, Any, Any], item_id: int) -> Any:
        knm = _knm(request)
        async with knm.pool.acquire() as conn:
            item = await service.delete(conn, kind, item_id)
            await _audit(knm, request, "delete", item, conn)
        return ok(message=f"{lower} deleted")

    delete_handler = delete(
        one, guards=writers, status_code=200, summary=f"Delete a {lower}", **meta("delete")
    )(_signed(delete_item, [_REQUEST, _ITEM_ID], Done))

    async def list_versions(request: Request[Any, Any, Any], **params: Any) -> Any:
        pool = _knm(request).pool
        item = await service.load(pool, kind, params["item_id"])
        total, rows = await store.versions(
            pool,
            kind,
            item.id,
            limit=params["page_size"],
            offset=offset(params["page"], params["page_size"]),
        )
        return ok(s.version_list(total, [s.version_entry(**dict(row)) for row in rows]))

    versions_handler = get(
        f"{one}/versions",
        guards=readers,
        summary=f"Versions of a {lower}, newest first",
        **meta("versions"),
    )(_signed(list_versions, [_REQUEST, _ITEM_ID, *_PAGING], Envelope[s.version_list]))

    async def read_version(request: Request[Any, Any, Any], item_id: int, version: int) -> Any:
        pool = _knm(request).pool
        item = await service.load(pool, kind, item_id)
        row = await store.version(pool, kind, item.id, version)
        if row is None:
            raise NotFound(f"{label} ID {item_id} has no version {version}")
        values = {
            "version": row["version"],
            "created_at": row["created_at"],
            "created_by": row["created_by"],
            kind.body_field: row["body"],
            **{name: row["extras"][name] for name in kind.versioned if name in row["extras"]},
        }
        return ok(msgspec.convert(values, s.version_detail))

    version_handler = get(
        f"{one}/versions/{{version:int}}",
        guards=readers,
        summary=f"One version of a {lower}",
        **meta("version"),
    )(
        _signed(
            read_version,
            [_REQUEST, _ITEM_ID, inspect.Parameter("version", _KW, annotation=int)],
            Envelope[s.version_detail],
        )
    )

    async def clone_item(request: Request[Any, Any, Any], item_id: int) -> Any:
        knm = _knm(request)
        username = principal_of(request).username
        # The body is optional, so it is decoded here rather than declared as ``data``.
        raw = await request.body()
        try:
            data = msgspec.json.decode(raw, type=CloneRequest) if raw.strip() else CloneRequest()
        except msgspec.ValidationError as exc:
            raise BadRequest(str(exc)) from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        async with knm.pool.acquire() as conn:
            item = await service.clone(conn, kind, item_id, data.name, username)
            await _audit(knm, request, "clone", item, conn, source=item_id)
        return created(item_out(kind, item), f"{lower} cloned")

    clone_handler = post(
        f"{one}/clone",
        guards=writers,
        summary=f'Copy a {lower} (builtins too) into an editable one; body: optional {{"name"}}',
        **meta("clone"),
    )(_signed(clone_item, [_REQUEST, _ITEM_ID], Envelope[s.item]))

    return [
        list_handler,
        read_handler,
        create_handler,
        update_handler,
        delete_handler,
        versions_handler,
        version_handler,
        clone_handler,
    ]


def _opt(name: str, annotation: Any, description: str) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        _KW,
        default=None,
        annotation=Annotated[annotation | None, Param(required=False, description=description)],
    )


async def _audit(knm: Knm, request: Any, action: str, item: Any, conn: Any, **detail: Any) -> None:
    # Names and ids only: bodies may hold anything.
    await knm.audit(
        request,
        f"{item.kind}.{action}",
        f"{item.kind}:{item.id}",
        conn=conn,
        detail={"name": item.name, "version": item.version, **detail},
    )


def content_routes(kinds: list[ContentKind]) -> list[Any]:
    """The route handlers of every kind given."""
    return [handler for kind in kinds for handler in kind_routes(kind)]
