"""Password hashing never runs on the event loop: while several logins are in the middle of
verifying a password, other requests are answered."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from knm.testing.client import ApiClient
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.tasks import eventually

LOGINS = 2


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    return {"hash_workers": LOGINS}


async def test_other_requests_are_answered_while_logins_hash(
    knm_client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = knm_client.http.app  # type: ignore[attr-defined]
    release = threading.Event()
    inside: list[str] = []
    real_verify = PasswordHasher.verify

    def held_verify(self: PasswordHasher, hash: str, password: str) -> bool:
        inside.append(threading.current_thread().name)
        # Bounded, so a server that hashes on its loop fails this test instead of hanging.
        release.wait(timeout=10)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", held_verify)

    async def scenario() -> tuple[int, bool, list[int]]:
        # On the app's own loop, with requests truly in flight together.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://knm") as client:
            body = {"username": "admin", "password": TEST_ADMIN_PASSWORD}
            logins = [
                asyncio.create_task(client.post("/api/v1/auth/login", json=body))
                for _ in range(LOGINS)
            ]

            async def all_hashing() -> bool:
                return len(inside) == LOGINS

            await eventually(all_hashing)
            features = await client.get("/api/v1/features")
            # Answered while every login was still inside its hash.
            still_hashing = not release.is_set() and not any(t.done() for t in logins)
            release.set()
            answers = await asyncio.gather(*logins)
        return features.status_code, still_hashing, [a.status_code for a in answers]

    try:
        features, still_hashing, logins = await knm_client.on_app(scenario)
    finally:
        release.set()
    assert features == 200
    assert still_hashing
    assert logins == [200] * LOGINS
    assert all(name.startswith("knm-hash") for name in inside)
