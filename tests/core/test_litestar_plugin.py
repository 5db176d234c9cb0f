"""Mounting knm inside a host's Litestar app: everything moves under the prefix, and the host's
routes, exception handlers and dependencies keep working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, Request, Response, get
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from knm import KnmPlugin
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.database import TEST_ADMIN_PASSWORD, config_for_tests


class HostError(Exception):
    pass


def host_error_handler(_: Request[Any, Any, Any], exc: HostError) -> Response[Any]:
    return Response({"host": "handled", "detail": str(exc)}, status_code=418)


def greeting() -> str:
    return "hello from the host"


@get("/hello")
async def hello(greeting: str) -> dict[str, str]:
    return {"message": greeting}


@get("/boom")
async def boom() -> None:
    raise HostError("the host's own error")


@pytest.fixture(scope="module")
async def embedded(knm_database_url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = Litestar(
        route_handlers=[hello, boom],
        dependencies={"greeting": Provide(greeting, sync_to_thread=False)},
        exception_handlers={HostError: host_error_handler},
        plugins=[KnmPlugin(config_for_tests(knm_database_url, path_prefix="/knm"))],
    )
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


async def test_the_hosts_routes_dependencies_and_handlers_still_work(
    embedded: AsyncTestClient[Litestar],
) -> None:
    response = await embedded.get("/hello")
    assert response.json() == {"message": "hello from the host"}
    boom = await embedded.get("/boom")
    assert boom.status_code == 418 and boom.json()["host"] == "handled"


async def test_knm_lives_under_the_prefix_with_its_envelope_and_auth(
    embedded: AsyncTestClient[Litestar],
) -> None:
    api = ApiClient(embedded, "/knm/api/v1")
    assert assert_envelope(await api.get("/features"), 200)["data"]["automation"]["enabled"] is True
    assert_envelope(await api.get("/auth/me"), 401)
    token = await api.login("admin", TEST_ADMIN_PASSWORD)
    me = await api.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert assert_envelope(me, 200)["data"]["username"] == "admin"
    assert (await embedded.get("/api/v1/features")).status_code == 404


async def test_the_metrics_and_schema_move_with_the_prefix(
    embedded: AsyncTestClient[Litestar],
) -> None:
    api = ApiClient(embedded, "/knm/api/v1")
    token = await api.login("admin", TEST_ADMIN_PASSWORD)
    metrics = await embedded.get("/knm/metrics", headers={"Authorization": f"Bearer {token}"})
    assert metrics.status_code == 200 and "knm_tasks" in metrics.text
    schema = await embedded.get("/knm/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/knm/api/v1/auth/login" in paths
    assert all(path.startswith("/knm/api/v1") for path in paths)
