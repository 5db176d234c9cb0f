"""knm's client address: the peer, unless the peer is a configured proxy."""

from __future__ import annotations

from typing import Any

import pytest

from knm.core.forwarded import TrustedProxies, client_address, uvicorn_options


def scope(peer: str, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 40000), "headers": [(b"host", b"knm"), *headers]}


def test_with_no_proxy_configured_the_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address(scope("127.0.0.1", "203.0.113.7"), TrustedProxies([])) == "127.0.0.1"


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (["127.0.0.1"], ["203.0.113.7"], "203.0.113.7"),
        (["127.0.0.0/8"], ["203.0.113.7"], "203.0.113.7"),
        (["127.0.0.1"], ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
        (["127.0.0.1", "10.0.0.0/8"], ["6.6.6.6, 203.0.113.7, 10.1.2.3"], "203.0.113.7"),
        (["127.0.0.1"], ["6.6.6.6", "203.0.113.7"], "203.0.113.7"),
        (["127.0.0.1"], [], "127.0.0.1"),
        (["127.0.0.1", "10.0.0.0/8"], ["10.1.1.1"], "10.1.1.1"),
        (["*"], ["203.0.113.7"], "203.0.113.7"),
        (["::1"], ["2001:db8::1"], "127.0.0.1"),
        (["127.0.0.1"], ["203.0.113.7:4711"], "203.0.113.7"),
        (["127.0.0.1"], ["[2001:db8::1]:4711"], "2001:db8::1"),
        (["127.0.0.1", "10.0.0.0/8"], ["203.0.113.7, 10.0.0.2:80"], "203.0.113.7"),
    ],
)
def test_a_trusted_proxy_names_the_nearest_untrusted_hop(
    trusted: list[str], forwarded: list[str], expected: str
) -> None:
    assert client_address(scope("127.0.0.1", *forwarded), TrustedProxies(trusted)) == expected


def test_uvicorn_believes_the_same_proxies_and_none_by_default() -> None:
    assert uvicorn_options([]) == {"proxy_headers": False, "forwarded_allow_ips": ""}
    assert uvicorn_options(["10.0.0.1", "10.1.0.0/16"]) == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.1,10.1.0.0/16",
    }


def test_the_setting_reads_a_comma_separated_list() -> None:
    from knm.core.config import KnmConfig

    config = KnmConfig.from_env({"KNM_FORWARDED_ALLOW_IPS": "10.0.0.1, 10.1.0.0/16"})
    assert config.forwarded_allow_ips == ["10.0.0.1", "10.1.0.0/16"]
    assert KnmConfig.from_env({}).forwarded_allow_ips == []
