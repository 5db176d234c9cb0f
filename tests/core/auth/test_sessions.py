"""Sessions and API tokens end when they should: a password change keeps only the session it
was made from, a reset or a disable ends everything, re-enabling revives nothing, a child token
never outlives or out-ranks its parent, and refreshing never extends a session past its
absolute lifetime."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from knm.core.keys import derive_key
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.database import TEST_SECRET

MAX_AGE = 3600


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    # A long cache: what a test sees is invalidation's doing, never an entry's expiry.
    return {"auth_cache_seconds": 3600, "session_max_age": MAX_AGE, "token_ttl": 600}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status(client: ApiClient, headers: dict[str, str]) -> int:
    return (await client.get("/auth/me", headers=headers)).status_code


async def user_id(client: ApiClient, headers: dict[str, str]) -> int:
    return assert_envelope(await client.get("/auth/me", headers=headers), 200)["data"]["id"]


async def api_token(client: ApiClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/tokens", json={"name": "t", **body}, headers=headers)
    return assert_envelope(response, 201)["data"]


async def test_changing_your_own_password_keeps_this_session_and_ends_every_other_and_every_api_token(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await knm_client.create_user(admin_headers, "carol", "operator", "first-password")
    here = bearer(await knm_client.login("carol", "first-password"))
    elsewhere = bearer(await knm_client.login("carol", "first-password"))
    token = bearer((await api_token(knm_client, here))["token"])
    for headers in (here, elsewhere, token):
        assert await status(knm_client, headers) == 200  # and cached
    response = await knm_client.put(
        "/auth/password",
        json={"current_password": "first-password", "new_password": "second-password"},
        headers=here,
    )
    assert_envelope(response, 200)
    assert await status(knm_client, here) == 200
    assert await status(knm_client, elsewhere) == 401
    assert await status(knm_client, token) == 401
    # The kept session refreshes like any other, and its fresh token works.
    fresh = assert_envelope(await knm_client.post("/auth/refresh", headers=here), 200)
    assert await status(knm_client, bearer(fresh["data"]["token"])) == 200
    await knm_client.login("carol", "second-password")


async def test_a_second_password_change_from_another_session_ends_the_session_kept_by_the_first(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await knm_client.create_user(admin_headers, "cora", "viewer", "password-one")
    first = bearer(await knm_client.login("cora", "password-one"))
    await knm_client.put(
        "/auth/password",
        json={"current_password": "password-one", "new_password": "password-two"},
        headers=first,
    )
    second = bearer(await knm_client.login("cora", "password-two"))
    await knm_client.put(
        "/auth/password",
        json={"current_password": "password-two", "new_password": "password-three"},
        headers=second,
    )
    assert await status(knm_client, second) == 200
    assert await status(knm_client, first) == 401


@pytest.mark.parametrize("how", ["reset", "disable"])
async def test_an_admin_reset_or_a_disable_revokes_every_session_and_api_token(
    knm_client: ApiClient, admin_headers: dict[str, str], how: str
) -> None:
    name = f"erin-{how}"
    session = await knm_client.create_user(admin_headers, name, "operator")
    other = await knm_client.headers_for(name, "password-123")
    token = bearer((await api_token(knm_client, session))["token"])
    uid = await user_id(knm_client, session)
    for headers in (session, other, token):
        assert await status(knm_client, headers) == 200
    if how == "reset":
        change = {"path": f"/users/{uid}/password", "json": {"password": "reset-password"}}
    else:
        change = {"path": f"/users/{uid}", "json": {"disabled": True}}
    assert_envelope(await knm_client.put(headers=admin_headers, **change), 200)
    for headers in (session, other, token):
        assert await status(knm_client, headers) == 401
    listed = assert_envelope(await knm_client.get("/tokens", headers=admin_headers), 200)["data"]
    mine = [t for t in listed["tokens"] if t["user_id"] == uid]
    assert mine and all(t["revoked_at"] is not None for t in mine)


async def test_re_enabling_a_user_revives_none_of_their_old_tokens(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    session = await knm_client.create_user(admin_headers, "frank", "operator")
    token = bearer((await api_token(knm_client, session))["token"])
    uid = await user_id(knm_client, session)
    assert await status(knm_client, token) == 200
    for disabled in (True, False):
        response = await knm_client.put(
            f"/users/{uid}", json={"disabled": disabled}, headers=admin_headers
        )
        assert_envelope(response, 200)
    assert await status(knm_client, session) == 401
    assert await status(knm_client, token) == 401
    assert await status(knm_client, await knm_client.headers_for("frank", "password-123")) == 200


async def test_a_child_token_gets_no_later_expiry_than_its_parent(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    parent = await api_token(knm_client, admin_headers, expires_at=soon.isoformat())
    later = (soon + timedelta(days=30)).isoformat()
    for body in ({}, {"expires_at": later}):
        child = await api_token(knm_client, bearer(parent["token"]), **body)
        assert datetime.fromisoformat(child["expires_at"]) == soon
    sooner = (soon - timedelta(seconds=10)).isoformat()
    child = await api_token(knm_client, bearer(parent["token"]), expires_at=sooner)
    assert datetime.fromisoformat(child["expires_at"]) == soon - timedelta(seconds=10)


async def test_revoking_a_token_revokes_every_token_minted_from_it(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    parent = await api_token(knm_client, admin_headers)
    child = await api_token(knm_client, bearer(parent["token"]))
    grandchild = await api_token(knm_client, bearer(child["token"]))
    assert await status(knm_client, bearer(grandchild["token"])) == 200
    response = await knm_client.delete(f"/tokens/{parent['id']}", headers=admin_headers)
    assert_envelope(response, 200)
    for token in (parent, child, grandchild):
        assert await status(knm_client, bearer(token["token"])) == 401


async def test_a_child_token_cannot_outrank_its_parent(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    parent = await api_token(knm_client, admin_headers, role="viewer")
    for role in ("operator", "admin"):
        response = await knm_client.post(
            "/tokens", json={"name": "up", "role": role}, headers=bearer(parent["token"])
        )
        assert_envelope(response, 403)
    child = await api_token(knm_client, bearer(parent["token"]))
    assert child["role"] == "viewer"


def session_jwt(user: int, auth_time: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user),
        "role": "admin",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        "ep": 0,
        "sid": uuid.uuid4().hex,
        "auth_time": auth_time,
    }
    return jwt.encode(claims, derive_key(TEST_SECRET, "jwt-signing"), algorithm="HS256")


async def test_refresh_never_extends_a_session_past_its_absolute_lifetime(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await knm_client.get("/auth/me", headers=admin_headers)  # the admin exists, epoch 0
    login = int(time.time()) - MAX_AGE + 30
    response = await knm_client.post("/auth/refresh", headers=bearer(session_jwt(1, login)))
    body = assert_envelope(response, 200)["data"]
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    # Capped at login + max age (30 s away), not token_ttl (600 s) from now.
    assert claims["exp"] <= login + MAX_AGE
    assert claims["auth_time"] == login
    again = await knm_client.post("/auth/refresh", headers=bearer(body["token"]))
    assert assert_envelope(again, 200)["data"]["token"]
    over = await knm_client.post(
        "/auth/refresh", headers=bearer(session_jwt(1, int(time.time()) - MAX_AGE - 1))
    )
    assert "session expired" in assert_envelope(over, 401)["error"]


async def test_a_login_token_carries_its_session_and_login_time(knm_client: ApiClient) -> None:
    from knm.testing.database import TEST_ADMIN_PASSWORD

    token = await knm_client.login("admin", TEST_ADMIN_PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sid"] and abs(claims["auth_time"] - time.time()) < 60
    refreshed = assert_envelope(await knm_client.post("/auth/refresh", headers=bearer(token)), 200)
    again = jwt.decode(refreshed["data"]["token"], options={"verify_signature": False})
    assert (again["sid"], again["auth_time"]) == (claims["sid"], claims["auth_time"])


async def test_guessing_the_current_password_is_throttled_like_logins(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    session = await knm_client.create_user(admin_headers, "gus", "viewer", "the-password")
    codes = []
    for _ in range(7):
        response = await knm_client.put(
            "/auth/password",
            json={"current_password": "a-guess-1", "new_password": "whatever-2"},
            headers=session,
        )
        codes.append(response.status_code)
    assert codes == [422] * 5 + [429] * 2
