"""Numbers from outside that PostgreSQL cannot hold.

Ids are ``bigint``: an id in a path beyond them names nothing, so it is a 404 like any other
unknown id — answered here, before a query that could not even bind it."""

from __future__ import annotations

from typing import Any

from litestar import Request

from knm.core import strict_body
from knm.core.errors import NotFound

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


def fits_bigint(value: int) -> bool:
    return BIGINT_MIN <= value <= BIGINT_MAX


def check_path_ids(request: Request[Any, Any, Any]) -> None:
    for name, value in request.path_params.items():
        if isinstance(value, int) and not isinstance(value, bool) and not fits_bigint(value):
            raise NotFound(f"{_label(name)} {value} not found")


def _label(name: str) -> str:
    # ``credential_id`` -> ``Credential ID``, as the routes' own 404s say it.
    if name.endswith("_id"):
        return f"{name[:-3].replace('_', ' ').capitalize()} ID"
    return name.replace("_", " ")


async def before_request(request: Request[Any, Any, Any]) -> None:
    """Every knm route's ``before_request``: path ids in range, then the strict body."""
    check_path_ids(request)
    await strict_body.check_body(request)
