"""The authentication cache: a token seen a moment ago skips the database, and every change to
its user or its revocation is honoured at once, in this process and in any other."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from knm.core.auth import users
from knm.core.auth.cache import PrincipalCache
from knm.core.auth.principal import Principal
from knm.core.db import connect_one
from knm.testing.client import ApiClient
from knm.testing.tasks import eventually


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    # Far longer than any test: whatever a test sees is the announcements' doing, not expiry.
    return {"auth_cache_seconds": 3600}


def _knm(client: ApiClient) -> Any:
    return client.http.app.state["knm"]  # type: ignore[attr-defined]


async def _status(client: ApiClient, headers: dict[str, str]) -> int:
    return (await client.get("/auth/me", headers=headers)).status_code


async def test_a_token_used_again_is_answered_from_the_cache(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    cache = _knm(knm_client).auth_cache
    assert await _status(knm_client, admin_headers) == 200
    hits = cache.hits
    assert await _status(knm_client, admin_headers) == 200
    assert cache.hits == hits + 1


async def test_disabling_a_user_refuses_their_cached_token_on_the_next_request(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    headers = await knm_client.create_user(admin_headers, "cached-disabled", "viewer")
    me = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    assert await _status(knm_client, headers) == 200
    response = await knm_client.put(
        f"/users/{me['id']}", json={"disabled": True}, headers=admin_headers
    )
    assert response.status_code == 200
    assert await _status(knm_client, headers) == 401


async def test_a_demoted_user_loses_the_role_their_cached_token_had(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    headers = await knm_client.create_user(admin_headers, "cached-demoted", "admin")
    me = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    assert (await knm_client.get("/users", headers=headers)).status_code == 200
    await knm_client.put(f"/users/{me['id']}", json={"role": "viewer"}, headers=admin_headers)
    assert (await knm_client.get("/users", headers=headers)).status_code == 403


async def test_a_revoked_api_token_is_refused_on_the_next_request(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    new = (
        await knm_client.post("/tokens", json={"name": "cached-ci"}, headers=admin_headers)
    ).json()["data"]
    headers = {"Authorization": f"Bearer {new['token']}"}
    assert await _status(knm_client, headers) == 200
    assert await _status(knm_client, headers) == 200
    await knm_client.delete(f"/tokens/{new['id']}", headers=admin_headers)
    assert await _status(knm_client, headers) == 401


async def test_a_change_made_by_another_process_reaches_the_cache(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    headers = await knm_client.create_user(admin_headers, "cached-elsewhere", "viewer")
    me = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    assert await _status(knm_client, headers) == 200
    # What `knm admin user disable` does from its own process: the same SQL, its own connection.
    conn = await connect_one(knm_database_url)
    try:
        await users.update(conn, me["id"], disabled=True)
    finally:
        await conn.close()

    async def refused() -> bool:
        return await _status(knm_client, headers) == 401

    await eventually(refused, deadline=10)


async def test_the_cache_steps_aside_while_its_listening_connection_is_down(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    knm = _knm(knm_client)
    headers = await knm_client.create_user(admin_headers, "cached-while-down", "viewer")
    me = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    assert await _status(knm_client, headers) == 200
    conn = await connect_one(knm_database_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", knm.listener.server_pid)

        async def down() -> bool:
            return not knm.listener.live

        await eventually(down, deadline=10)
        # A change nobody can announce right now is still seen: the cache is not consulted.
        await conn.execute("UPDATE users SET disabled = true WHERE id = $1", me["id"])
        assert await _status(knm_client, headers) == 401
        await conn.execute("UPDATE users SET disabled = false WHERE id = $1", me["id"])
    finally:
        await conn.close()

    async def listening_again() -> bool:
        return bool(knm.listener.live)

    await eventually(listening_again, deadline=20)
    assert await _status(knm_client, headers) == 200


class _Live:
    live = True

    def on(self, *_: Any) -> None: ...

    def on_reset(self, *_: Any) -> None: ...


def test_a_token_is_never_answered_from_the_cache_past_its_own_expiry() -> None:
    cache = PrincipalCache(3600, _Live())  # type: ignore[arg-type]
    someone = Principal(user_id=7, username="someone", role="viewer")
    cache.put("expired", someone, time.time() - 1, cache.generation)
    cache.put("valid", someone, time.time() + 60, cache.generation)
    assert cache.get("expired") == (None, True)
    assert cache.get("valid") == (someone, False)


def test_an_answer_read_before_a_change_is_not_kept_after_it() -> None:
    cache = PrincipalCache(3600, _Live())  # type: ignore[arg-type]
    someone = Principal(user_id=7, username="someone", role="admin")
    started = cache.generation
    cache.forget_user(7)  # the change lands while the lookup is reading the old row
    cache.put("token", someone, None, started)
    assert cache.get("token") == (None, True)


def test_a_zero_lifetime_turns_the_cache_off() -> None:
    cache = PrincipalCache(0, _Live())  # type: ignore[arg-type]
    cache.put("token", Principal(user_id=1, username="a", role="admin"), None, cache.generation)
    assert cache.get("token") == (None, True)


def test_an_entry_past_its_lifetime_is_answered_while_it_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = PrincipalCache(5, _Live())  # type: ignore[arg-type]
    someone = Principal(user_id=7, username="someone", role="viewer")
    now = time.monotonic()
    cache.put("token", someone, None, cache.generation)
    monkeypatch.setattr(time, "monotonic", lambda: now + 6)
    assert cache.get("token") == (someone, True)
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    assert cache.get("token") == (None, True)


async def test_auth_me_is_answered_from_memory_and_shows_a_change_at_once(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    knm = _knm(knm_client)
    headers = await knm_client.create_user(admin_headers, "cached-me", "operator")
    first = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    assert knm.auth_cache.user(first["id"]) is not None
    await knm_client.put(f"/users/{first['id']}", json={"role": "viewer"}, headers=admin_headers)
    after = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    assert after["role"] == "viewer" and after["updated_at"] >= first["updated_at"]


async def test_auth_me_shows_a_change_made_by_another_process(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    headers = await knm_client.create_user(admin_headers, "cached-me-elsewhere", "operator")
    me = (await knm_client.get("/auth/me", headers=headers)).json()["data"]
    conn = await connect_one(knm_database_url)
    try:
        await users.update(conn, me["id"], role="viewer")
    finally:
        await conn.close()

    async def demoted() -> bool:
        answer = await knm_client.get("/auth/me", headers=headers)
        return answer.status_code == 200 and answer.json()["data"]["role"] == "viewer"

    await eventually(demoted, deadline=10)


async def test_auth_me_refuses_a_missing_or_malformed_authorization(
    knm_client: ApiClient,
) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        answer = await knm_client.get("/auth/me", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json()["code"] == 401


def test_a_users_row_read_before_a_change_is_not_kept_after_it() -> None:
    cache = PrincipalCache(3600, _Live())  # type: ignore[arg-type]
    row = users.User(
        id=7,
        username="someone",
        role="admin",
        disabled=False,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    started = cache.generation
    cache.forget_user(7)
    cache.put_user(row, started)
    assert cache.user(7) is None
    cache.put_user(row, cache.generation)
    assert cache.user(7) == row
    cache.forget_user(7)
    assert cache.user(7) is None
    cache.put_user(row, cache.generation)
    cache.clear()
    assert cache.user(7) is None


def test_no_users_row_is_kept_while_the_cache_is_off() -> None:
    cache = PrincipalCache(0, _Live())  # type: ignore[arg-type]
    row = users.User(7, "someone", "admin", False, datetime.now(UTC), datetime.now(UTC))
    cache.put_user(row, cache.generation)
    assert cache.user(7) is None
