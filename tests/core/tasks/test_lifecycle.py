"""Task lifecycle: ids, states, node results, counts, and finished tasks staying finished."""

from __future__ import annotations

import re
import uuid

import asyncpg
import msgspec
import pytest

from knm.core.clusters.provider import Node
from knm.core.db import init_connection
from knm.core.tasks.store import NewTask, insert_task
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import eventually, start_task, wait_for_task


async def start(client: ApiClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    return await start_task(
        client, headers, **{"cluster_name": "lab", "target_nodes": ["n1", "n2", "n3"], **body}
    )


wait_for = wait_for_task


async def test_execute_answers_at_once_with_a_running_task_and_a_spec_shaped_id(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers, sleep=0.2)
    assert re.fullmatch(r"test-exec-\d+-[a-z0-9]{6}", data["task_id"])
    assert data["status"] == "running"
    assert data["target_nodes"] == ["n1", "n2", "n3"]
    assert data["start_time"].endswith("Z")
    await wait_for(knm_client, admin_headers, data["task_id"])


async def test_a_task_where_every_node_succeeds_is_completed(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers, echo="hello {node}")
    status = await wait_for(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "completed"
    assert (status["success_count"], status["failed_count"]) == (3, 0)
    assert [r["node"] for r in status["results"]] == ["n1", "n2", "n3"]
    assert all(r["status"] == "success" and r["exit_code"] == 0 for r in status["results"])
    assert status["results"][0]["stdout"] == "hello n1\n"
    assert isinstance(status["duration"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", status["end_time"])


async def test_one_failed_node_fails_the_task_and_says_why(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers, fail_nodes=["n2"])
    status = await wait_for(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "failed"
    assert status["success_count"] + status["failed_count"] == 3
    failed = next(r for r in status["results"] if r["node"] == "n2")
    assert (failed["status"], failed["reason"], failed["exit_code"]) == ("failed", "exit_code", 1)
    assert failed["stderr"] == "failing as asked\n"


async def test_a_status_url_of_another_kind_is_404(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start(knm_client, admin_headers)
    await wait_for(knm_client, admin_headers, data["task_id"])
    other = data["task_id"].replace("test-exec", "ssh-exec")
    assert_envelope(
        await knm_client.get(f"/automation/test/status/{other}", headers=admin_headers), 404
    )
    assert_envelope(
        await knm_client.get("/automation/test/status/nonsense", headers=admin_headers), 404
    )
    ok = await knm_client.get(f"/automation/test/status/{data['task_id']}", headers=admin_headers)
    assert assert_envelope(ok, 200)["data"]["task_id"] == data["task_id"]


async def test_a_finished_task_cannot_change_even_through_sql(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    data = await start(knm_client, admin_headers)
    await wait_for(knm_client, admin_headers, data["task_id"])
    conn = await asyncpg.connect(knm_database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="finished"):
            await conn.execute(
                "UPDATE tasks SET status = 'running' WHERE task_id = $1", data["task_id"]
            )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"timeout": 0}, 422),
        ({"timeout": -1}, 422),
        ({"batch_size": 0}, 422),
        ({"max_failures": -1}, 422),
        ({"timeout": "10"}, 400),
        ({"target_nodes": "n1"}, 400),
        ({"unknown_field": 1}, 400),
    ],
)
async def test_bad_execute_bodies_are_refused_before_any_task_exists(
    knm_client: ApiClient, admin_headers: dict[str, str], body: dict[str, object], status: int
) -> None:
    before = (await knm_client.get("/tasks?kind=test", headers=admin_headers)).json()["data"][
        "total"
    ]
    payload = {"cluster_name": "lab", "target_nodes": ["n1"], **body}
    assert_envelope(
        await knm_client.post("/automation/test/execute", json=payload, headers=admin_headers),
        status,
    )
    after = (await knm_client.get("/tasks?kind=test", headers=admin_headers)).json()["data"][
        "total"
    ]
    assert after == before


async def test_viewers_may_read_but_not_start_tasks(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    viewer = await knm_client.create_user(admin_headers, "viewer1", "viewer")
    response = await knm_client.post(
        "/automation/test/execute",
        json={"cluster_name": "lab", "target_nodes": ["n1"]},
        headers=viewer,
    )
    assert_envelope(response, 403)
    assert_envelope(await knm_client.get("/automation/test/history", headers=viewer), 200)
    for path in ("/automation/test/status/test-exec-1-abcdef", "/tasks/test-exec-1-abcdef"):
        assert_envelope(await knm_client.get(path, headers=viewer), 404)
        assert_envelope(await knm_client.get(path), 401)


async def test_an_executor_whose_switch_is_off_answers_403(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    assert_envelope(
        await knm_client.put(
            "/features/automation/test", json={"enabled": False}, headers=admin_headers
        ),
        200,
    )
    try:
        response = await knm_client.post(
            "/automation/test/execute",
            json={"cluster_name": "lab", "target_nodes": ["n1"]},
            headers=admin_headers,
        )
        body = assert_envelope(response, 403)
        assert body["message"] == "feature disabled" and "test_enabled" in body["error"]
        # The status route checks in its handler, not through a guard: the same answer.
        status = await knm_client.get(
            "/automation/test/status/test-exec-1-abcdef", headers=admin_headers
        )
        assert "test_enabled" in assert_envelope(status, 403)["error"]
    finally:
        await knm_client.put(
            "/features/automation/test", json={"enabled": True}, headers=admin_headers
        )


async def test_the_finished_hook_fires_once_and_a_failing_hook_changes_nothing(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    from knm.core.hookspecs import hookimpl

    seen: list[str] = []

    class Notifier:
        @hookimpl
        def knm_task_finished(self, task: object) -> None:
            seen.append(task.task_id)  # type: ignore[attr-defined]
            raise RuntimeError("webhook down")

    pm = knm_client.http.app.state["knm"].pm  # type: ignore[attr-defined]
    notifier = Notifier()
    pm.register(notifier)
    try:
        data = await start(knm_client, admin_headers)
        status = await wait_for(knm_client, admin_headers, data["task_id"])
        # The hook follows the complete event, which follows the terminal row a poll can see.
        await eventually(lambda: _true(seen))
        # A second call for the first task would come from its end (or a take-over of it); a
        # later task's hook, waited for, is the point to look from, instead of a sleep.
        after = await start(knm_client, admin_headers)
        await wait_for(knm_client, admin_headers, after["task_id"])
        await eventually(lambda: _true(len(seen) > 1))
    finally:
        pm.unregister(notifier)
    assert status["status"] == "completed"
    assert seen == [data["task_id"], after["task_id"]]


async def _true(value: object) -> bool:
    return bool(value)


async def test_tasks_made_in_one_transaction_are_created_when_each_is_written(
    knm_database_url: str,
) -> None:
    # A schedule fires up to 25 tasks in one transaction: each one's created_at is its own.
    tasks = [
        NewTask(
            task_id=f"created-clock-{i}-{uuid.uuid4().hex[:8]}",
            kind="test",
            cluster_name="lab",
            nodes=[Node(name="n1", address="127.0.0.2", port=22, labels={})],
            request={},
            summary={},
            credential_id=None,
            user_id=None,
            username=None,
        )
        for i in range(2)
    ]
    conn = await asyncpg.connect(knm_database_url)
    await init_connection(conn)
    try:
        async with conn.transaction():
            await insert_task(conn, **msgspec.structs.asdict(tasks[0]))
            await conn.execute("SELECT pg_sleep(0.05)")
            await insert_task(conn, **msgspec.structs.asdict(tasks[1]))
            # The API speaks whole seconds: compare in the database, to the microsecond.
            after_start = await conn.fetch(
                "SELECT extract(epoch FROM created_at - now())::float8 AS s FROM tasks "
                "WHERE task_id = ANY($1::text[]) ORDER BY created_at",
                [task.task_id for task in tasks],
            )
            raise Rollback
    except Rollback:
        pass
    finally:
        await conn.close()
    first, second = (row["s"] for row in after_start)
    assert first > 0 and second - first >= 0.05


class Rollback(Exception):
    """Leaves the test's tasks out of the shared database."""
