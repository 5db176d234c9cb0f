"""Login, tokens, roles, users and API tokens."""

from __future__ import annotations

import time

import jwt
import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.database import TEST_ADMIN_PASSWORD, TEST_SECRET


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, object]:
    return {"login_max_failures": 3, "login_window": 60}


async def test_login_answers_the_contracts_shape(knm_client: ApiClient) -> None:
    response = await knm_client.post(
        "/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    body = assert_envelope(response, 200)
    assert body["message"] == "login successful"
    assert body["data"]["user"] == {"id": 1, "username": "admin", "role": "admin"}
    claims = jwt.decode(body["data"]["token"], options={"verify_signature": False})
    assert {"sub", "role", "exp", "iat", "jti"} <= claims.keys()
    assert claims["role"] == "admin"


async def test_wrong_password_is_401_without_saying_which_part_was_wrong(
    knm_client: ApiClient,
) -> None:
    wrong = await knm_client.post(
        "/auth/login", json={"username": "admin", "password": "nope-nope"}
    )
    unknown = await knm_client.post("/auth/login", json={"username": "ghost", "password": "nope"})
    assert assert_envelope(wrong, 401)["error"] == assert_envelope(unknown, 401)["error"]


async def test_repeated_failed_logins_are_throttled_with_retry_after(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await knm_client.create_user(admin_headers, "throttled", "viewer", "right-password")
    for _ in range(3):
        await knm_client.post("/auth/login", json={"username": "throttled", "password": "wrong"})
    response = await knm_client.post(
        "/auth/login", json={"username": "throttled", "password": "right-password"}
    )
    assert_envelope(response, 429)
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("header", "expected_error"),
    [
        (None, "missing bearer token"),
        ("Bearer", "malformed Authorization header"),
        ("Basic abc", "malformed Authorization header"),
        ("Bearer not-a-jwt", "malformed token"),
    ],
)
async def test_requests_without_a_usable_token_are_401(
    knm_client: ApiClient, header: str | None, expected_error: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    body = assert_envelope(await knm_client.get("/auth/me", headers=headers), 401)
    assert expected_error in body["error"]


def _forge(secret: str, **overrides: object) -> str:
    from knm.core.keys import derive_key

    now = int(time.time())
    claims = {"sub": "1", "role": "admin", "iat": now, "exp": now + 60, "jti": "x", "ep": 0}
    claims.update(overrides)
    return jwt.encode(claims, derive_key(secret, "jwt-signing"), algorithm="HS256")


async def test_a_token_signed_with_another_key_is_401(knm_client: ApiClient) -> None:
    token = _forge("some-other-secret")
    body = assert_envelope(
        await knm_client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}), 401
    )
    assert "signature" in body["error"]


async def test_an_expired_token_is_401_saying_expired(knm_client: ApiClient) -> None:
    token = _forge(TEST_SECRET, iat=int(time.time()) - 120, exp=int(time.time()) - 60)
    body = assert_envelope(
        await knm_client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}), 401
    )
    assert "expired" in body["error"]


async def test_refresh_exchanges_a_valid_token_for_a_fresh_one(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    body = assert_envelope(await knm_client.post("/auth/refresh", headers=admin_headers), 200)
    fresh = {"Authorization": f"Bearer {body['data']['token']}"}
    assert (
        assert_envelope(await knm_client.get("/auth/me", headers=fresh), 200)["data"]["username"]
        == "admin"
    )


async def test_roles_admin_operator_viewer_are_ordered(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    viewer = await knm_client.create_user(admin_headers, "vera", "viewer")
    operator = await knm_client.create_user(admin_headers, "otto", "operator")
    assert_envelope(await knm_client.get("/users", headers=viewer), 403)
    assert_envelope(await knm_client.get("/users", headers=operator), 403)
    assert_envelope(await knm_client.get("/users", headers=admin_headers), 200)
    assert_envelope(await knm_client.get("/auth/me", headers=viewer), 200)


async def test_disabling_a_user_invalidates_their_live_tokens_at_once(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    headers = await knm_client.create_user(admin_headers, "dora", "operator")
    me = assert_envelope(await knm_client.get("/auth/me", headers=headers), 200)["data"]
    assert_envelope(
        await knm_client.put(f"/users/{me['id']}", json={"disabled": True}, headers=admin_headers),
        200,
    )
    assert (
        "disabled"
        in assert_envelope(await knm_client.get("/auth/me", headers=headers), 401)["error"]
    )
    login = await knm_client.post(
        "/auth/login", json={"username": "dora", "password": "password-123"}
    )
    assert_envelope(login, 401)


async def test_resetting_a_password_revokes_tokens_issued_before(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    headers = await knm_client.create_user(admin_headers, "rita", "viewer")
    me = assert_envelope(await knm_client.get("/auth/me", headers=headers), 200)["data"]
    response = await knm_client.put(
        f"/users/{me['id']}/password", json={"password": "brand-new-pass"}, headers=admin_headers
    )
    assert_envelope(response, 200)
    assert_envelope(await knm_client.get("/auth/me", headers=headers), 401)
    await knm_client.login("rita", "brand-new-pass")


async def test_users_change_their_own_password(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    headers = await knm_client.create_user(admin_headers, "paul", "viewer", "first-password")
    wrong = await knm_client.put(
        "/auth/password",
        json={"current_password": "not-it", "new_password": "second-password"},
        headers=headers,
    )
    assert_envelope(wrong, 422)
    right = await knm_client.put(
        "/auth/password",
        json={"current_password": "first-password", "new_password": "second-password"},
        headers=headers,
    )
    assert_envelope(right, 200)
    await knm_client.login("paul", "second-password")


async def test_duplicate_usernames_conflict_and_short_passwords_are_refused(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await knm_client.create_user(admin_headers, "dup", "viewer")
    again = await knm_client.post(
        "/users", json={"username": "DUP", "password": "password-123"}, headers=admin_headers
    )
    assert_envelope(again, 409)
    short = await knm_client.post(
        "/users", json={"username": "shorty", "password": "x"}, headers=admin_headers
    )
    assert_envelope(short, 422)
    bad_role = await knm_client.post(
        "/users",
        json={"username": "r", "password": "password-123", "role": "root"},
        headers=admin_headers,
    )
    assert "role" in assert_envelope(bad_role, 400)["error"]


async def test_the_last_admin_cannot_be_demoted(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.put("/users/1", json={"role": "viewer"}, headers=admin_headers)
    assert_envelope(response, 409)


async def test_api_tokens_are_shown_once_work_and_stop_when_revoked(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    created = assert_envelope(
        await knm_client.post(
            "/tokens", json={"name": "prometheus", "role": "viewer"}, headers=admin_headers
        ),
        201,
    )["data"]
    token_headers = {"Authorization": f"Bearer {created['token']}"}
    me = assert_envelope(await knm_client.get("/auth/me", headers=token_headers), 200)
    assert me["data"]["username"] == "admin"
    # The token's role, not its creator's, is what it may do.
    assert_envelope(await knm_client.get("/users", headers=token_headers), 403)
    listed = assert_envelope(await knm_client.get("/tokens", headers=admin_headers), 200)["data"]
    assert all("token" not in item for item in listed["tokens"])
    assert_envelope(await knm_client.delete(f"/tokens/{created['id']}", headers=admin_headers), 200)
    body = assert_envelope(await knm_client.get("/auth/me", headers=token_headers), 401)
    assert "revoked" in body["error"]


async def test_a_token_cannot_outrank_its_creator(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    viewer = await knm_client.create_user(admin_headers, "tina", "viewer")
    response = await knm_client.post(
        "/tokens", json={"name": "escalate", "role": "admin"}, headers=viewer
    )
    assert_envelope(response, 403)


async def test_expired_api_tokens_are_refused(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    past = await knm_client.post(
        "/tokens", json={"name": "old", "expires_at": "2001-01-01T00:00:00Z"}, headers=admin_headers
    )
    assert_envelope(past, 422)


async def test_a_forged_api_token_is_401(knm_client: ApiClient) -> None:
    response = await knm_client.get("/auth/me", headers={"Authorization": "Bearer knm_forged"})
    assert_envelope(response, 401)
