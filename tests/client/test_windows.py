"""The SDK's maintenance-window calls against a real server, sync and async: create, read with
the next openings, change, delete; automatic resumes listed and cancelled; the server's 422s
(naming the field), 403s and 409s raised as their exceptions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from knm.client import AsyncClient, Client
from knm.client.errors import Conflict, Forbidden, Invalid, NotFound
from knm.testing.process import KnmProcess
from knm.testing.windows import stop_roll

TASK = "workflow-exec-1700000000-sdkwin"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def stopped_roll(knm_pool: Any) -> str:
    return await stop_roll(knm_pool, TASK, "lab", ["sdk-nightly"])


def test_a_window_is_created_shown_with_its_openings_changed_and_deleted(
    admin: Client, lab: str
) -> None:
    made = admin.create_window(
        "sdk-nightly", "0 22 * * *", 6 * 3600, timezone="Europe/Berlin", clusters=[lab]
    )
    assert made.clusters == [lab] and made.enabled is True and len(made.next_openings) == 5
    shown = admin.window(made.id)
    assert shown.name == "sdk-nightly" and shown.duration == 6 * 3600
    for opening in shown.next_openings:
        assert opening.start.tzinfo is not None
        assert opening.end - opening.start == timedelta(hours=6)
        assert opening.start.astimezone(BERLIN).hour == 22
    assert shown.open_now == (shown.current is not None)
    assert made.id in {w.id for w in admin.windows(page_size=100).items}
    with pytest.raises(Conflict):
        admin.delete_window(made.id)  # the lab requires it
    changed = admin.update_window(made.id, cron="0 1 * * 0", enabled=False, clusters=[])
    assert changed.cron == "0 1 * * 0" and changed.clusters == [] and changed.next_openings == []
    admin.delete_window(made.id)
    with pytest.raises(NotFound):
        admin.window(made.id)


def test_bad_timing_raises_invalid_naming_each_field(admin: Client) -> None:
    with pytest.raises(Invalid) as caught:
        admin.create_window("sdk-bad", "0 0 2 * * *", 0, timezone="Mars/Olympus")
    fields = [part.split(":")[0] for part in str(caught.value).split("; ")]
    assert fields == ["cron", "timezone", "duration"]


def test_a_viewer_reads_windows_but_may_not_create_them(admin: Client, server: KnmProcess) -> None:
    admin.create_user("sdk-win-viewer", "viewer-password", "viewer")
    with Client(server.base_url) as viewer:
        viewer.login("sdk-win-viewer", "viewer-password")
        assert viewer.windows().total >= 0
        with pytest.raises(Forbidden):
            viewer.create_window("sdk-viewer", "0 2 * * *", 60)


def test_a_pending_resume_is_listed_and_cancelled(admin: Client, stopped_roll: str) -> None:
    pending = admin.window_resumes(state="pending")
    assert [r.task_id for r in pending.items] == [stopped_roll]
    assert pending.items[0].windows == ["sdk-nightly"]
    cancelled = admin.cancel_window_resume(stopped_roll)
    assert cancelled.state == "cancelled" and cancelled.cancelled_by == "admin"
    assert admin.window_resumes(state="pending").total == 0
    with pytest.raises(Conflict):
        admin.cancel_window_resume(stopped_roll)


async def test_the_async_client_makes_and_reads_windows(server: KnmProcess, admin: Client) -> None:
    async with AsyncClient(server.base_url, token=admin.token) as client:
        made = await client.create_window("sdk-async", "*/30 * * * *", 600)
        assert made.timezone == "UTC"
        assert all(o.start.minute in (0, 30) for o in made.next_openings)
        changed = await client.update_window(made.id, duration=900)
        assert changed.duration == 900
        assert (await client.window(made.id)).name == "sdk-async"
        assert made.id in {w.id for w in (await client.windows(page_size=100)).items}
        assert (await client.window_resumes(state="started")).total == 0
        await client.delete_window(made.id)
        with pytest.raises(NotFound):
            await client.window(made.id)
