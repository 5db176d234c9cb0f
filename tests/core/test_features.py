"""Feature switches and executor settings."""

from __future__ import annotations

import time

import httpx
import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.database import TEST_ADMIN_PASSWORD


async def test_features_are_public_and_show_only_booleans(knm_client: ApiClient) -> None:
    body = assert_envelope(await knm_client.get("/features"), 200)
    flags = body["data"]["automation"]
    assert {
        "enabled",
        "ansible_enabled",
        "ssh_enabled",
        "scripts_enabled",
        "workflows_enabled",
        "k8s_enabled",
    } <= flags.keys()
    assert all(isinstance(value, bool) for value in flags.values())


async def test_only_admins_change_switches(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    operator = await knm_client.create_user(admin_headers, "op", "operator")
    response = await knm_client.put(
        "/features/automation/enabled", json={"enabled": False}, headers=operator
    )
    assert_envelope(response, 403)
    assert_envelope(
        await knm_client.put("/features/automation/enabled", json={"enabled": False}), 401
    )
    assert_envelope(await knm_client.get("/features/automation", headers=operator), 403)


async def test_the_master_switch_turns_everything_off(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    switch = "/features/automation/enabled"
    try:
        off = await knm_client.put(switch, json={"enabled": False}, headers=admin_headers)
        assert_envelope(off, 200)
        features = (await knm_client.get("/features")).json()["data"]
        assert features["automation"]["enabled"] is False
        knm = knm_client.http.app.state["knm"]  # type: ignore[attr-defined]
        from knm.core.errors import FeatureDisabled

        with pytest.raises(FeatureDisabled, match=r"automation\.enabled"):
            await knm_client.on_app(knm.features.require, "ssh")
    finally:  # on again whatever failed: the module's other tests need it
        on = await knm_client.put(switch, json={"enabled": True}, headers=admin_headers)
        assert_envelope(on, 200)


async def test_ssh_settings_accept_the_specs_body_without_enabled(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.put(
        "/features/automation/ssh",
        json={"timeout": 120, "max_concurrent": 40, "connection_pool_size": 5},
        headers=admin_headers,
    )
    data = assert_envelope(response, 200)["data"]
    assert data["timeout"] == 120 and data["enabled"] is True
    every = assert_envelope(
        await knm_client.get("/features/automation", headers=admin_headers), 200
    )["data"]
    assert every["ssh"]["connection_pool_size"] == 5


async def test_an_executor_switch_off_names_that_switch(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    switch = "/features/automation/ssh"
    try:
        off = await knm_client.put(switch, json={"enabled": False}, headers=admin_headers)
        assert_envelope(off, 200)
        features = (await knm_client.get("/features")).json()["data"]
        assert features["automation"]["ssh_enabled"] is False
        knm = knm_client.http.app.state["knm"]  # type: ignore[attr-defined]
        from knm.core.errors import FeatureDisabled

        with pytest.raises(FeatureDisabled, match="ssh_enabled"):
            await knm_client.on_app(knm.features.require, "ssh")
    finally:
        on = await knm_client.put(switch, json={"enabled": True}, headers=admin_headers)
        assert_envelope(on, 200)


@pytest.mark.parametrize(
    ("kind", "body", "status"),
    [
        ("ssh", {"timeout": 0}, 422),
        ("ssh", {"timeout": -5}, 422),
        ("ssh", {"max_concurrent": 0}, 422),
        ("ssh", {"max_concurrent": 10001}, 422),
        ("ssh", {"timeout": "60"}, 400),
        ("ssh", {"bogus": 1}, 400),
        ("ansible", {"binary_path": "/nonexistent/ansible-playbook"}, 422),
        ("workflows", {"max_steps": 0}, 422),
        ("nope", {"timeout": 5}, 404),
    ],
)
async def test_bad_settings_are_refused(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    kind: str,
    body: dict[str, object],
    status: int,
) -> None:
    response = await knm_client.put(
        f"/features/automation/{kind}", json=body, headers=admin_headers
    )
    assert_envelope(response, status)


async def test_a_body_that_is_not_json_is_400(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.put(
        "/features/automation/ssh",
        content=b"{not json",
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert_envelope(response, 400)


async def test_ansible_settings_take_the_specs_fields(
    knm_client: ApiClient, admin_headers: dict[str, str], ansible_temp_dir: str
) -> None:
    import shutil

    binary = shutil.which("ansible-playbook") or "/bin/true"
    fields = ("binary_path", "temp_dir", "timeout", "max_concurrent")
    before = assert_envelope(
        await knm_client.get("/features/automation", headers=admin_headers), 200
    )
    restore = {name: before["data"]["ansible"][name] for name in fields}
    try:
        response = await knm_client.put(
            "/features/automation/ansible",
            json={
                "binary_path": binary,
                "temp_dir": ansible_temp_dir,
                "timeout": 3600,
                "max_concurrent": 10,
            },
            headers=admin_headers,
        )
        assert assert_envelope(response, 200)["data"]["binary_path"] == binary
    finally:
        # Later tests on this app run Ansible, which would make the removed temp_dir again.
        restored = await knm_client.put(
            "/features/automation/ansible", json=restore, headers=admin_headers
        )
        assert_envelope(restored, 200)


@pytest.mark.timeout(180)
def test_a_change_through_one_process_reaches_another(knm_process) -> None:  # type: ignore[no-untyped-def]
    first = knm_process()
    second = knm_process()
    login = httpx.post(
        f"{first.api}/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['data']['token']}"}
    assert (
        httpx.get(f"{second.api}/features").json()["data"]["automation"]["scripts_enabled"] is True
    )
    switch = f"{first.api}/features/automation/scripts"
    try:
        response = httpx.put(switch, json={"enabled": False}, headers=headers)
        assert response.status_code == 200
        # The other process hears of it (NOTIFY) or rereads its cache: no event a test can
        # follow, so the wait is on the answer itself, bounded.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            features = httpx.get(f"{second.api}/features").json()["data"]
            if features["automation"]["scripts_enabled"] is False:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the other process never saw the change")
    finally:
        httpx.put(switch, json={"enabled": True}, headers=headers)
