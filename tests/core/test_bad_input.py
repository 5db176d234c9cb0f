"""Every endpoint answers malformed input with a 4xx envelope: never a 500, never a trace.

The endpoints come from the served OpenAPI document, so a new route is covered the day it lands.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knm.testing.client import ApiClient

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
RAW = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"{", b"[", b'{"a":', b"null", b"\x00", b'"\\u0000"', b"{}" * 3, b"1e999"]),
)
SEGMENT = st.one_of(
    st.integers(-5, 2**40).map(str),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"),
        min_size=1,
        max_size=20,
    ),
)


@pytest.fixture(scope="module")
async def endpoints(knm_client: ApiClient) -> list[tuple[str, str]]:
    document = (await knm_client.http.get("/schema/openapi.json")).json()
    found = []
    for path, item in document["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "delete", "patch"}:
                found.append((method.upper(), path))
    assert len(found) > 30
    return found


def fill(path: str, values: list[str]) -> str:
    parts = iter(values)
    return re.sub(r"\{[^}]+\}", lambda _: quote(next(parts, "1"), safe=""), path)


def check(response: Any) -> None:
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    if response.status_code < 300 and not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return  # /metrics and output downloads answer in text
    body = response.json()
    assert body["code"] == response.status_code
    assert "Traceback" not in response.text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_random_json_bodies_never_make_a_500(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    endpoints: list[tuple[str, str]],
    data: st.DataObject,
) -> None:
    method, path = data.draw(st.sampled_from([e for e in endpoints if e[0] in ("POST", "PUT")]))
    url = fill(path, data.draw(st.lists(SEGMENT, max_size=3)))
    body = data.draw(JSON)
    response = await knm_client.http.request(method, url, json=body, headers=admin_headers)
    check(response)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_raw_bytes_never_make_a_500(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    endpoints: list[tuple[str, str]],
    data: st.DataObject,
) -> None:
    method, path = data.draw(st.sampled_from([e for e in endpoints if e[0] in ("POST", "PUT")]))
    url = fill(path, data.draw(st.lists(SEGMENT, max_size=3)))
    response = await knm_client.http.request(
        method,
        url,
        content=data.draw(RAW),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    check(response)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_random_paths_and_query_strings_never_make_a_500(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    endpoints: list[tuple[str, str]],
    data: st.DataObject,
) -> None:
    method, path = data.draw(st.sampled_from([e for e in endpoints if e[0] in ("GET", "DELETE")]))
    url = fill(path, data.draw(st.lists(SEGMENT, max_size=3)))
    params = data.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "page",
                    "page_size",
                    "status",
                    "kind",
                    "start_date",
                    "end_date",
                    "since",
                    "is_builtin",
                    "category",
                    "q",
                    "tag",
                    "selector",
                    "node",
                    "stream",
                    "language",
                ]
            ),
            SEGMENT,
            max_size=3,
        )
    )
    response = await knm_client.http.request(method, url, params=params, headers=admin_headers)
    check(response)


async def test_a_huge_body_is_refused_not_crashed(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.post(
        "/users",
        content=b'{"username": "' + b"x" * (6 * 1024 * 1024) + b'"}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 413)
    assert response.json()["code"] == response.status_code
