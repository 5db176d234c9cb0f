"""``/schedules``: validation as the execute route's (422 naming the field), roles, next fire
times, pause and resume, and an audit entry for every change."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from knm.core.crypto import Keyring, Sealed, rotate
from knm.core.schedules.store import REQUEST
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.database import TEST_SECRET


async def create(client: ApiClient, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return await client.post("/schedules", json=body, headers=headers)


def schedule_body(name: str, **fields: Any) -> dict[str, Any]:
    """A schedule of the test executor firing yearly."""
    body: dict[str, Any] = {
        "name": name,
        "kind": "test",
        "request": {"cluster_name": "lab", "target_nodes": ["n1"]},
        "cron": "0 3 1 1 *",
        "timezone": "Europe/Berlin",
    }
    return body | fields


async def created(client: ApiClient, headers: dict[str, str], name: str, **fields: Any) -> dict:
    return assert_envelope(await create(client, headers, schedule_body(name, **fields)), 201)[
        "data"
    ]


def error_of(response: Any, status: int) -> str:
    return assert_envelope(response, status)["error"]


async def test_an_operator_creates_a_schedule_that_fires_as_them(
    knm_client: ApiClient, operator_headers: dict[str, str]
) -> None:
    data = await created(knm_client, operator_headers, "nightly")
    assert data["owner_name"] == "otto" and data["kind"] == "test"
    assert data["enabled"] is True and data["misfire_policy"] == "skip"
    assert data["max_concurrent_runs"] == 1
    assert data["request"]["target_nodes"] == ["n1"]
    assert len(data["next_fire_times"]) == 5
    assert all(t.endswith("Z") or t.endswith("+00:00") for t in data["next_fire_times"])
    # 03:00 in Berlin on 1 January is 02:00 UTC (CET).
    assert all(t[5:16] == "01-01T02:00" for t in data["next_fire_times"])
    assert data["next_fire_at"] == data["next_fire_times"][0]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cron": "61 * * * *"}, "cron: "),
        ({"cron": "not cron"}, "cron: "),
        ({"timezone": "Mars/Olympus"}, "timezone: "),
        ({"cron": None}, "cron: "),
        ({"interval_seconds": 60}, "cron: "),
        ({"kind": "nope"}, "kind: "),
        ({"request": {"cluster_name": "lab", "target_nodes": ["n1"], "sleep": "x"}},
         "request.sleep: "),
        ({"request": {"cluster_name": "lab", "target_nodes": ["n1"], "bogus": 1}},
         "request: "),
        ({"request": {"cluster_name": "lab"}}, "request.target_nodes: "),
        ({"request": {"cluster_name": "lab", "target_nodes": ["n1"], "timeout": 0}},
         "request: timeout must be greater than 0"),
        ({"start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"}, "end_at: "),
        ({"start_at": "2030-01-02T00:00:00"}, "start_at: "),
    ],
)  # fmt: skip
async def test_a_bad_schedule_is_a_422_naming_the_field(
    knm_client: ApiClient, operator_headers: dict[str, str], fields: dict[str, Any], named: str
) -> None:
    response = await create(knm_client, operator_headers, schedule_body("bad", **fields))
    assert error_of(response, 422).startswith(named), response.text


async def test_a_body_of_the_wrong_shape_is_a_400(
    knm_client: ApiClient, operator_headers: dict[str, str]
) -> None:
    for body in ({"name": "x"}, schedule_body("x", max_concurrent_runs="2"), [1]):
        response = await create(knm_client, operator_headers, body)  # type: ignore[arg-type]
        assert response.status_code == 400, response.text
    response = await create(knm_client, operator_headers, schedule_body("x", misfire_policy="no"))
    assert response.status_code == 400, response.text


async def test_a_stored_command_the_guard_rail_refuses_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    credential = {"name": "sched-cred", "username": "ops", "auth_type": "password",
                  "password": "pw-123456"}  # fmt: skip
    cid = assert_envelope(
        await knm_client.post("/credentials", json=credential, headers=admin_headers), 201
    )["data"]["id"]
    request = {"cluster_name": "lab", "target_nodes": ["n1"], "credential_id": cid,
               "command": "rm -rf /"}  # fmt: skip
    response = await create(
        knm_client, operator_headers, schedule_body("wipe", kind="ssh", request=request)
    )
    assert error_of(response, 422).startswith("request.command: "), response.text
    execute = await knm_client.post(
        "/automation/ssh/execute", json=request, headers=operator_headers
    )
    # The same refusal the execute route gives, under the schedule's field.
    assert execute.status_code == 422
    assert execute.json()["error"] in response.json()["error"]


async def test_a_credential_the_operator_may_not_use_is_a_403_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    credential = {"name": "admins-only", "username": "ops", "auth_type": "password",
                  "password": "pw-123456", "allowed_roles": ["admin"]}  # fmt: skip
    cid = assert_envelope(
        await knm_client.post("/credentials", json=credential, headers=admin_headers), 201
    )["data"]["id"]
    request = {"cluster_name": "lab", "target_nodes": ["n1"], "credential_id": cid}
    response = await create(knm_client, operator_headers, schedule_body("c", request=request))
    assert error_of(response, 403).startswith("user 'otto'")


async def test_viewers_read_but_do_not_create(
    knm_client: ApiClient, viewer_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    response = await create(knm_client, viewer_headers, schedule_body("viewer-made"))
    assert response.status_code == 403
    mine = await created(knm_client, operator_headers, "seen-by-viewer")
    shown = await knm_client.get(f"/schedules/{mine['id']}", headers=viewer_headers)
    assert assert_envelope(shown, 200)["data"]["name"] == "seen-by-viewer"
    response = await knm_client.request(
        "PATCH", f"/schedules/{mine['id']}", json={"enabled": False}, headers=viewer_headers
    )
    assert response.status_code == 403


async def test_operators_see_and_change_only_their_own_admins_all(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    operator_headers: dict[str, str],
    other_operator_headers: dict[str, str],
) -> None:
    theirs = await created(knm_client, other_operator_headers, "ophelias")
    path = f"/schedules/{theirs['id']}"
    assert (await knm_client.get(path, headers=operator_headers)).status_code == 404
    assert (await knm_client.delete(path, headers=operator_headers)).status_code == 404
    listed = assert_envelope(await knm_client.get("/schedules", headers=operator_headers), 200)
    assert all(s["owner_name"] == "otto" for s in listed["data"]["schedules"])
    everything = assert_envelope(
        await knm_client.get("/schedules?page_size=100", headers=admin_headers), 200
    )["data"]
    assert "ophelias" in {s["name"] for s in everything["schedules"]}
    assert everything["total"] >= len(everything["schedules"])
    paused = await knm_client.post(f"{path}/pause", headers=admin_headers)
    assert assert_envelope(paused, 200)["data"]["enabled"] is False
    assert (await knm_client.delete(path, headers=admin_headers)).status_code == 200
    assert (await knm_client.get(path, headers=admin_headers)).status_code == 404


async def test_names_are_unique(knm_client: ApiClient, operator_headers: dict[str, str]) -> None:
    await created(knm_client, operator_headers, "only-one")
    response = await create(knm_client, operator_headers, schedule_body("ONLY-ONE"))
    assert response.status_code == 409


async def test_next_fire_times_follow_the_spring_forward_rule(
    knm_client: ApiClient, operator_headers: dict[str, str]
) -> None:
    # Next year's last Sunday of March: Berlin skips 02:00-03:00, so 02:30 fires at 03:00 CEST.
    year = datetime.now(UTC).year + 1
    day = date(year, 3, 31)
    day -= timedelta(days=(day.weekday() + 1) % 7)
    start = datetime(year, 3, day.day - 2, 12, tzinfo=UTC)
    data = await created(
        knm_client, operator_headers, "dst", cron="30 2 * * *", start_at=start.isoformat()
    )
    fires = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in data["next_fire_times"]]
    assert fires[0] == datetime(year, 3, day.day - 1, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert fires[1] == datetime(year, 3, day.day, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert fires[2] == datetime(year, 3, day.day + 1, 0, 30, tzinfo=UTC)  # 02:30 CEST


async def test_a_change_is_checked_and_moves_the_next_fire(
    knm_client: ApiClient, operator_headers: dict[str, str]
) -> None:
    data = await created(knm_client, operator_headers, "to-change")
    path = f"/schedules/{data['id']}"
    response = await knm_client.request(
        "PATCH", path, json={"interval_seconds": 3600}, headers=operator_headers
    )
    changed = assert_envelope(response, 200)["data"]
    assert changed["cron"] is None and changed["interval_seconds"] == 3600
    first = datetime.fromisoformat(changed["next_fire_times"][0].replace("Z", "+00:00"))
    assert first - datetime.now(UTC) <= timedelta(seconds=3600)
    bad = await knm_client.put(path, json={"timezone": "Nowhere/Else"}, headers=operator_headers)
    assert error_of(bad, 422).startswith("timezone: ")
    bad = await knm_client.put(
        path, json={"request": {"cluster_name": "lab"}}, headers=operator_headers
    )
    assert error_of(bad, 422).startswith("request.target_nodes: ")
    good = await knm_client.put(
        path, json={"cron": "*/5 * * * *", "request": {"cluster_name": "lab",
        "target_nodes": ["n2"]}}, headers=operator_headers,
    )  # fmt: skip
    shown = assert_envelope(good, 200)["data"]
    assert shown["interval_seconds"] is None and shown["cron"] == "*/5 * * * *"
    assert shown["request"]["target_nodes"] == ["n2"]


async def test_a_paused_schedule_shows_no_next_fires_and_resumes(
    knm_client: ApiClient, operator_headers: dict[str, str]
) -> None:
    data = await created(knm_client, operator_headers, "pausable")
    path = f"/schedules/{data['id']}"
    paused = assert_envelope(await knm_client.post(f"{path}/pause", headers=operator_headers), 200)
    assert paused["data"]["enabled"] is False and paused["data"]["next_fire_times"] == []
    resumed = assert_envelope(
        await knm_client.post(f"{path}/resume", headers=operator_headers), 200
    )
    assert resumed["data"]["enabled"] is True and len(resumed["data"]["next_fire_times"]) == 5


async def test_every_change_is_audited(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str]
) -> None:
    data = await created(knm_client, operator_headers, "audited")
    path = f"/schedules/{data['id']}"
    await knm_client.post(f"{path}/pause", headers=operator_headers)
    await knm_client.post(f"{path}/resume", headers=operator_headers)
    await knm_client.put(path, json={"description": "x"}, headers=operator_headers)
    await knm_client.delete(path, headers=operator_headers)
    entries = assert_envelope(
        await knm_client.get("/audit?target=audited&page_size=100", headers=admin_headers), 200
    )["data"]["entries"]
    assert sorted(e["action"] for e in entries) == sorted(
        ["schedule.create", "schedule.pause", "schedule.resume", "schedule.update",
         "schedule.delete"]
    )  # fmt: skip
    assert all(e["username"] == "otto" for e in entries)


async def test_unknown_ids_are_404(knm_client: ApiClient, admin_headers: dict[str, str]) -> None:
    for path in ("/schedules/999999", "/schedules/99999999999999999999", "/schedules/999/runs"):
        assert (await knm_client.get(path, headers=admin_headers)).status_code == 404


async def test_times_are_whole_seconds_in_utc(
    knm_client: ApiClient, operator_headers: dict[str, str]
) -> None:
    data = await created(
        knm_client, operator_headers, "whole-seconds", cron=None, interval_seconds=90,
        start_at="2030-06-01T12:00:00.750+02:00",
    )  # fmt: skip
    assert data["start_at"] == "2030-06-01T10:00:00Z"
    assert data["next_fire_times"][:2] == ["2030-06-01T10:00:00Z", "2030-06-01T10:01:30Z"]


async def test_a_key_rotation_reseals_the_stored_request(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: Any
) -> None:
    data = await created(
        knm_client, operator_headers, "rotated",
        request={"cluster_name": "lab", "target_nodes": ["n1"], "secret": "s3-rotated"},
    )  # fmt: skip
    new_secret = "a-brand-new-secret-key-for-rotation"
    new = Keyring(new_secret, [TEST_SECRET])
    report = await rotate(knm_pool, new, [REQUEST])
    assert report.failed == [] and report.rotated >= 1
    row = await knm_pool.fetchrow("SELECT * FROM schedules WHERE id = $1", data["id"])
    assert row["key_id"] == new.current_id
    opened = REQUEST.open(new, Sealed(row["key_id"], row["nonce"], row["ciphertext"]), row["id"])
    assert json.loads(opened)["secret"] == "s3-rotated"
    # Back to the app's own key, for the module's other tests.
    back = await rotate(knm_pool, Keyring(TEST_SECRET, [new_secret]), [REQUEST])
    assert back.failed == []
