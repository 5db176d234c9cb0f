"""Route guards: the role a route needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from knm.core.auth.principal import Principal, role_at_least
from knm.core.errors import Forbidden, Unauthorized

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthorized("missing bearer token")
    return user


def check_role(connection: ASGIConnection[Any, Any, Any, Any], role: str) -> Principal:
    """The caller, when it has at least ``role``; Unauthorized or Forbidden otherwise."""
    principal = principal_of(connection)
    if not role_at_least(principal.role, role):
        raise Forbidden(f"requires role {role}; you are {principal.role}")
    return principal


def require_role(role: str) -> Guard:
    # Async on purpose: Litestar runs a synchronous guard in a worker thread, a thread hop per
    # request for a dictionary lookup.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        check_role(connection, role)

    guard.__name__ = f"require_{role}"
    return guard


ADMIN = require_role("admin")
OPERATOR = require_role("operator")
VIEWER = require_role("viewer")
