"""``/credentials``: create, list, read, update and delete SSH credentials."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, post, put

from knm.core.auth.guards import ADMIN, VIEWER
from knm.core.credentials import rules, store
from knm.core.credentials.models import (
    Credential,
    CredentialCreate,
    CredentialList,
    CredentialUpdate,
    Secrets,
)
from knm.core.crypto import keyring_of
from knm.core.envelope import Done, Envelope, PageNo, PageSize, created, offset, ok
from knm.core.errors import BadRequest

_PLAIN = ("name", "description", "username", "auth_type", "port")
_LIMITS = store.USE_FIELDS
_SECRET = ("password", "private_key", "passphrase")


def _knm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state["knm"]


def _check_plain(name: str, description: str, username: str, port: int) -> None:
    rules.check_line("name", name)
    rules.check_free_text("description", description)
    rules.check_line("username", username)
    rules.check_port(port)


@post("/credentials", guards=[ADMIN], summary="Create a credential (secrets are write-only)")
async def create_credential(
    request: Request[Any, Any, Any], data: CredentialCreate
) -> Envelope[Credential]:
    knm = _knm(request)
    # The secret its auth_type needs, left out (or null): a missing field, so 400 (an empty
    # one is a value breaking a rule, 422, from check_secrets).
    needed = "password" if data.auth_type == "password" else "private_key"
    if getattr(data, needed) is None:
        raise BadRequest(f"{needed}: required when auth_type is {data.auth_type}")
    _check_plain(data.name, data.description, data.username, data.port)
    secrets = Secrets(
        password=data.password or "",
        private_key=data.private_key or "",
        passphrase=data.passphrase or "",
    )
    rules.check_secrets(
        data.auth_type, bool(secrets.password), bool(secrets.private_key), bool(secrets.passphrase)
    )
    if secrets.private_key:
        await rules.check_private_key(secrets.private_key, secrets.passphrase)
    async with knm.pool.acquire() as conn, conn.transaction():
        credential = await store.insert(
            conn,
            keyring_of(knm),
            name=data.name,
            description=data.description,
            username=data.username,
            auth_type=data.auth_type,
            port=data.port,
            secrets=secrets,
            limits=rules.check_limits({f: getattr(data, f) for f in _LIMITS}),
        )
        await knm.audit(
            request, "credential.create", credential.name, conn=conn, detail={"id": credential.id}
        )
    return created(credential, "credential created")


@get("/credentials", guards=[VIEWER], summary="List credentials (without secrets)")
async def list_credentials(
    request: Request[Any, Any, Any], page: PageNo = 1, page_size: PageSize = 20
) -> Envelope[CredentialList]:
    total, found = await store.list_credentials(
        _knm(request).pool, page_size, offset(page, page_size)
    )
    return ok(CredentialList(total, found))


@get(
    "/credentials/{credential_id:int}", guards=[VIEWER], summary="One credential (without secrets)"
)
async def get_credential(
    request: Request[Any, Any, Any], credential_id: int
) -> Envelope[Credential]:
    return ok(await store.get(_knm(request).pool, credential_id))


@put("/credentials/{credential_id:int}", guards=[ADMIN], summary="Change a credential (partial)")
async def update_credential(
    request: Request[Any, Any, Any], credential_id: int, data: CredentialUpdate
) -> Envelope[Credential]:
    knm = _knm(request)
    sent = {
        f: getattr(data, f)
        for f in (*_PLAIN, *_SECRET, *_LIMITS)
        if getattr(data, f) is not msgspec.UNSET
    }
    limits = rules.check_limits({f: sent[f] for f in _LIMITS if f in sent})
    async with knm.pool.acquire() as conn, conn.transaction():
        row = await store.row_for_update(conn, credential_id)
        plain = {f: sent.get(f, row[f]) for f in _PLAIN}
        _check_plain(plain["name"], plain["description"], plain["username"], plain["port"])
        secrets: Secrets | None = None
        if any(f in sent for f in _SECRET):
            # Only a changed secret needs the stored ones opened, to re-seal them together.
            stored = store.unseal(keyring_of(knm), row)
            secrets = Secrets(
                **{f: (sent[f] or "") if f in sent else getattr(stored, f) for f in _SECRET}
            )
            has = [bool(getattr(secrets, f)) for f in _SECRET]
        else:
            has = [row[f"has_{f}"] for f in _SECRET]
        rules.check_secrets(plain["auth_type"], *has)
        if (
            secrets is not None
            and secrets.private_key
            and {"private_key", "passphrase"} & sent.keys()
        ):
            await rules.check_private_key(secrets.private_key, secrets.passphrase)
        changed = {f: plain[f] for f in _PLAIN if plain[f] != row[f]}
        changed.update({f: value for f, value in limits.items() if value != row[f]})
        credential = await store.update(
            conn, keyring_of(knm), credential_id, fields=changed, secrets=secrets
        )
        await knm.audit(
            request,
            "credential.update",
            credential.name,
            conn=conn,
            detail={"id": credential_id, "fields": sorted(sent)},
        )
    return ok(credential, "credential updated")


@delete(
    "/credentials/{credential_id:int}",
    guards=[ADMIN],
    status_code=200,
    summary="Delete a credential (not while a pending or running task uses it)",
)
async def delete_credential(request: Request[Any, Any, Any], credential_id: int) -> Done:
    knm = _knm(request)
    async with knm.pool.acquire() as conn:
        name = await store.delete(conn, credential_id)
        await knm.audit(request, "credential.delete", name, conn=conn, detail={"id": credential_id})
    return ok(message="credential deleted")


ROUTES = [create_credential, list_credentials, get_credential, update_credential, delete_credential]
