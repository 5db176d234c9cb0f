"""``knm window`` against a real server: create, list, show with the next openings, edit,
delete; automatic resumes listed and cancelled; errors name the option to fix."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from knm.client import Client
from knm.testing.windows import stop_roll

from .conftest import Knm

TASK = "workflow-exec-1700000000-cliwin"


@pytest.fixture(scope="module")
def lab(admin: Client) -> str:
    admin.create_cluster("win-lab", "static", nodes=[{"name": "n1", "address": "127.0.0.2"}])
    return "win-lab"


@pytest.fixture
async def stopped_roll(knm_pool: Any) -> str:
    return await stop_roll(knm_pool, TASK, "win-lab", ["cli-sundays"])


def test_a_window_is_created_listed_shown_edited_and_deleted(knm: Knm, lab: str) -> None:
    made = knm("window", "create", "cli-sundays", "--cron", "0 2 * * 0",
               "--timezone", "Europe/Berlin", "--duration", "3h", "--cluster", lab,
               "--description", "kernel upgrades", "--json")  # fmt: skip
    assert made.code == 0, made.err
    window = made.json()
    assert window["duration"] == 3 * 3600 and window["clusters"] == [lab]
    assert len(window["next_openings"]) == 5
    listed = knm("window", "list")
    assert listed.code == 0 and "cli-sundays" in listed.out and "Europe/Berlin" in listed.out
    assert knm("window", "list", "-o", "name").out.splitlines() == [f"window/{window['id']}"]
    assert "kernel upgrades" in knm("window", "list", "-o", "wide").out
    assert "cli-sundays" in knm("window", "show", "cli-sundays", "-o", "yaml").out
    shown = knm("window", "show", "cli-sundays")
    assert shown.code == 0, shown.err
    first = window["next_openings"][0]
    start = datetime.fromisoformat(first["start"]).strftime("%Y-%m-%d %H:%M:%S")
    assert "START" in shown.out and start in shown.out
    edited = knm("window", "edit", f"window/{window['id']}", "--duration", "90m",
                 "--no-clusters", "--disable", "--json")  # fmt: skip
    assert edited.code == 0, edited.err
    changed = edited.json()
    assert changed["duration"] == 5400 and changed["clusters"] == [] and not changed["enabled"]
    assert "disabled" in knm("window", "show", "cli-sundays").out
    renamed = knm("window", "edit", "cli-sundays", "--name", "cli-sunday-nights", "--enable")
    assert renamed.code == 0 and renamed.out.startswith("changed window")
    deleted = knm("window", "delete", "cli-sunday-nights", "-y")
    assert deleted.code == 0 and deleted.out.startswith("deleted window")
    assert knm("window", "show", "cli-sunday-nights").code == 4


def test_a_window_a_cluster_requires_is_not_deleted(knm: Knm, lab: str) -> None:
    knm("window", "create", "cli-held", "--cron", "0 3 * * *", "--duration", "60",
        "--cluster", lab)  # fmt: skip
    refused = knm("window", "delete", "cli-held", "-y")
    assert refused.code == 4 and lab in refused.err
    assert knm("window", "edit", "cli-held", "--no-clusters").code == 0
    assert knm("window", "delete", "cli-held", "-y").code == 0


def test_bad_input_is_refused_naming_the_option_to_fix(knm: Knm) -> None:
    bad = knm("window", "create", "cli-bad", "--cron", "0 0 2 * * *", "--timezone",
              "Moon/Base", "--duration", "0")  # fmt: skip
    assert bad.code == 4
    assert "--cron: " in bad.err and "--timezone: " in bad.err and "--duration: " in bad.err
    unparsed = knm("window", "create", "cli-bad", "--cron", "0 2 * * *", "--duration", "3 hours")
    assert unparsed.code == 2 and "--duration" in unparsed.err and "3h" in unparsed.err
    missing = knm("window", "create", "cli-bad", "--cron", "0 2 * * *")
    assert missing.code == 2 and "--duration" in missing.err
    nothing = knm("window", "edit", "cli-bad")
    assert nothing.code == 2 and "nothing to change" in nothing.err
    both = knm("window", "edit", "cli-bad", "--cluster", "x", "--no-clusters")
    assert both.code == 2 and "--no-clusters" in both.err
    unknown = knm("window", "create", "cli-bad", "--cron", "0 2 * * *", "--duration", "1h",
                  "--cluster", "no-such-cluster")  # fmt: skip
    assert unknown.code == 4 and "--cluster: " in unknown.err


def test_a_pending_resume_is_listed_and_cancelled(knm: Knm, stopped_roll: str) -> None:
    listed = knm("window", "resumes", "--state", "pending")
    assert listed.code == 0 and stopped_roll in listed.out and "pending" in listed.out
    assert knm("window", "resumes", "-o", "name").out.splitlines() == [f"resume/{stopped_roll}"]
    cancelled = knm("window", "cancel-resume", f"resume/{stopped_roll}")  # as -o name printed
    assert cancelled.code == 0, cancelled.err
    assert cancelled.out.strip() == f"cancelled the automatic resume of {stopped_roll}"
    assert knm("window", "resumes", "--state", "pending", "--json").json()["total"] == 0
    again = knm("window", "cancel-resume", stopped_roll)
    assert again.code == 4 and "cancelled" in again.err
    assert knm("window", "resumes", "--state", "bogus").code == 2
