"""Authentication of every knm request: a login JWT or an API token, from the ``Authorization``
header (or ``?token=`` on the WebSocket, where browsers cannot set headers)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from knm.core.auth import tokens, users
from knm.core.auth.principal import Principal
from knm.core.errors import Unauthorized

if TYPE_CHECKING:
    from knm.core.state import Knm


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        return value.strip()
    if connection.scope["type"] == "websocket":
        token = connection.query_params.get("token")
        if token:
            return token
    raise Unauthorized("missing bearer token")


async def authenticate(knm: Knm, token: str) -> Principal:
    cache = knm.auth_cache
    if cache is None:
        return (await _authenticate(knm, token))[0]
    known, due = cache.get(token)
    if known is not None and not due:
        return known
    lookup = cache.lookup(token, lambda: _authenticate(knm, token))
    if known is not None:
        return known  # the lookup refreshes the entry in the background
    principal, _ = await asyncio.shield(lookup)
    return principal


async def _authenticate(knm: Knm, token: str) -> tuple[Principal, float | None]:
    """The caller and when their token expires (``time.time()``), from the database."""
    async with knm.pool.acquire() as conn:
        if token.startswith(tokens.API_TOKEN_PREFIX):
            return await tokens.principal_for_api_token(conn, token)
        claims = tokens.decode_jwt(knm.keys.jwt, token)
        try:
            user_id = int(str(claims["sub"]))
        except ValueError:
            raise Unauthorized("malformed token") from None
        row = await users.auth_row(conn, user_id)
    if row is None:
        raise Unauthorized("user no longer exists")
    if row.disabled:
        raise Unauthorized("user disabled")
    if claims.get("ep", 0) != row.session_epoch:
        raise Unauthorized("token revoked (password changed)")
    expires = claims.get("exp")
    principal = Principal(user_id=row.id, username=row.username, role=row.role)
    return principal, float(expires) if isinstance(expires, int | float) else None


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        knm = connection.app.state["knm"]
        principal = await authenticate(knm, bearer_token(connection))
        return AuthenticationResult(user=principal, auth=None)
