"""``create_app()``, the standalone server, under a path prefix (``KNM_PATH_PREFIX``): the API,
its schema and its UI move under the prefix, and nothing stays at the root."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from knm import create_app
from knm.testing import database
from knm.testing.client import ApiClient, assert_envelope


async def test_the_standalone_app_starts_under_a_prefix_with_its_schema_there(
    knm_database_url: str,
) -> None:
    app = create_app(database.config_for_tests(knm_database_url, path_prefix="/ops"))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as http:
        api = ApiClient(http, "/ops/api/v1")
        assert assert_envelope(await api.get("/features"), 200)["data"]["automation"]["enabled"]
        schema = await http.get("/ops/schema/openapi.json")
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert paths and all(path.startswith("/ops/") for path in paths)
        assert (await http.get("/ops/schema/")).status_code == 200
        assert (await http.get("/api/v1/features")).status_code == 404
        assert (await http.get("/schema/openapi.json")).status_code == 404
