"""Rolls and maintenance windows, on the test executor (nothing touches a node): disruptive work
is refused or waits outside the window, a roll stops at the window's end after the batch in
flight and its finalizers, and resumes, once, at the next opening unless that was cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from knm.core.windows import resumes
from knm.core.windows.cron import Schedule
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.plugin import TEST_EXECUTOR
from knm.testing.tasks import eventually, wait_for_task

NODES = [f"n{i}" for i in range(1, 7)]
#: Every minute, open for 12 s: a batch of 8 s that starts inside runs past its end.
EVERY_MINUTE = {"cron": "* * * * *", "timezone": "UTC", "duration": 12}
FAR_OFF = {"cron": "0 3 29 2 *", "timezone": "Europe/Berlin", "duration": 60}


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


async def make_cluster(client: ApiClient, headers: dict[str, str], name: str) -> None:
    nodes = [{"name": n, "address": f"127.0.0.{i + 2}"} for i, n in enumerate(NODES)]
    body = {"name": name, "kind": "static", "nodes": nodes}
    assert_envelope(await client.post("/clusters", json=body, headers=headers), 201)


async def make_window(
    client: ApiClient, headers: dict[str, str], name: str, clusters: list[str], **timing: Any
) -> dict[str, Any]:
    body = {"name": name, "clusters": clusters, **timing}
    return assert_envelope(await client.post("/windows", json=body, headers=headers), 201)["data"]


async def make_workflow(
    client: ApiClient, headers: dict[str, str], name: str, sleep: float = 0, **definition: Any
) -> int:
    steps = [
        {"id": "work", "type": "test", "sleep": sleep, "reboots": True},
        {"id": "give_back", "type": "test", "depends_on": ["work"], "when": "always"},
    ]
    body = {"name": name, "definition": {"steps": steps, **definition}}
    response = await client.post("/automation/workflows", json=body, headers=headers)
    return assert_envelope(response, 201)["data"]["id"]


async def execute(
    client: ApiClient, headers: dict[str, str], workflow_id: int, cluster: str, **body: Any
) -> Any:
    return await client.post(
        "/automation/workflows/execute",
        json={"workflow_id": workflow_id, "cluster_name": cluster, **body},
        headers=headers,
    )


async def test_disruptive_work_outside_the_window_is_refused_naming_it_and_its_next_opening(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await make_cluster(knm_client, admin_headers, "win-closed")
    await make_window(knm_client, admin_headers, "leap-night", ["win-closed"], **FAR_OFF)
    disruptive = await make_workflow(knm_client, admin_headers, "win-refused")
    refused = await execute(
        knm_client, admin_headers, disruptive, "win-closed", target_nodes=["n1"]
    )
    error = assert_envelope(refused, 422)["error"]
    opening = Schedule(**FAR_OFF).next_opening(datetime.now(UTC))
    assert opening is not None
    assert "'leap-night' is closed" in error
    assert opening.strftime("%Y-%m-%dT%H:%M:%SZ") in error and "wait_for_window" in error
    # Work that disrupts nothing needs no window.
    steps = [{"id": "look", "type": "test", "echo": "{node}"}]
    body = {"name": "win-harmless", "definition": {"steps": steps}}
    harmless = assert_envelope(
        await knm_client.post("/automation/workflows", json=body, headers=admin_headers), 201
    )["data"]["id"]
    started = await execute(knm_client, admin_headers, harmless, "win-closed", target_nodes=["n1"])
    task_id = assert_envelope(started, 200)["data"]["task_id"]
    assert (await wait_for_task(knm_client, admin_headers, task_id))["status"] == "completed"


async def test_a_workflow_naming_an_unknown_window_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    steps = [{"id": "work", "type": "test", "reboots": True}]
    body = {"name": "win-unknown", "definition": {"steps": steps, "maintenance_window": "nope"}}
    response = await knm_client.post("/automation/workflows", json=body, headers=admin_headers)
    assert (
        "maintenance_window: no maintenance window named 'nope'"
        in (assert_envelope(response, 422)["error"])
    )


async def test_a_run_that_waits_for_its_window_runs_nothing_until_it_opens_and_can_be_cancelled(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await make_cluster(knm_client, admin_headers, "win-wait")
    # The workflow's own window: the cluster requires none.
    await make_window(knm_client, admin_headers, "wf-leap-night", [], **FAR_OFF)
    wf = await make_workflow(
        knm_client, admin_headers, "win-waits", maintenance_window="wf-leap-night"
    )
    assert_envelope(
        await execute(knm_client, admin_headers, wf, "win-wait", target_nodes=["n1"]), 422
    )
    started = await execute(
        knm_client, admin_headers, wf, "win-wait", target_nodes=["n1"], wait_for_window=True
    )
    task_id = assert_envelope(started, 200)["data"]["task_id"]

    async def waiting() -> bool:
        events = await knm_client.get(f"/tasks/{task_id}/events", headers=admin_headers)
        entries = events.json()["data"]["entries"]
        return any(e["message"].startswith("waiting: maintenance window") for e in entries)

    await eventually(waiting)
    assert_envelope(
        await knm_client.post(f"/automation/workflows/cancel/{task_id}", headers=admin_headers),
        200,
    )
    status = await wait_for_task(knm_client, admin_headers, task_id)
    assert status["status"] == "cancelled"
    assert all(s["status"] == "pending" for s in status["steps"])


async def resumes_started_of(knm: Any, task_id: str) -> int:
    """Tasks that resume ``task_id``, however they were started."""
    return await knm.pool.fetchval(
        "SELECT count(*) FROM tasks WHERE request->>'resumed_from' = $1", task_id
    )


async def resume_of(client: ApiClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    listed = await client.get("/windows/resumes?page_size=100", headers=headers)
    found = {r["task_id"]: r for r in assert_envelope(listed, 200)["data"]["resumes"]}
    return found[task_id]


async def until_window_closed(schedule: Schedule) -> None:
    """So the roll starts at the next opening (it waits for it), with the whole window ahead."""
    opening = schedule.opening_at(datetime.now(UTC))
    if opening is not None:
        await asyncio.sleep((opening.end - datetime.now(UTC)).total_seconds() + 0.2)


@pytest.mark.timeout(420)
async def test_a_roll_stops_at_the_window_end_after_its_batch_and_resumes_at_the_next_opening(
    knm_client: ApiClient, knm_app: Any, admin_headers: dict[str, str]
) -> None:
    await make_cluster(knm_client, admin_headers, "win-roll")
    await make_window(knm_client, admin_headers, "minutely", ["win-roll"], **EVERY_MINUTE)
    wf = await make_workflow(
        knm_client, admin_headers, "win-rolling", sleep=8, strategy={"mode": "rolling"}
    )
    # Someone hears of every pause (a receiver nothing listens on: the outbox keeps it).
    subscription = await knm_client.post(
        "/notifications/subscriptions",
        json={
            "name": "pauses", "events": ["roll.paused"], "clusters": ["win-roll"],
            "target": {"type": "webhook", "url": "http://127.0.0.1:9/pauses"},
        },
        headers=admin_headers,
    )  # fmt: skip
    subscription_id = assert_envelope(subscription, 201)["data"]["id"]
    await until_window_closed(Schedule(**EVERY_MINUTE))
    kept = ["n1", "n2", "n3"]
    dropped = ["n4", "n5", "n6"]
    first = assert_envelope(
        await execute(
            knm_client, admin_headers, wf, "win-roll", target_nodes=kept, wait_for_window=True
        ),
        200,
    )["data"]["task_id"]
    other = assert_envelope(
        await execute(
            knm_client, admin_headers, wf, "win-roll", target_nodes=dropped, wait_for_window=True
        ),
        200,
    )["data"]["task_id"]
    # The other roll's resume is cancelled as soon as it is scheduled.
    stopped_other = await wait_for_task(knm_client, admin_headers, other, deadline=150)
    assert stopped_other["status"] == "failed" and stopped_other["error"] == "window_closed"
    cancel = f"/windows/resumes/{other}/cancel"
    assert_envelope(await knm_client.post(cancel, headers=admin_headers), 200)

    chain, task_id = [], first
    for _ in range(4):
        status = await wait_for_task(knm_client, admin_headers, task_id, deadline=150)
        chain.append(status)
        if status["status"] == "completed":
            break
        # Stopped at the window's end: failed, with the contract's statuses only.
        assert status["status"] == "failed" and status["error"] == "window_closed", status
        results = {r["node"]: r for r in status["results"]}
        reasons = {r.get("reason") for r in results.values() if r["status"] == "failed"}
        assert reasons == {"window_closed"}, results
        assert any(r["status"] == "success" for r in results.values()) or len(chain) > 1
        for batch in {s["batch"] for s in status["steps"] if s["status"] != "pending"}:
            # Every batch that started finished, its finalizer included.
            steps = {s["id"]: s for s in status["steps"] if s["batch"] == batch}
            assert steps["work"]["status"] == "completed", steps
            assert steps["give_back"]["status"] == "completed", steps
        pending = await resume_of(knm_client, admin_headers, task_id)
        assert pending["windows"] == ["minutely"]

        async def resumed(task_id: str = task_id) -> bool:
            found = await resume_of(knm_client, admin_headers, task_id)
            return found["state"] == "started"

        await eventually(resumed, deadline=90)
        started = await resume_of(knm_client, admin_headers, task_id)
        task_id = started["resume_task_id"]
        again = (await knm_client.get(f"/tasks/{task_id}", headers=admin_headers)).json()["data"]
        assert again["resumed_from"] == chain[-1]["task_id"]
        assert again["username"] == "admin"
    assert chain[-1]["status"] == "completed", chain[-1]
    assert len(chain) >= 2
    # Each node was done once across the chain: the resume skipped the finished batches.
    done = [r["node"] for s in chain for r in s["results"] if r["status"] == "success"]
    assert sorted(set(done)) == kept
    # The cancelled resume never started, though its window opened since.
    cancelled = await resume_of(knm_client, admin_headers, other)
    assert cancelled["state"] == "cancelled" and cancelled["resume_task_id"] is None
    assert await knm_client.on_app(resumes_started_of, knm_app.state["knm"], other) == 0
    listed = await knm_client.get(
        f"/notifications/subscriptions/{subscription_id}/deliveries?page_size=100",
        headers=admin_headers,
    )
    paused = {
        d["payload"]["data"]["task_id"]: d["payload"]["data"]
        for d in assert_envelope(listed, 200)["data"]["deliveries"]
        if d["event"] == "roll.paused"
    }
    for stopped in [*(s["task_id"] for s in chain[:-1]), other]:
        assert paused[stopped]["windows"] == ["minutely"]
        assert paused[stopped]["cluster_name"] == "win-roll"
        assert paused[stopped]["resume_at"].endswith("Z")
    assert chain[-1]["task_id"] not in paused


async def test_a_due_resume_starts_exactly_once_however_many_loops_reach_it(
    knm_client: ApiClient, knm_app: Any, admin_headers: dict[str, str]
) -> None:
    knm = knm_app.state["knm"]
    await make_cluster(knm_client, admin_headers, "win-once")
    # Open all the time (each opening outlasts the next fire), so a due resume may start.
    always = await make_window(
        knm_client, admin_headers, "always", ["win-once"], cron="* * * * *",
        timezone="UTC", duration=600,
    )  # fmt: skip
    steps = [{"id": "work", "type": "test", "fail_nodes": ["n1"], "reboots": True}]
    body = {"name": "win-once", "definition": {"steps": steps}}
    wf = assert_envelope(
        await knm_client.post("/automation/workflows", json=body, headers=admin_headers), 201
    )["data"]["id"]
    original = assert_envelope(
        await execute(knm_client, admin_headers, wf, "win-once", target_nodes=["n1"]), 200
    )["data"]["task_id"]
    assert (await wait_for_task(knm_client, admin_headers, original))["status"] == "failed"

    async def due_now() -> None:
        from knm.core.windows.check import by_names

        required = await by_names(knm, [always["name"]])
        await resumes.schedule(
            knm.pool, original, required, datetime.now(UTC) - timedelta(seconds=1)
        )

    async def loops() -> list[list[str]]:
        # Four loops at once, besides the app's own.
        return list(await asyncio.gather(*(resumes.start_due(knm) for _ in range(4))))

    await knm_client.on_app(due_now)
    started = [t for found in await knm_client.on_app(loops) for t in found]
    assert len(started) <= 1

    async def recorded() -> bool:
        return (await resume_of(knm_client, admin_headers, original))["state"] == "started"

    await eventually(recorded)
    resume_id = (await resume_of(knm_client, admin_headers, original))["resume_task_id"]
    assert started in ([], [resume_id])

    assert await knm_client.on_app(resumes_started_of, knm, original) == 1

    # A process that died after starting the resume but before marking its row: the next
    # claimer gets the same task (the start's idempotency key), not a second one.
    async def forget() -> None:
        await knm.pool.execute(
            "UPDATE window_resumes SET state = 'pending', resume_task_id = NULL WHERE task_id = $1",
            original,
        )

    await knm_client.on_app(forget)
    await eventually(recorded)
    assert (await resume_of(knm_client, admin_headers, original))["resume_task_id"] == resume_id
    assert await knm_client.on_app(resumes_started_of, knm, original) == 1


@pytest.mark.timeout(180)
async def test_a_due_resume_starts_once_across_three_knm_processes(
    knm_client: ApiClient,
    knm_app: Any,
    admin_headers: dict[str, str],
    knm_process: Callable[..., Any],
) -> None:
    knm = knm_app.state["knm"]
    for _ in range(2):
        knm_process("worker", KNM_PLUGINS=TEST_EXECUTOR)
    await make_cluster(knm_client, admin_headers, "win-procs")
    always = await make_window(
        knm_client, admin_headers, "always-procs", ["win-procs"], cron="* * * * *",
        timezone="UTC", duration=600,
    )  # fmt: skip
    steps = [{"id": "work", "type": "test", "fail_nodes": ["n1"], "reboots": True}]
    body = {"name": "win-procs", "definition": {"steps": steps}}
    wf = assert_envelope(
        await knm_client.post("/automation/workflows", json=body, headers=admin_headers), 201
    )["data"]["id"]
    originals = []
    for _ in range(3):
        started = await execute(knm_client, admin_headers, wf, "win-procs", target_nodes=["n1"])
        originals.append(assert_envelope(started, 200)["data"]["task_id"])
    for task_id in originals:
        assert (await wait_for_task(knm_client, admin_headers, task_id))["status"] == "failed"

    async def due_soon() -> None:
        from knm.core.windows.check import by_names

        required = await by_names(knm, [always["name"]])
        # Due in a moment, so every process's loop is looking when it comes.
        due = datetime.now(UTC) + timedelta(seconds=2)
        for task_id in originals:
            await resumes.schedule(knm.pool, task_id, required, due)

    await knm_client.on_app(due_soon)

    async def all_started() -> bool:
        rows = [await resume_of(knm_client, admin_headers, t) for t in originals]
        return all(row["state"] == "started" for row in rows)

    await eventually(all_started, deadline=60)
    for task_id in originals:
        assert await knm_client.on_app(resumes_started_of, knm, task_id) == 1


async def test_resuming_a_stopped_roll_by_hand_takes_the_place_of_its_automatic_resume(
    knm_client: ApiClient, knm_app: Any, admin_headers: dict[str, str]
) -> None:
    knm = knm_app.state["knm"]
    await make_cluster(knm_client, admin_headers, "win-hand")
    await make_window(knm_client, admin_headers, "hand-leap-night", ["win-hand"], **FAR_OFF)
    steps = [{"id": "work", "type": "test", "fail_nodes": ["n1"]}]
    body = {"name": "win-hand", "definition": {"steps": steps}}
    wf = assert_envelope(
        await knm_client.post("/automation/workflows", json=body, headers=admin_headers), 201
    )["data"]["id"]
    original = assert_envelope(
        await execute(knm_client, admin_headers, wf, "win-hand", target_nodes=["n1"]), 200
    )["data"]["task_id"]
    assert (await wait_for_task(knm_client, admin_headers, original))["status"] == "failed"

    async def pending() -> None:
        from knm.core.windows.check import by_names

        required = await by_names(knm, ["hand-leap-night"])
        await resumes.schedule(knm.pool, original, required, datetime.now(UTC) + timedelta(days=9))

    await knm_client.on_app(pending)
    resumed = await knm_client.post(
        f"/automation/workflows/resume/{original}", json={}, headers=admin_headers
    )
    by_hand = assert_envelope(resumed, 200)["data"]["task_id"]
    row = await resume_of(knm_client, admin_headers, original)
    assert row["state"] == "started" and row["resume_task_id"] == by_hand
    assert (await wait_for_task(knm_client, admin_headers, by_hand))["resumed_from"] == original
