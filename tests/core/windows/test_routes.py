"""``/windows`` over the API: admins manage windows, every role reads them, bad values are 422s
naming the field, every change is audited; operators cancel automatic resumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from knm.core.windows import resumes
from knm.core.windows.check import Requirement
from knm.core.windows.store import Window
from knm.testing.client import ApiClient, assert_envelope

NIGHTLY = {"cron": "0 22 * * *", "timezone": "Europe/Berlin", "duration": 6 * 3600}


@pytest.fixture(scope="module")
async def viewer(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "win-viewer", "viewer")


@pytest.fixture(scope="module")
async def operator(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "win-operator", "operator")


@pytest.fixture(scope="module", autouse=True)
async def clusters(knm_client: ApiClient, admin_headers: dict[str, str]) -> None:
    for name in ("win-a", "win-b"):
        body = {"name": name, "kind": "static", "nodes": [{"name": "n1", "address": "10.0.0.5"}]}
        assert_envelope(await knm_client.post("/clusters", json=body, headers=admin_headers), 201)


async def create(client: ApiClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/windows", json={**NIGHTLY, **body}, headers=headers)
    return assert_envelope(response, 201)["data"]


async def audit_actions(client: ApiClient, headers: dict[str, str], target: str) -> list[str]:
    found = await client.get(f"/audit?target={target}&action=window", headers=headers)
    return [e["action"] for e in assert_envelope(found, 200)["data"]["entries"]]


async def test_a_window_shows_whether_it_is_open_and_its_next_five_openings(
    knm_client: ApiClient, admin_headers: dict[str, str], viewer: dict[str, str]
) -> None:
    made = await create(knm_client, admin_headers, name="nightly", description="weeknights")
    assert made["name"] == "nightly" and made["enabled"] is True and made["clusters"] == []
    shown = assert_envelope(await knm_client.get(f"/windows/{made['id']}", headers=viewer), 200)
    data = shown["data"]
    assert data["cron"] == "0 22 * * *" and data["timezone"] == "Europe/Berlin"
    openings = data["next_openings"]
    assert len(openings) == 5
    starts = [datetime.fromisoformat(o["start"]) for o in openings]
    assert all(o["start"].endswith("Z") and o["end"].endswith("Z") for o in openings)
    assert starts == sorted(starts) and starts[0] > datetime.now(UTC) - timedelta(seconds=5)
    for opening, start in zip(openings, starts, strict=True):
        assert datetime.fromisoformat(opening["end"]) - start == timedelta(hours=6)
        assert start.astimezone(ZoneInfo("Europe/Berlin")).hour == 22
    assert data["open_now"] == (data["current"] is not None)
    listed = assert_envelope(await knm_client.get("/windows", headers=viewer), 200)["data"]
    assert "nightly" in [w["name"] for w in listed["windows"]] and listed["total"] >= 1
    assert await audit_actions(knm_client, admin_headers, "nightly") == ["window.create"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 2 * * *"}, "cron"),
        ({"cron": "0 2 * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "Europe"}, "timezone"),
        ({"duration": 0}, "duration"),
        ({"duration": 40 * 86_400}, "duration"),
        ({"name": "no spaces allowed"}, "name"),
    ],
)
async def test_invalid_values_are_422_naming_the_field(
    knm_client: ApiClient, admin_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await knm_client.post(
        "/windows", json={"name": "bad", **NIGHTLY, **body}, headers=admin_headers
    )
    error = assert_envelope(response, 422)["error"]
    assert error.startswith(f"{field}: "), error


async def test_malformed_bodies_are_400_naming_the_field(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    for body, field in (
        ({"name": "x", **NIGHTLY, "duration": "60"}, "duration"),
        ({"name": "x", "cron": "0 2 * * *", "timezone": "UTC"}, "duration"),
        ({"name": "x", **NIGHTLY, "colour": "red"}, "colour"),
    ):
        response = await knm_client.post("/windows", json=body, headers=admin_headers)
        assert field in assert_envelope(response, 400)["error"]
    response = await knm_client.post("/windows", content=b"[", headers=admin_headers)
    assert_envelope(response, 400)


async def test_only_admins_change_windows_and_other_roles_read_them(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    operator: dict[str, str],
    viewer: dict[str, str],
) -> None:
    made = await create(knm_client, admin_headers, name="roles")
    for headers in (operator, viewer):
        assert_envelope(
            await knm_client.post("/windows", json={"name": "x", **NIGHTLY}, headers=headers), 403
        )
        path = f"/windows/{made['id']}"
        assert_envelope(await knm_client.put(path, json={"duration": 60}, headers=headers), 403)
        assert_envelope(await knm_client.delete(path, headers=headers), 403)
        assert_envelope(await knm_client.get(path, headers=headers), 200)
    assert_envelope(await knm_client.get("/windows"), 401)


async def test_clusters_require_a_window_and_a_required_window_cannot_be_deleted(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    made = await create(knm_client, admin_headers, name="guarded", clusters=["win-a"])
    assert made["clusters"] == ["win-a"]
    path = f"/windows/{made['id']}"
    unknown = await knm_client.put(path, json={"clusters": ["nope"]}, headers=admin_headers)
    assert assert_envelope(unknown, 422)["error"].startswith("clusters: ")
    other = await knm_client.post(
        "/windows", json={"name": "other", **NIGHTLY, "clusters": ["win-a"]}, headers=admin_headers
    )
    assert "guarded" in assert_envelope(other, 409)["error"]
    assert (
        "win-a"
        in assert_envelope(await knm_client.delete(path, headers=admin_headers), 409)["error"]
    )
    changed = await knm_client.put(
        path, json={"clusters": ["win-b"], "enabled": False}, headers=admin_headers
    )
    data = assert_envelope(changed, 200)["data"]
    assert data["clusters"] == ["win-b"] and data["enabled"] is False
    assert data["open_now"] is False and data["current"] is None and data["next_openings"] == []
    bad = await knm_client.put(path, json={"timezone": "Nowhere/Land"}, headers=admin_headers)
    assert assert_envelope(bad, 422)["error"].startswith("timezone: ")
    assert_envelope(await knm_client.put(path, json={"clusters": []}, headers=admin_headers), 200)
    assert_envelope(await knm_client.delete(path, headers=admin_headers), 200)
    assert_envelope(await knm_client.get(path, headers=admin_headers), 404)
    assert await audit_actions(knm_client, admin_headers, "guarded") == [
        "window.delete",
        "window.update",
        "window.update",
        "window.create",
    ]


async def test_a_duplicate_name_is_409_and_unknown_ids_are_404(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await create(knm_client, admin_headers, name="twice")
    again = await knm_client.post(
        "/windows", json={"name": "twice", **NIGHTLY}, headers=admin_headers
    )
    assert_envelope(again, 409)
    for path in ("/windows/999999", "/windows/99999999999999999999999"):
        assert_envelope(await knm_client.get(path, headers=admin_headers), 404)
        assert_envelope(await knm_client.put(path, json={}, headers=admin_headers), 404)


async def test_operators_see_and_cancel_a_pending_automatic_resume(
    knm_client: ApiClient,
    knm_app: Any,
    admin_headers: dict[str, str],
    operator: dict[str, str],
    viewer: dict[str, str],
) -> None:
    knm = knm_app.state["knm"]
    task_id = "workflow-exec-1700000000-wintst"
    window = Window(id=1, name="nightly", enabled=True, description="", **NIGHTLY)
    due = datetime.now(UTC) + timedelta(hours=1)

    async def prepare() -> None:
        await knm.pool.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, end_time)
               VALUES ($1, 'workflow', 'failed', 'win-a', now())""",
            task_id,
        )
        await resumes.schedule(knm.pool, task_id, Requirement((window,)), due)

    await knm_client.on_app(prepare)
    listed = await knm_client.get("/windows/resumes?state=pending", headers=viewer)
    found = {r["task_id"]: r for r in assert_envelope(listed, 200)["data"]["resumes"]}
    assert found[task_id]["windows"] == ["nightly"] and found[task_id]["state"] == "pending"
    path = f"/windows/resumes/{task_id}/cancel"
    assert_envelope(await knm_client.post(path, headers=viewer), 403)
    cancelled = assert_envelope(await knm_client.post(path, headers=operator), 200)["data"]
    assert cancelled["state"] == "cancelled" and cancelled["cancelled_by"] == "win-operator"
    assert (
        "cancelled" in assert_envelope(await knm_client.post(path, headers=operator), 409)["error"]
    )
    assert_envelope(
        await knm_client.post("/windows/resumes/workflow-exec-0-none/cancel", headers=operator),
        404,
    )
    assert_envelope(await knm_client.get("/windows/resumes?state=bogus", headers=viewer), 400)
    assert await audit_actions(knm_client, admin_headers, task_id) == ["window.resume_cancel"]
    # A cancelled resume is never started, however due it is.
    assert await knm_client.on_app(resumes.start_due, knm, due + timedelta(days=1)) == []
