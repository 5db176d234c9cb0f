"""The audit log: who did what, to which target, from where — and never a secret."""

from __future__ import annotations

from knm.testing.client import ApiClient, assert_envelope


async def test_mutations_and_logins_are_audited_and_filterable(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await knm_client.create_user(admin_headers, "audited", "operator", "audited-password")
    await knm_client.post("/auth/login", json={"username": "audited", "password": "wrong-one"})
    await knm_client.put("/features/automation/ssh", json={"timeout": 61}, headers=admin_headers)
    body = assert_envelope(await knm_client.get("/audit", headers=admin_headers), 200)["data"]
    actions = [(e["action"], e["target"], e["outcome"]) for e in body["entries"]]
    assert ("user.create", "audited", "ok") in actions
    assert ("auth.login", "audited", "failed") in actions
    assert ("features.update", "ssh", "ok") in actions
    entry = next(e for e in body["entries"] if e["action"] == "user.create")
    assert entry["username"] == "admin" and entry["role"] == "admin" and entry["client"]
    only_users = (await knm_client.get("/audit?action=user", headers=admin_headers)).json()["data"]
    assert {e["action"].split(".")[0] for e in only_users["entries"]} == {"user"}
    by_user = (await knm_client.get("/audit?user=audited", headers=admin_headers)).json()["data"]
    assert by_user["total"] >= 1
    response = await knm_client.get("/audit", headers=admin_headers)
    assert "audited-password" not in response.text and "wrong-one" not in response.text


async def test_only_admins_read_the_audit_log(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    operator = await knm_client.create_user(admin_headers, "auditor", "operator")
    assert_envelope(await knm_client.get("/audit", headers=operator), 403)
    assert_envelope(
        await knm_client.get(
            "/audit?start_date=2025-02-10&end_date=2025-01-01", headers=admin_headers
        ),
        400,
    )
