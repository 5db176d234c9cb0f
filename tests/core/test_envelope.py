"""Every answer is an envelope whose code equals the HTTP status; no stack trace ever leaks."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, get, post
from litestar.testing import AsyncTestClient

from knm.core.envelope import AnswerResponse, Envelope, ok, ok_bytes
from knm.core.errors import Invalid
from knm.core.hookspecs import hookimpl
from knm.testing.client import ApiClient, assert_envelope


class Probe(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    timeout: int


@get("/test/explode", opt={"public": True})
async def explode() -> None:
    raise RuntimeError("secret internals /etc/shadow")


@post("/test/probe", opt={"public": True}, status_code=200)
async def probe(data: Probe) -> dict[str, Any]:
    if data.timeout <= 0:
        raise Invalid("timeout must be greater than 0")
    return {"code": 200, "message": "ok", "data": {"name": data.name}}


@post("/test/store", opt={"public": True}, status_code=200)
async def store_text(request: Request[Any, Any, Any], data: dict[str, str]) -> dict[str, Any]:
    # Unchecked text straight to PostgreSQL, which cannot hold NUL.
    await request.app.state["knm"].pool.fetchval("SELECT $1::text", data["text"])
    return {"code": 200, "message": "ok", "data": {}}


@get("/test/lookup", opt={"public": True})
async def lookup_text(request: Request[Any, Any, Any], text: str) -> dict[str, Any]:
    await request.app.state["knm"].pool.fetchval("SELECT $1::text", text)
    return {"code": 200, "message": "ok", "data": {}}


class ProbePlugin:
    @hookimpl
    def knm_routes(self) -> list[Any]:
        return [explode, probe, store_text, lookup_text]


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [ProbePlugin()]


async def test_an_unhandled_error_is_a_500_envelope_without_details(knm_client: ApiClient) -> None:
    response = await knm_client.get("/test/explode")
    body = assert_envelope(response, 500)
    assert body == {"code": 500, "message": "internal error", "error": "internal server error"}
    assert "shadow" not in response.text


async def test_unknown_routes_answer_404_in_the_envelope(knm_client: ApiClient) -> None:
    assert_envelope(await knm_client.get("/no/such/route"), 404)
    response = await knm_client.http.get("/definitely-not-knm")
    assert_envelope(response, 404)


async def test_a_wrong_method_answers_405_in_the_envelope(knm_client: ApiClient) -> None:
    assert_envelope(await knm_client.delete("/features"), 405)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "timeout"),
        ({"name": "x", "timeout": "60"}, "timeout"),
        ({"name": 5, "timeout": 60}, "name"),
        ({"name": "x", "timeout": 60, "extra": 1}, "extra"),
    ],
)
async def test_a_wrong_shape_is_400_naming_the_field(
    knm_client: ApiClient, body: dict[str, Any], field: str
) -> None:
    error = assert_envelope(await knm_client.post("/test/probe", json=body), 400)["error"]
    assert field in error


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b"\xff\xfe", b""])
async def test_a_body_that_is_not_a_json_object_is_400(knm_client: ApiClient, raw: bytes) -> None:
    response = await knm_client.post(
        "/test/probe", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 400)


async def test_a_well_formed_body_breaking_a_rule_is_422(knm_client: ApiClient) -> None:
    body = assert_envelope(
        await knm_client.post("/test/probe", json={"name": "x", "timeout": 0}), 422
    )
    assert body["error"] == "timeout must be greater than 0"


async def test_the_openapi_document_describes_the_error_envelope(knm_client: ApiClient) -> None:
    response = await knm_client.http.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert {"400", "401", "422", "500"} <= login["responses"].keys()
    assert "ErrorEnvelope" in document["components"]["schemas"]


async def test_bad_query_parameters_are_400(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    for query in ("page=0", "page=abc", "page_size=101", "page_size=0"):
        assert_envelope(await knm_client.get(f"/users?{query}", headers=admin_headers), 400)


async def test_nul_in_a_body_value_is_422_and_in_a_query_parameter_400(
    knm_client: ApiClient,
) -> None:
    body = await knm_client.post("/test/store", json={"text": "a\x00b"})
    assert "NUL" in assert_envelope(body, 422)["error"]
    query = await knm_client.get("/test/lookup", params={"text": "a\x00b"})
    assert "NUL" in assert_envelope(query, 400)["error"]


# --- AnswerResponse: an envelope encoded once, sent as Litestar would send it ---------------

_ANSWER = {"task_id": "test-exec-1-abc123", "status": "running", "duration": 3, "results": []}


async def _both(**app_config: Any) -> tuple[httpx.Response, httpx.Response]:
    """The same answer from a route built as usual and from one sent as kept bytes."""

    # Made per app: Litestar keeps what a handler resolved from its first app's layers.
    @get("/rebuilt")
    async def rebuilt() -> Envelope[dict[str, Any]]:
        return ok(msgspec.Raw(msgspec.json.encode(_ANSWER)))

    @get("/kept")
    async def kept() -> Envelope[dict[str, Any]]:
        return AnswerResponse(ok_bytes(msgspec.json.encode(_ANSWER)))  # type: ignore[return-value]

    async with AsyncTestClient(Litestar([rebuilt, kept], **app_config)) as client:
        return await client.get("/rebuilt"), await client.get("/kept")


async def test_an_answer_response_sends_what_litestar_would_byte_for_byte() -> None:
    before, after = await _both()
    assert after.status_code == before.status_code == 200
    assert after.headers.raw == before.headers.raw
    assert after.content == before.content
    assert msgspec.json.decode(after.content) == {"code": 200, "message": "ok", "data": _ANSWER}


async def test_an_answer_response_keeps_what_a_layer_adds_to_it() -> None:
    before, after = await _both(response_headers={"X-Host": "kept"})
    assert after.headers["x-host"] == "kept"
    assert sorted(after.headers.raw) == sorted(before.headers.raw)
    assert after.content == before.content


def test_ok_bytes_equal_a_fresh_encode_of_the_envelope() -> None:
    data = msgspec.json.encode(_ANSWER)
    assert ok_bytes(data) == msgspec.json.encode(ok(msgspec.Raw(data)))
    assert ok_bytes(data, "fine") == msgspec.json.encode(
        {"code": 200, "message": "fine", "data": _ANSWER}
    )
