"""Proxies and TLS trust from the environment, read as httpx and curl read them."""

from __future__ import annotations

import pytest

from knm.client.environment import bypasses, environment_proxies, proxy_for


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        ("knm.example", "*", True),
        ("knm.example", "other.example", False),
        ("knm.example", "knm.example", True),
        ("api.knm.example", "knm.example", True),
        ("knm.example", ".knm.example", False),
        ("api.knm.example", ".knm.example", True),
        ("xknm.example", "knm.example", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("10.1.2.3", "10.1.2.3", True),
        ("::1", "::1", True),
        ("[::1]", "[::1]:8080", True),
        ("knm.example", "knm.example:9090", False),
        ("knm.example", "knm.example:8080", True),
        ("knm.example", " , http://knm.example", True),
    ],
)
def test_no_proxy_entries_read_as_curl_and_httpx_read_them(
    host: str, no_proxy: str, bypassed: bool
) -> None:
    assert bypasses(host, 8080, no_proxy) is bypassed


def test_a_lower_case_proxy_variable_wins_and_an_empty_one_removes_it() -> None:
    environ = {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:1", "HTTPS_PROXY": "p:2"}
    assert environment_proxies(environ) == {"http": "http://lower:1", "https": "p:2"}
    assert environment_proxies({"HTTPS_PROXY": "p:2", "https_proxy": ""}) == {}
    assert proxy_for("https", "h", 443, {"HTTPS_PROXY": "p:2"}) == "http://p:2"
    assert proxy_for("http", "h", 80, {"HTTP_PROXY": "x:1", "REQUEST_METHOD": "GET"}) is None
