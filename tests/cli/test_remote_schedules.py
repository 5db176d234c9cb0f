"""``knm schedule`` against a real server: create from a request file, list, show with the
next fire times, edit, pause, resume, runs with their tasks, delete; errors name the option."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .conftest import Knm


def request_file(tmp_path: Path) -> str:
    path = tmp_path / "request.yaml"
    path.write_text("cluster_name: lab\ntarget_nodes: [n1]\necho: hello {node}\n")
    return str(path)


def test_a_schedule_is_created_listed_shown_edited_and_deleted(knm: Knm, tmp_path: Path) -> None:
    made = knm("schedule", "create", "cli-weekly", "--kind", "test",
               "--request-file", request_file(tmp_path), "--cron", "0 2 * * 0",
               "--timezone", "Europe/Berlin", "--json")  # fmt: skip
    assert made.code == 0, made.err
    schedule = made.json()
    assert schedule["request"]["echo"] == "hello {node}"
    assert len(schedule["next_fire_times"]) == 5
    listed = knm("schedule", "list")
    assert listed.code == 0 and "cli-weekly" in listed.out
    assert f"schedule/{schedule['id']}" in knm("schedule", "list", "-o", "name").out
    shown = knm("schedule", "show", "cli-weekly")
    assert shown.code == 0 and "next_fire_time" in shown.out.lower().replace(" ", "_")
    edited = knm("schedule", "edit", "cli-weekly", "--interval-seconds", "3600", "--json")
    assert edited.code == 0, edited.err
    assert edited.json()["cron"] is None and edited.json()["interval_seconds"] == 3600
    paused = knm("schedule", "pause", "cli-weekly", "--json").json()
    assert paused["enabled"] is False
    assert knm("schedule", "resume", str(schedule["id"])).out.startswith("resumed schedule")
    deleted = knm("schedule", "delete", "cli-weekly", "-y")
    assert deleted.code == 0 and deleted.out.startswith("deleted schedule")
    assert knm("schedule", "show", "cli-weekly").code == 4


def test_runs_list_the_tasks_a_schedule_started(knm: Knm, tmp_path: Path) -> None:
    made = knm("schedule", "create", "cli-often", "--kind", "test",
               "--request-file", request_file(tmp_path), "--interval-seconds", "1",
               "--max-concurrent-runs", "10", "--json")  # fmt: skip
    assert made.code == 0, made.err
    end = time.monotonic() + 60
    while json.loads(knm("schedule", "runs", "cli-often", "--json").out)["total"] < 2:
        assert time.monotonic() < end
        time.sleep(0.2)
    knm("schedule", "pause", "cli-often")
    runs = knm("schedule", "runs", "cli-often", "--json").json()["runs"]
    task_id = next(run["task_id"] for run in runs if run["status"] == "started")
    assert knm("task", "show", task_id).code == 0
    table = knm("schedule", "runs", "cli-often")
    assert task_id in table.out and "started" in table.out


def test_bad_input_is_refused_naming_what_to_fix(knm: Knm, tmp_path: Path) -> None:
    request = request_file(tmp_path)
    bad_cron = knm("schedule", "create", "cli-bad", "--kind", "test", "--request-file", request,
                   "--cron", "61 * * * *")  # fmt: skip
    assert bad_cron.code == 4 and "cron: " in bad_cron.err
    bad_zone = knm("schedule", "create", "cli-bad", "--kind", "test", "--request-file", request,
                   "--cron", "0 * * * *", "--timezone", "Moon/Base")  # fmt: skip
    assert bad_zone.code == 4 and "timezone: " in bad_zone.err
    neither = knm("schedule", "create", "cli-bad", "--kind", "test", "--request-file", request)
    assert neither.code == 2 and "--cron" in neither.err
    nothing = knm("schedule", "edit", "cli-bad")
    assert nothing.code == 2 and "nothing to change" in nothing.err
