"""The login throttle counts before it evaluates, in one step, and is keyed by the real client:
a forged ``X-Forwarded-For`` moves neither the throttle nor the audit log unless it comes from a
configured proxy. On real ``knm serve`` processes, so uvicorn's own proxy handling is in play."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import ProcessFactory


async def login(client: httpx.AsyncClient, api: str, username: str, **headers: str) -> int:
    response = await client.post(
        f"{api}/auth/login", json={"username": username, "password": "wrong-pass"}, headers=headers
    )
    assert response.json()["code"] == response.status_code
    return response.status_code


async def audit_clients(client: httpx.AsyncClient, api: str, target: str) -> set[str]:
    response = await client.post(
        f"{api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    token = response.json()["data"]["token"]
    entries = (
        await client.get(
            f"{api}/audit",
            params={"action": "auth.login", "target": target, "page_size": 100},
            headers={"Authorization": f"Bearer {token}"},
        )
    ).json()["data"]["entries"]
    return {entry["client"] for entry in entries}


async def test_twenty_concurrent_wrong_logins_get_at_most_five_password_evaluations(
    knm_process: ProcessFactory,
) -> None:
    server = knm_process("serve", KNM_LOGIN_MAX_FAILURES="5", KNM_RUNNER="false")
    async with httpx.AsyncClient(timeout=60) as client:
        codes = Counter(
            await asyncio.gather(*(login(client, server.api, "racer") for _ in range(20)))
        )
    # Every 401 is a password evaluated; the rest were refused before evaluation.
    assert codes == {401: 5, 429: 15}


async def test_a_forged_forwarded_for_moves_neither_the_throttle_nor_the_audit_log(
    knm_process: ProcessFactory,
) -> None:
    server = knm_process("serve", KNM_LOGIN_MAX_FAILURES="3", KNM_RUNNER="false")
    async with httpx.AsyncClient(timeout=60) as client:
        codes = [
            await login(client, server.api, "victim", **{"X-Forwarded-For": f"198.51.100.{i}"})
            for i in range(8)
        ]
        assert codes == [401] * 3 + [429] * 5
        assert await audit_clients(client, server.api, "victim") == {"127.0.0.1"}


async def test_forwarded_for_from_a_configured_proxy_names_the_client(
    knm_process: ProcessFactory,
) -> None:
    server = knm_process(
        "serve",
        KNM_LOGIN_MAX_FAILURES="3",
        KNM_RUNNER="false",
        KNM_FORWARDED_ALLOW_IPS="127.0.0.1",
    )
    async with httpx.AsyncClient(timeout=60) as client:
        # The proxy appends the peer it saw; what the client put before it is not believed
        # past the first untrusted hop.
        forged = {"X-Forwarded-For": "10.9.9.9, 203.0.113.7"}
        codes = [await login(client, server.api, "proxied", **forged) for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # Another client behind the same proxy has its own count.
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert await login(client, server.api, "proxied", **other) == 401
        assert await audit_clients(client, server.api, "proxied") == {"203.0.113.7", "203.0.113.8"}
