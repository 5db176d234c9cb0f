"""Firing: one task per fire time, as the owner as of now; refusals, limits and misfires are
recorded on the run, and the schedule stays enabled."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from knm.core.db import connect_one
from knm.core.errors import Invalid
from knm.core.schedules import firing, store
from knm.core.schedules.firing import MISFIRE_GRACE, fire_one
from knm.core.tasks.retention import prune
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import wait_for_task

DEADLINE = 60.0


def body(name: str, **fields: Any) -> dict[str, Any]:
    """A test-executor schedule that fires once a year unless a test makes it due."""
    request = {"cluster_name": "lab", "target_nodes": ["n1"], **fields.pop("request", {})}
    return {"name": name, "kind": "test", "request": request, "cron": "0 3 1 1 *"} | fields


async def create(client: ApiClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/schedules", json=body(**fields), headers=headers)
    return assert_envelope(response, 201)["data"]


async def make_due(pool: asyncpg.Pool, schedule_id: int, sql_time: str = "now()") -> None:
    """Move the schedule's next fire time (an SQL expression), and tell the firing loop."""
    await pool.execute(f"UPDATE schedules SET next_fire_at = {sql_time} WHERE id = $1", schedule_id)
    await pool.execute("SELECT pg_notify('knm_schedules', $1)", str(schedule_id))


async def runs_until(
    pool: asyncpg.Pool, schedule_id: int, enough: Callable[[list[asyncpg.Record]], bool]
) -> list[asyncpg.Record]:
    end = time.monotonic() + DEADLINE
    while True:
        rows = await pool.fetch(
            "SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY fire_time", schedule_id
        )
        if enough(rows):
            return rows
        assert time.monotonic() < end, f"runs never got there: {[dict(r) for r in rows]}"
        await asyncio.sleep(0.1)


async def tasks_of(pool: asyncpg.Pool, runs: list[asyncpg.Record]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM tasks WHERE task_id = ANY($1::text[])", [r["task_id"] for r in runs]
    )


async def test_an_interval_schedule_starts_one_task_per_fire_time_as_its_owner(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    data = await create(
        knm_client, operator_headers, name="every-second", cron=None, interval_seconds=1,
        max_concurrent_runs=50, request={"echo": "hi {node}"},
    )  # fmt: skip
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 3)
    await knm_client.post(f"/schedules/{data['id']}/pause", headers=operator_headers)
    runs = await knm_pool.fetch(
        "SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY fire_time", data["id"]
    )
    assert {r["status"] for r in runs} == {"started"}, [dict(r) for r in runs]
    times = [r["fire_time"] for r in runs]
    # Consecutive whole intervals from the schedule's creation: none lost, none twice.
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(times))
    tasks = await tasks_of(knm_pool, runs)
    assert len(tasks) == len(runs) == len({t["task_id"] for t in tasks})
    assert {t["username"] for t in tasks} == {"otto"}
    done = await wait_for_task(knm_client, operator_headers, runs[0]["task_id"])
    assert done["status"] == "completed"
    listed = assert_envelope(
        await knm_client.get(f"/schedules/{data['id']}/runs?page_size=2", headers=operator_headers),
        200,
    )["data"]
    assert listed["total"] == len(runs) and len(listed["runs"]) == 2
    assert listed["runs"][0]["fire_time"] > listed["runs"][1]["fire_time"]
    assert listed["runs"][0]["task_id"].startswith("test")


async def test_fires_racing_in_one_process_make_one_task(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool, knm_app: Any
) -> None:
    data = await create(knm_client, operator_headers, name="raced")
    knm = knm_app.state["knm"]

    async def race() -> list[bool]:
        await make_due(knm.pool, data["id"])
        return await asyncio.gather(*(fire_one(knm) for _ in range(8)))

    await knm_client.on_app(race)
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    assert len(runs) == 1 and runs[0]["status"] == "started"
    assert len(await tasks_of(knm_pool, runs)) == 1


async def test_a_fire_time_recorded_before_is_never_fired_again(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    data = await create(knm_client, operator_headers, name="recorded-before")
    fire = await knm_pool.fetchval("SELECT date_trunc('second', now())")
    await knm_pool.execute(
        "INSERT INTO schedule_runs (schedule_id, fire_time, status, reason, settled) "
        "VALUES ($1, $2, 'skipped', 'recorded by hand', true)",
        data["id"],
        fire,
    )
    await make_due(knm_pool, data["id"], f"'{fire.isoformat()}'::timestamptz")
    end = time.monotonic() + DEADLINE
    while await knm_pool.fetchval("SELECT next_fire_at <= now() FROM schedules WHERE id = $1",
                                  data["id"]):  # fmt: skip
        assert time.monotonic() < end
        await asyncio.sleep(0.1)
    runs = await knm_pool.fetch("SELECT * FROM schedule_runs WHERE schedule_id = $1", data["id"])
    assert [(r["status"], r["reason"], r["task_id"]) for r in runs] == [
        ("skipped", "recorded by hand", None)
    ]


async def test_a_fire_whose_owner_is_disabled_fails_with_the_reason_and_stays_enabled(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    headers = await knm_client.create_user(admin_headers, "dora", "operator")
    data = await create(knm_client, headers, name="owner-goes")
    user_id = data["owner_id"]
    response = await knm_client.put(
        f"/users/{user_id}", json={"disabled": True}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    await make_due(knm_pool, data["id"])
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    assert runs[0]["status"] == "failed" and runs[0]["task_id"] is None
    assert runs[0]["reason"] == "owner 'dora' is disabled"
    shown = await knm_client.get(f"/schedules/{data['id']}", headers=admin_headers)
    assert assert_envelope(shown, 200)["data"]["enabled"] is True


async def test_a_fire_that_starts_no_task_queues_a_schedule_misfired_notification(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    subscription = {
        "name": "misfires",
        "events": ["schedule.misfired"],
        "clusters": ["lab"],
        # Nothing listens there: the row stays queued, which is what this test reads.
        "target": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"},
    }
    response = await knm_client.post(
        "/notifications/subscriptions", json=subscription, headers=admin_headers
    )
    subscription_id = assert_envelope(response, 201)["data"]["id"]
    headers = await knm_client.create_user(admin_headers, "mona", "operator")
    data = await create(knm_client, headers, name="misfires-once")
    response = await knm_client.put(
        f"/users/{data['owner_id']}", json={"disabled": True}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    await make_due(knm_pool, data["id"])
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    queued = await knm_pool.fetch(
        "SELECT payload FROM notification_outbox WHERE subscription_id = $1", subscription_id
    )
    assert len(queued) == 1
    sent = queued[0]["payload"]
    assert sent["event"] == "schedule.misfired"
    assert {k: sent["data"][k] for k in ("schedule_id", "schedule", "status", "reason")} == {
        "schedule_id": data["id"],
        "schedule": "misfires-once",
        "status": "failed",
        "reason": runs[0]["reason"],
    }
    assert sent["data"]["cluster_name"] == "lab"
    await knm_client.delete(
        f"/notifications/subscriptions/{subscription_id}", headers=admin_headers
    )


async def test_a_fire_whose_owner_became_a_viewer_fails_with_the_reason(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    headers = await knm_client.create_user(admin_headers, "demi", "operator")
    data = await create(knm_client, headers, name="owner-demoted")
    await knm_client.put(f"/users/{data['owner_id']}", json={"role": "viewer"},
                         headers=admin_headers)  # fmt: skip
    await make_due(knm_pool, data["id"])
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    assert runs[0]["status"] == "failed"
    assert "role viewer" in runs[0]["reason"]


async def test_a_fire_whose_credential_was_deleted_fails_with_the_reason(
    knm_client: ApiClient, admin_headers: dict[str, str], operator_headers: dict[str, str],
    knm_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    credential = {"name": "short-lived", "username": "ops", "auth_type": "password",
                  "password": "pw-123456"}  # fmt: skip
    cid = assert_envelope(
        await knm_client.post("/credentials", json=credential, headers=admin_headers), 201
    )["data"]["id"]
    data = await create(
        knm_client, operator_headers, name="cred-goes", request={"credential_id": cid}
    )
    await knm_client.delete(f"/credentials/{cid}", headers=admin_headers)
    await make_due(knm_pool, data["id"])
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    assert runs[0]["status"] == "failed"
    assert runs[0]["reason"] == f"request.credential_id: Credential ID {cid} not found"


async def test_a_fire_while_its_last_task_runs_is_skipped_under_max_concurrent_runs(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    data = await create(
        knm_client, operator_headers, name="one-at-a-time", request={"hang_nodes": ["n1"]}
    )
    # Three distinct fire times, in order, however coarse the clock.
    await make_due(knm_pool, data["id"], "now() - interval '3 seconds'")
    first = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    await make_due(knm_pool, data["id"], "now() - interval '2 seconds'")
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 2)
    assert [r["status"] for r in runs] == ["started", "skipped"]
    assert (
        runs[1]["reason"] == "1 task(s) of this schedule still unfinished (max_concurrent_runs 1)"
    )
    task_id = first[0]["task_id"]
    await knm_client.post(f"/automation/test/cancel/{task_id}", headers=operator_headers)
    await wait_for_task(knm_client, operator_headers, task_id)
    await make_due(knm_pool, data["id"], "now() - interval '1 second'")
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 3)
    assert runs[2]["status"] == "started"
    await knm_client.post(f"/automation/test/cancel/{runs[2]['task_id']}", headers=operator_headers)


@pytest.mark.parametrize("policy", ["skip", "run_once"])
async def test_fire_times_missed_during_downtime_follow_the_misfire_policy(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool, policy: str
) -> None:
    data = await create(
        knm_client, operator_headers, name=f"missed-{policy}", cron="0 * * * *",
        timezone="UTC", misfire_policy=policy,
    )  # fmt: skip
    # Five hours without a knm process: the hourly fire times in between were missed.
    await make_due(knm_pool, data["id"], "date_trunc('hour', now()) - interval '5 hours'")
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    await asyncio.sleep(0.5)  # nothing more comes of it
    runs = await knm_pool.fetch(
        "SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY fire_time", data["id"]
    )
    now = await knm_pool.fetchval("SELECT now()")
    late = [r for r in runs if (now - r["fire_time"]).total_seconds() > MISFIRE_GRACE + 5]
    assert len(late) == 1, [dict(r) for r in runs]
    missed = late[0]
    if policy == "skip":
        assert missed["status"] == "skipped" and missed["task_id"] is None
        assert missed["reason"].startswith("misfire: ")
        assert missed["reason"].endswith("(misfire_policy skip)")
    else:
        assert missed["status"] == "started" and missed["task_id"] is not None
        assert missed["reason"].startswith("catch-up run for ")
        assert len(await tasks_of(knm_pool, [missed])) == 1
    next_fire = await knm_pool.fetchval(
        "SELECT next_fire_at FROM schedules WHERE id = $1", data["id"]
    )
    assert next_fire > now


async def test_a_fire_whose_process_dies_before_its_commit_is_made_again_once(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool, knm_app: Any
) -> None:
    data = await create(knm_client, operator_headers, name="dies-mid-fire")
    knm = knm_app.state["knm"]

    async def die_mid_fire() -> tuple[str, Any]:
        # This process's loop is held off, so the fire below is the one that claims it.
        await knm.firing.stop()
        try:
            await make_due(knm.pool, data["id"], "now() - interval '1 second'")
            conn = await knm.connect_one()
            await conn.execute("BEGIN")
            row = await store.claim_due(conn)
            assert row is not None and row.id == data["id"]
            started = await firing._fire_batch(
                knm, conn, [row], await conn.fetchval("SELECT now()")
            )
            assert len(started) == 1
            # The process dies: run row, task and audit entry were never committed.
            await knm.pool.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            conn.terminate()
            return started[0][0], row.next_fire_at
        finally:
            await knm.firing.start()

    lost_task, fire_time = await knm_client.on_app(die_mid_fire)
    await knm_pool.execute("SELECT pg_notify('knm_schedules', '')")
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    await asyncio.sleep(0.5)
    runs = await knm_pool.fetch("SELECT * FROM schedule_runs WHERE schedule_id = $1", data["id"])
    assert [(r["fire_time"], r["status"]) for r in runs] == [(fire_time, "started")]
    assert runs[0]["task_id"] != lost_task
    assert await knm_pool.fetchval("SELECT count(*) FROM tasks WHERE task_id = $1", lost_task) == 0
    assert len(await tasks_of(knm_pool, runs)) == 1


async def test_an_executor_that_breaks_at_fire_time_fails_that_fire_only(
    knm_client: ApiClient,
    operator_headers: dict[str, str],
    knm_pool: asyncpg.Pool,
    knm_app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = await create(knm_client, operator_headers, name="breaks")
    fine = await create(knm_client, operator_headers, name="after-the-broken-one")
    executor = knm_app.state["knm"].executors["test"]
    real_prepare = executor.prepare

    async def prepare(knm: Any, request: Any, principal: Any) -> Any:
        if request.target_nodes == ["boom"]:
            raise RuntimeError("boom")
        return await real_prepare(knm, request, principal)

    monkeypatch.setattr(executor, "prepare", prepare)
    await knm_pool.execute(
        'UPDATE schedules SET request = request || \'{"target_nodes": ["boom"]}\', '
        "key_id = NULL, nonce = NULL, ciphertext = NULL WHERE id = $1",
        broken["id"],
    )
    await make_due(knm_pool, broken["id"], "now() - interval '2 seconds'")
    await make_due(knm_pool, fine["id"], "now() - interval '1 second'")
    failed = await runs_until(knm_pool, broken["id"], lambda rows: len(rows) >= 1)
    assert failed[0]["status"] == "failed"
    assert failed[0]["reason"] == "internal error: RuntimeError: boom"
    started = await runs_until(knm_pool, fine["id"], lambda rows: len(rows) >= 1)
    assert started[0]["status"] == "started"


async def test_a_secret_in_the_stored_request_is_sealed_shown_blank_and_fired_whole(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_pool: asyncpg.Pool
) -> None:
    data = await create(
        knm_client, operator_headers, name="with-secret",
        request={"secret": "hunter2-sealed", "echo": "x{secret}x"},
    )  # fmt: skip
    assert data["request"]["secret"] == ""
    row = await knm_pool.fetchrow("SELECT * FROM schedules WHERE id = $1", data["id"])
    assert "hunter2-sealed" not in str(dict(row)["request"]) and row["ciphertext"] is not None
    assert b"hunter2-sealed" not in row["ciphertext"]
    await make_due(knm_pool, data["id"])
    runs = await runs_until(knm_pool, data["id"], lambda rows: len(rows) >= 1)
    task = await wait_for_task(knm_client, operator_headers, runs[0]["task_id"])
    # The task got the secret (the executor printed it, and its output masks it).
    assert task["results"][0]["stdout"] == "x********x\n"


async def test_retention_prunes_settled_runs_older_than_the_tasks_kept(
    knm_client: ApiClient, operator_headers: dict[str, str], knm_database_url: str
) -> None:
    data = await create(knm_client, operator_headers, name="pruned-runs")
    conn = await connect_one(knm_database_url)
    try:
        await conn.execute(
            "INSERT INTO schedule_runs (schedule_id, fire_time, status, reason, settled, task_id) "
            "VALUES ($1, now() - interval '100 days', 'skipped', 'old', true, NULL), "
            "($1, now() - interval '100 days' + interval '1 second', 'started', '', false, "
            "'test-exec-1-unfinished'), ($1, now() - interval '1 day', 'failed', 'new', true, "
            "NULL)",
            data["id"],
        )
        report = await prune(conn, task_days=90, event_days=30, output_max_bytes=1 << 40)
        assert report.schedule_runs == 1
        left = await conn.fetch(
            "SELECT reason, settled FROM schedule_runs WHERE schedule_id = $1 ORDER BY fire_time",
            data["id"],
        )
        # The old run whose task is not seen finished yet stays, as does the recent one.
        assert [(r["reason"], r["settled"]) for r in left] == [("", False), ("new", True)]
    finally:
        await conn.close()


async def test_a_batch_with_refused_fires_among_good_ones_starts_the_good_ones(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    operator_headers: dict[str, str],
    knm_pool: asyncpg.Pool,
    knm_app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = [await create(knm_client, operator_headers, name=f"batch-good-{i}") for i in range(4)]
    refused = await create(
        knm_client, operator_headers, name="batch-refused", request={"echo": "refuse"}
    )
    bert = await knm_client.create_user(admin_headers, "bert", "operator")
    gone = await create(knm_client, bert, name="batch-owner-gone")
    response = await knm_client.put(
        f"/users/{gone['owner_id']}", json={"disabled": True}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    knm = knm_app.state["knm"]
    executor = knm.executors["test"]
    real_prepare = executor.prepare

    async def prepare(knm: Any, request: Any, principal: Any) -> Any:
        # A rule that changed since the schedule was saved: its request no longer holds.
        if request.echo == "refuse":
            raise Invalid("echo: refused here")
        return await real_prepare(knm, request, principal)

    monkeypatch.setattr(executor, "prepare", prepare)
    ids = [s["id"] for s in [*good[:2], refused, gone, *good[2:]]]

    async def one_batch() -> int:
        await knm.firing.stop()  # this test's batch is the one that claims them
        try:
            # Longer overdue than anything else: the batch's first claims.
            await knm.pool.execute(
                "UPDATE schedules SET next_fire_at = date_trunc('second', now()) "
                "- interval '30 seconds' WHERE id = ANY($1)",
                ids,
            )
            return await firing.fire_batch(knm, limit=len(ids))
        finally:
            await knm.firing.start()

    assert await knm_client.on_app(one_batch) == len(ids)
    runs = await knm_pool.fetch("SELECT * FROM schedule_runs WHERE schedule_id = ANY($1)", ids)
    by_schedule = {r["schedule_id"]: r for r in runs}
    assert len(runs) == len(by_schedule) == len(ids)
    assert by_schedule[refused["id"]]["status"] == "failed"
    assert by_schedule[refused["id"]]["reason"] == "request.echo: refused here"
    assert by_schedule[gone["id"]]["status"] == "failed"
    assert by_schedule[gone["id"]]["reason"] == "owner 'bert' is disabled"
    started = [by_schedule[s["id"]] for s in good]
    assert {r["status"] for r in started} == {"started"}
    tasks = await tasks_of(knm_pool, started)
    assert len(tasks) == len(good) and {t["username"] for t in tasks} == {"otto"}
    audited = await knm_pool.fetch(
        "SELECT target, username FROM audit_log WHERE action = 'task.start' "
        "AND client = 'schedule' AND target = ANY($1::text[])",
        [r["task_id"] for r in started],
    )
    assert sorted(a["target"] for a in audited) == sorted(r["task_id"] for r in started)
    for task in tasks:
        assert (await wait_for_task(knm_client, operator_headers, task["task_id"]))[
            "status"
        ] == "completed"


async def test_a_batch_the_database_refuses_is_fired_again_one_schedule_at_a_time(
    knm_client: ApiClient,
    operator_headers: dict[str, str],
    knm_pool: asyncpg.Pool,
    knm_app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fine = [await create(knm_client, operator_headers, name=f"beside-poison-{i}") for i in range(3)]
    poison = await create(knm_client, operator_headers, name="poison", request={"echo": "poison"})
    knm = knm_app.state["knm"]
    real_new_task = firing.service.new_task

    def new_task(knm: Any, executor: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        task = real_new_task(knm, executor, request, *args, **kwargs)
        if request.echo == "poison":
            # PostgreSQL's text holds no NUL: the batch's insert fails, its transaction with it.
            task.cluster_name = "lab\x00"
        return task

    monkeypatch.setattr(firing.service, "new_task", new_task)
    ids = [s["id"] for s in [fine[0], poison, *fine[1:]]]

    async def one_batch() -> tuple[Exception | None, Any]:
        await knm.firing.stop()
        try:
            await knm.pool.execute(
                "UPDATE schedules SET next_fire_at = date_trunc('second', now()) "
                "- interval '30 seconds' WHERE id = ANY($1)",
                ids,
            )
            try:
                await firing.fire_batch(knm, limit=len(ids))
            except asyncpg.PostgresError as exc:
                raised: Exception | None = exc
            else:
                raised = None
            # Left due: paused, so the restarted loop does not try it again.
            due = await knm.pool.fetchval(
                "UPDATE schedules SET enabled = false WHERE id = $1 "
                "RETURNING next_fire_at <= now()",
                poison["id"],
            )
            return raised, due
        finally:
            await knm.firing.start()

    raised, due = await knm_client.on_app(one_batch)
    # The loop hears of the failure (and waits before it looks again) …
    assert isinstance(raised, asyncpg.PostgresError)
    assert due is True
    # … and the batch's other schedules fired once each, in transactions of their own.
    runs = await knm_pool.fetch("SELECT * FROM schedule_runs WHERE schedule_id = ANY($1)", ids)
    assert sorted(r["schedule_id"] for r in runs) == sorted(s["id"] for s in fine)
    assert {r["status"] for r in runs} == {"started"}
    assert len(await tasks_of(knm_pool, runs)) == len(fine)


async def test_overlapping_batches_never_fire_a_schedule_twice(
    knm_client: ApiClient,
    operator_headers: dict[str, str],
    knm_pool: asyncpg.Pool,
    knm_app: Any,
    knm_database_url: str,
) -> None:
    schedules = [await create(knm_client, operator_headers, name=f"overlap-{i}") for i in range(12)]
    ids = [s["id"] for s in schedules]
    knm = knm_app.state["knm"]

    async def make_due_now() -> None:
        await knm.pool.execute(
            "UPDATE schedules SET next_fire_at = date_trunc('second', now()) "
            "- interval '30 seconds' WHERE id = ANY($1)",
            ids,
        )

    async def claims_and_race() -> tuple[list[int], list[int], list[int]]:
        await knm.firing.stop()
        try:
            await make_due_now()
            # Two claimers at once: the second skips what the first holds.
            first, second = await connect_one(knm_database_url), await connect_one(knm_database_url)
            try:
                async with first.transaction(), second.transaction():
                    a, _ = await store.claim_due_batch(first, 8, ids)
                    b, _ = await store.claim_due_batch(second, 8, ids)
            finally:
                await first.close()
                await second.close()
            # Many lanes, overlapping batches, the same schedules: each fires once.
            fired = await asyncio.gather(*(firing.fire_batch(knm, limit=5) for _ in range(6)))
            return [r.id for r in a], [r.id for r in b], fired
        finally:
            await knm.firing.start()

    a, b, fired = await knm_client.on_app(claims_and_race)
    assert len(a) == 8 and len(b) == 4 and not set(a) & set(b) and set(a) | set(b) == set(ids)
    assert sum(fired) >= len(ids)
    runs = await knm_pool.fetch("SELECT * FROM schedule_runs WHERE schedule_id = ANY($1)", ids)
    assert sorted(r["schedule_id"] for r in runs) == sorted(ids)
    assert {r["status"] for r in runs} == {"started"}
    tasks = await tasks_of(knm_pool, runs)
    assert len(tasks) == len(ids) == len({t["task_id"] for t in tasks})
