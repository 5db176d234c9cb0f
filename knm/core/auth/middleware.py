"""Authentication of every knm request: a login JWT or an API token, from the ``Authorization``
header. On a WebSocket, where browsers cannot set headers, also from a subprotocol
(``base64url.bearer.knm.<token, base64url without padding>``, or ``bearer`` followed by the
token as the next protocol), from ``?token=`` (redacted from every log) or from the first
message."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from knm.core.auth import tokens, users
from knm.core.auth.principal import Principal
from knm.core.errors import Unauthorized

if TYPE_CHECKING:
    from knm.core.state import Knm

#: A WebSocket subprotocol carrying a token, as Kubernetes does with
#: ``base64url.bearer.authorization.k8s.io.<token>``.
WS_TOKEN_PREFIX = "base64url.bearer.knm."
#: The subprotocol the server selects when a client offers it (offer it beside the token:
#: browsers fail a handshake whose server selects none of the offered protocols).
WS_PROTOCOL = "knm"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("malformed Authorization header; expected 'Bearer <token>'")
        return value.strip()
    if connection.scope["type"] == "websocket":
        token = connection.query_params.get("token") or subprotocol_token(connection.scope)
        if token:
            return token
    raise Unauthorized("missing bearer token")


def subprotocol_token(scope: Any) -> str | None:
    """The token a WebSocket handshake offers as a subprotocol, if any."""
    offered = [str(p).strip() for p in scope.get("subprotocols") or ()]
    for i, protocol in enumerate(offered):
        if protocol.startswith(WS_TOKEN_PREFIX):
            encoded = protocol[len(WS_TOKEN_PREFIX) :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise Unauthorized("malformed token subprotocol") from None
        if protocol.lower() == "bearer" and i + 1 < len(offered):
            return offered[i + 1]
    return None


def selected_subprotocol(scope: Any) -> str | None:
    """The subprotocol to accept: never one that carries the token."""
    offered = [str(p).strip() for p in scope.get("subprotocols") or ()]
    for choice in (WS_PROTOCOL, "bearer"):
        if choice in offered:
            return choice
    return None


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


#: User ids are PostgreSQL bigints: a ``sub`` outside them names no user.
_MAX_ID = 2**63 - 1


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
        if not 0 < user_id <= _MAX_ID:
            raise Unauthorized("user no longer exists")
        row = await users.auth_row(conn, user_id)
    if row is None:
        raise Unauthorized("user no longer exists")
    if row.disabled:
        raise Unauthorized("user disabled")
    session = claims.get("sid")
    kept = row.kept_session is not None and session == row.kept_session
    if claims.get("ep", 0) != row.session_epoch and not kept:
        raise Unauthorized("token revoked (password changed or user disabled)")
    expires = claims.get("exp")
    issued = claims.get("iat")
    auth_time = claims.get("auth_time", issued)
    principal = Principal(
        user_id=row.id,
        username=row.username,
        role=row.role,
        session=session if isinstance(session, str) else None,
        auth_time=auth_time if isinstance(auth_time, int) else None,
    )
    return principal, float(expires) if isinstance(expires, int | float) else None


def header_token(scope: Any) -> str | None:
    """The bearer token of an HTTP request's ``Authorization`` header, read from the raw ASGI
    headers (building Litestar's ``Headers`` for one header cost as much as the cached lookup
    of the token); None without the header. The first header counts, as in ``Headers.get``."""
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            if not value:
                return None  # an empty header is a missing one, as in ``bearer_token``
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("malformed Authorization header; expected 'Bearer <token>'")
            return token.strip()
    return None


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # HTTP requests take the short way: the same decisions as the base class (the
        # ``exclude_from_auth_key`` opt, the excluded methods), without building an
        # ``ASGIConnection`` and its ``Headers`` on every request. WebSockets (their token may
        # come from a subprotocol or the query) go the long way.
        if scope["type"] != "http" or self.exclude:
            await super().__call__(scope, receive, send)
            return
        handler = scope.get("route_handler")
        public = (
            self.exclude_opt_key is not None
            and handler is not None
            and handler.opt.get(self.exclude_opt_key)
        )
        if not public and scope.get("method") not in (self.exclude_http_methods or ()):
            token = header_token(scope)
            if token is None:
                raise Unauthorized("missing bearer token")
            scope["user"] = await authenticate(scope["litestar_app"].state["knm"], token)
            scope["auth"] = None
        await self.app(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        knm = connection.app.state["knm"]
        principal = await authenticate(knm, bearer_token(connection))
        return AuthenticationResult(user=principal, auth=None)
