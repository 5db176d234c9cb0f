"""The SDK's schedule calls against a real server: create, read, change, pause, resume, runs,
delete, and the server's 422 raised as ``Invalid``."""

from __future__ import annotations

import time

import pytest

from knm.client import Client
from knm.client.errors import Invalid, NotFound


def test_a_schedule_made_through_the_sdk_fires_and_lists_its_runs(admin: Client) -> None:
    schedule = admin.create_schedule(
        "sdk-every-second",
        "test",
        {"cluster_name": "lab", "target_nodes": ["n1"]},
        interval_seconds=1,
        max_concurrent_runs=10,
    )
    assert schedule.kind == "test" and len(schedule.next_fire_times) == 5
    end = time.monotonic() + 60
    while (runs := admin.schedule_runs(schedule.id)).total < 2:
        assert time.monotonic() < end
        time.sleep(0.2)
    paused = admin.pause_schedule(schedule.id)
    assert paused.enabled is False and paused.next_fire_times == []
    started = [run for run in runs.items if run.status == "started"]
    assert started and admin.task(started[0].task_id or "").task_id == started[0].task_id
    resumed = admin.resume_schedule(schedule.id)
    assert resumed.enabled is True
    changed = admin.update_schedule(schedule.id, cron="0 4 * * *", timezone="Asia/Tokyo")
    assert changed.interval_seconds is None and changed.cron == "0 4 * * *"
    assert all(t.hour == 19 for t in changed.next_fire_times)  # 04:00 JST is 19:00 UTC
    assert schedule.id in {s.id for s in admin.schedules(page_size=100).items}
    admin.delete_schedule(schedule.id)
    with pytest.raises(NotFound):
        admin.schedule(schedule.id)


def test_a_bad_cron_raises_invalid_naming_the_field(admin: Client) -> None:
    with pytest.raises(Invalid) as caught:
        admin.create_schedule(
            "sdk-bad", "test", {"cluster_name": "lab", "target_nodes": ["n1"]}, cron="* * *"
        )
    assert str(caught.value).startswith("cron: ")
