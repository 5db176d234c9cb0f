"""The workflow engine on the test executor: DAGs, failure rules, approvals, cancel, rolling,
resume — without SSH or Kubernetes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from knm.core.tasks import store
from knm.core.tasks.events import read_events
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import event_of, eventually, wait_for_event, wait_for_task

NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


@pytest.fixture(scope="module", autouse=True)
async def lab(knm_client: ApiClient, admin_headers: dict[str, str]) -> None:
    nodes = [
        {"name": n, "address": f"127.0.0.{i + 2}", "labels": {"rack": "a" if i < 2 else "b"}}
        for i, n in enumerate(NODES)
    ]
    response = await knm_client.post(
        "/clusters", json={"name": "lab", "kind": "static", "nodes": nodes}, headers=admin_headers
    )
    assert_envelope(response, 201)


async def create(
    client: ApiClient,
    headers: dict[str, str],
    name: str,
    steps: list[dict[str, Any]],
    **definition: Any,
) -> int:
    body = {"name": name, "description": "", "definition": {"steps": steps, **definition}}
    response = await client.post("/automation/workflows", json=body, headers=headers)
    return assert_envelope(response, 201)["data"]["id"]


async def run(
    client: ApiClient,
    headers: dict[str, str],
    workflow_id: int,
    nodes: list[str] = NODES,
    **body: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/automation/workflows/execute",
        json={"workflow_id": workflow_id, "cluster_name": "lab", "target_nodes": nodes, **body},
        headers=headers,
    )
    return assert_envelope(response, 200)["data"]


def steps_by_id(status: dict[str, Any], batch: int = 0) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in status["steps"] if s["batch"] == batch}


async def step_events(
    client: ApiClient, headers: dict[str, str], task_id: str
) -> list[tuple[str, str]]:
    events = (await client.get(f"/tasks/{task_id}/events", headers=headers)).json()["data"][
        "entries"
    ]
    return [(e["data"]["step_id"], e["data"]["status"]) for e in events if e["type"] == "step"]


async def test_a_diamond_runs_parallel_branches_and_each_step_is_a_child_task(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "diamond",
        [
            {"id": "a", "type": "test", "echo": "a"},
            {"id": "b", "type": "test", "depends_on": ["a"]},
            {"id": "c", "type": "test", "depends_on": ["a"]},
            {"id": "d", "type": "test", "depends_on": ["b", "c"]},
        ],
    )
    started = await run(knm_client, admin_headers, wf)
    assert started["task_id"].startswith("workflow-exec-")
    assert started["workflow_name"] == "diamond" and started["total_steps"] == 4
    assert started["current_step"] == "a"
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    assert status["status"] == "completed", status
    steps = steps_by_id(status)
    assert [steps[i]["status"] for i in "abcd"] == ["completed"] * 4
    assert [steps[i]["result"] for i in "abcd"] == ["success"] * 4
    assert status["total_steps"] == 4 and status["current_step"] == "d"
    child = await knm_client.get(f"/tasks/{steps['b']['task_id']}", headers=admin_headers)
    assert child.json()["data"]["parent_task_id"] == started["task_id"]
    history = (await knm_client.get("/tasks", headers=admin_headers)).json()["data"]["executions"]
    assert all(e["parent_task_id"] is None for e in history)
    children = (
        await knm_client.get(f"/tasks?parent_task_id={started['task_id']}", headers=admin_headers)
    ).json()
    assert children["data"]["total"] == 4


async def test_parallel_branches_run_at_the_same_time(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    # ``b`` hangs until cancelled: ``c`` completes while ``b`` runs only if they overlap.
    wf = await create(
        knm_client,
        admin_headers,
        "overlap",
        [
            {"id": "a", "type": "test"},
            {"id": "b", "type": "test", "depends_on": ["a"], "hang_nodes": NODES},
            {"id": "c", "type": "test", "depends_on": ["a"]},
        ],
    )
    task_id = (await run(knm_client, admin_headers, wf))["task_id"]
    c_done = event_of("step", step_id="c", status="completed")
    await wait_for_event(knm_client, admin_headers, task_id, c_done)
    order = await step_events(knm_client, admin_headers, task_id)
    assert ("b", "running") in order
    assert not {"completed", "failed"} & {status for step, status in order if step == "b"}
    cancel = f"/automation/workflows/cancel/{task_id}"
    assert_envelope(await knm_client.post(cancel, headers=admin_headers), 200)
    status = await wait_for_task(knm_client, admin_headers, task_id)
    assert steps_by_id(status)["b"]["status"] == "cancelled"


async def test_a_failed_step_skips_its_dependents_and_runs_failure_and_always_steps(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "failing",
        [
            {"id": "work", "type": "test", "fail_nodes": ["n2"]},
            {"id": "next", "type": "test", "depends_on": ["work"]},
            {"id": "alert", "type": "test", "depends_on": ["work"], "when": "on_failure"},
            {"id": "cleanup", "type": "test", "depends_on": ["next"], "when": "always"},
        ],
    )
    status = await wait_for_task(
        knm_client, admin_headers, (await run(knm_client, admin_headers, wf))["task_id"]
    )
    steps = steps_by_id(status)
    assert [steps[i]["status"] for i in ("work", "next", "alert", "cleanup")] == [
        "failed",
        "skipped",
        "completed",
        "completed",
    ]
    assert [steps[i]["result"] for i in ("work", "next", "alert", "cleanup")] == [
        "failed",
        None,
        "success",
        "success",
    ]
    assert status["status"] == "failed"
    results = {r["node"]: r for r in status["results"]}
    # The node's own reason from the step's task, and the step named in the message.
    assert results["n2"]["reason"] == "exit_code"
    assert results["n2"]["message"].startswith("step work: ")


async def test_continue_on_error_lets_dependents_run_and_retries_are_counted(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "tolerant",
        [
            {
                "id": "flaky",
                "type": "test",
                "fail_nodes": ["n1"],
                "continue_on_error": True,
                "retry": {"max_attempts": 2, "delay": 0.1},
            },
            {"id": "after", "type": "test", "depends_on": ["flaky"]},
        ],
    )
    status = await wait_for_task(
        knm_client, admin_headers, (await run(knm_client, admin_headers, wf))["task_id"]
    )
    steps = steps_by_id(status)
    assert steps["flaky"]["attempts"] == 2 and steps["flaky"]["status"] == "failed"
    assert steps["after"]["status"] == "completed"
    assert status["status"] == "completed"


async def test_parameters_and_earlier_results_render_into_steps(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "templated",
        [
            {"id": "first", "type": "test", "echo": "{{ params.greeting }} {node}"},
            {
                "id": "second",
                "type": "test",
                "depends_on": ["first"],
                "echo": "after {{ steps.first.status }} {{ not.ours }}",
            },
        ],
        parameters=[{"name": "greeting", "default": "hello"}],
    )
    started = await run(knm_client, admin_headers, wf, parameters={"greeting": "hi there"})
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    steps = steps_by_id(status)
    first = (
        await knm_client.get(f"/tasks/{steps['first']['task_id']}", headers=admin_headers)
    ).json()["data"]
    assert first["results"][0]["stdout"] == "hi there n1\n"
    second = (
        await knm_client.get(f"/tasks/{steps['second']['task_id']}", headers=admin_headers)
    ).json()["data"]
    assert second["results"][0]["stdout"] == "after success {{ not.ours }}\n"
    bad = await knm_client.post(
        "/automation/workflows/execute",
        json={
            "workflow_id": wf,
            "cluster_name": "lab",
            "target_nodes": NODES,
            "parameters": {"nope": "x"},
        },
        headers=admin_headers,
    )
    error = assert_envelope(bad, 422)["error"]
    assert error == "undeclared parameters: nope (this workflow takes: greeting)"


async def test_a_workflow_declaring_no_parameters_takes_any_and_needs_those_it_uses(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "undeclared parameters",
        [{"id": "say", "type": "test", "echo": "{{ params.word }} {node}"}],
    )
    started = await run(
        knm_client, admin_headers, wf, nodes=["n1"],
        parameters={"word": "hello", "global_param1": "value1"},
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    child = steps_by_id(status)["say"]["task_id"]
    said = (await knm_client.get(f"/tasks/{child}", headers=admin_headers)).json()["data"]
    assert said["results"][0]["stdout"] == "hello n1\n"
    assert status["parameters"] == {"word": "hello", "global_param1": "value1"}
    for parameters, error in [
        ({"global_param1": "value1"}, "missing parameters the steps use: word"),
        ({"word": "x", "bad-name": "y"}, "invalid parameter names: bad-name"),
    ]:
        response = await knm_client.post(
            "/automation/workflows/execute",
            json={"workflow_id": wf, "cluster_name": "lab", "target_nodes": ["n1"],
                  "parameters": parameters},
            headers=admin_headers,
        )  # fmt: skip
        assert error in assert_envelope(response, 422)["error"]


async def test_every_validation_problem_comes_back_in_one_422(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    body = {
        "name": "broken",
        "definition": {
            "steps": [
                {"id": "a", "type": "test", "depends_on": ["c"]},
                {"id": "b", "type": "test", "depends_on": ["a"]},
                {"id": "c", "type": "test", "depends_on": ["b"]},
                {"id": "a", "type": "test"},
                {"id": "d", "type": "teleport"},
                {"id": "e", "type": "test", "depends_on": ["ghost"], "timeout": 0},
                {"id": "f", "type": "test", "sleep": "long"},
                {"id": "g", "type": "test", "echo": "{{ params.undeclared }}"},
            ],
            "parameters": [{"name": "declared"}],
        },
    }
    error = assert_envelope(
        await knm_client.post("/automation/workflows", json=body, headers=admin_headers), 422
    )["error"]
    for expected in (
        "cycle in depends_on: ",
        "'a' is used more than once",
        "unknown type 'teleport'",
        "names no step 'ghost'",
        "timeout must be greater than 0",
        "step f (test)",
        "undeclared parameter 'undeclared'",
    ):
        assert expected in error, (expected, error)
    details = assert_envelope(
        await knm_client.post("/automation/workflows", json=body, headers=admin_headers), 422
    )["details"]
    assert "; ".join(d["message"] for d in details) == error
    fields = {d["message"]: d["field"] for d in details}
    assert fields["step g: uses undeclared parameter 'undeclared'"] == "definition.steps[7]"
    assert any(f == "definition.steps[4]" and "teleport" in m for m, f in fields.items())
    assert any(f == "definition.steps" and m.startswith("cycle") for m, f in fields.items())


async def test_the_list_shows_step_counts(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await create(
        knm_client,
        admin_headers,
        "counted",
        [{"id": "x", "type": "test"}, {"id": "y", "type": "test"}],
    )
    listed = assert_envelope(
        await knm_client.get("/automation/workflows?q=counted", headers=admin_headers), 200
    )
    assert listed["data"]["workflows"][0]["step_count"] == 2


async def test_an_approval_step_waits_for_approve_and_reject_fails_the_workflow(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "gated",
        [
            {"id": "gate", "type": "approval", "message": "go?"},
            {"id": "after", "type": "test", "depends_on": ["gate"]},
        ],
    )
    for decision, expected in (("approve", "completed"), ("reject", "failed")):
        task_id = (await run(knm_client, admin_headers, wf))["task_id"]

        async def waiting(task_id: str = task_id) -> bool:
            data = (
                await knm_client.get(
                    f"/automation/workflows/status/{task_id}", headers=admin_headers
                )
            ).json()["data"]
            return any(s["id"] == "gate" and s["status"] == "running" for s in data["steps"])

        await eventually(waiting)
        wrong = await knm_client.post(
            f"/automation/workflows/{decision}/{task_id}",
            json={"step_id": "after"},
            headers=admin_headers,
        )
        assert_envelope(wrong, 404)
        response = await knm_client.post(
            f"/automation/workflows/{decision}/{task_id}",
            json={"step_id": "gate", "comment": "ok by me"},
            headers=admin_headers,
        )
        assert_envelope(response, 200)
        status = await wait_for_task(knm_client, admin_headers, task_id)
        assert status["status"] == expected
        # Each step event says its step's type: a client tells the approval it may answer.
        events = (await knm_client.get(f"/tasks/{task_id}/events", headers=admin_headers)).json()[
            "data"
        ]["entries"]
        types = {
            e["data"]["step_id"]: e["data"]["step_type"] for e in events if e["type"] == "step"
        }
        assert types["gate"] == "approval"


async def test_cancel_stops_running_steps_and_still_runs_the_finalizer(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "cancellable",
        [
            {"id": "long", "type": "test", "hang_nodes": NODES},
            {"id": "never", "type": "test", "depends_on": ["long"]},
            {
                "id": "finally",
                "type": "test",
                "depends_on": ["never"],
                "when": "always",
                "echo": "cleaned",
            },
        ],
    )
    task_id = (await run(knm_client, admin_headers, wf))["task_id"]

    async def long_running() -> bool:
        data = (await knm_client.get(f"/tasks/{task_id}", headers=admin_headers)).json()["data"]
        return any(
            s["id"] == "long" and s["status"] == "running" and s["task_id"] for s in data["steps"]
        )

    await eventually(long_running)
    assert_envelope(
        await knm_client.post(f"/automation/workflows/cancel/{task_id}", headers=admin_headers), 200
    )
    status = await wait_for_task(knm_client, admin_headers, task_id)
    steps = steps_by_id(status)
    assert status["status"] == "cancelled"
    assert steps["long"]["status"] == "cancelled"
    assert steps["never"]["status"] == "skipped"
    assert steps["finally"]["status"] == "completed"
    assert steps["long"]["result"] == "failed" and steps["finally"]["result"] == "success"


async def test_a_rolling_workflow_stops_at_the_first_failed_batch_leaving_the_rest_untouched(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "rolling",
        [
            {"id": "work", "type": "test", "fail_nodes": ["n2"]},
            {"id": "finalize", "type": "test", "depends_on": ["work"], "when": "always"},
        ],
        strategy={"mode": "rolling", "batch_size": 1, "max_failed_batches": 0},
    )
    task_id = (await run(knm_client, admin_headers, wf))["task_id"]
    status = await wait_for_task(knm_client, admin_headers, task_id)
    results = {r["node"]: r for r in status["results"]}
    assert results["n1"]["status"] == "success"
    assert results["n2"]["reason"] == "exit_code"
    assert results["n3"]["reason"] == "skipped"
    batches = {(s["batch"], s["id"]): s for s in status["steps"]}
    assert batches[(1, "finalize")]["status"] == "completed"
    assert batches[(2, "work")]["status"] == "pending" and batches[(2, "work")]["task_id"] is None
    children = (
        await knm_client.get(f"/tasks?parent_task_id={task_id}", headers=admin_headers)
    ).json()["data"]
    assert all("n3" not in child["target_nodes"] for child in children["executions"])


async def test_resume_starts_a_new_task_that_skips_completed_steps(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "resumable",
        [
            {"id": "done", "type": "test"},
            {"id": "blocked", "type": "approval", "depends_on": ["done"]},
            {"id": "last", "type": "test", "depends_on": ["blocked"]},
        ],
    )
    first = (await run(knm_client, admin_headers, wf))["task_id"]

    async def gated() -> bool:
        data = (await knm_client.get(f"/tasks/{first}", headers=admin_headers)).json()["data"]
        return any(s["id"] == "blocked" and s["status"] == "running" for s in data["steps"])

    await eventually(gated)
    await knm_client.post(
        f"/automation/workflows/reject/{first}", json={"step_id": "blocked"}, headers=admin_headers
    )
    assert (await wait_for_task(knm_client, admin_headers, first))["status"] == "failed"
    resumed = assert_envelope(
        await knm_client.post(f"/automation/workflows/resume/{first}", headers=admin_headers), 200
    )["data"]
    assert resumed["resumed_from"] == first
    second = resumed["task_id"]
    await eventually(lambda: _step_running(knm_client, admin_headers, second, "blocked"))
    await knm_client.post(
        f"/automation/workflows/approve/{second}",
        json={"step_id": "blocked"},
        headers=admin_headers,
    )
    status = await wait_for_task(knm_client, admin_headers, second)
    steps = steps_by_id(status)
    assert status["status"] == "completed"
    assert steps["done"]["outputs"].get("resumed") is True and steps["done"]["task_id"] is None
    assert (steps["done"]["status"], steps["done"]["result"]) == ("completed", "success")


async def _step_running(
    client: ApiClient, headers: dict[str, str], task_id: str, step_id: str
) -> bool:
    data = (await client.get(f"/tasks/{task_id}", headers=headers)).json()["data"]
    await asyncio.sleep(0)
    return any(s["id"] == step_id and s["status"] == "running" for s in data["steps"])


async def test_a_step_type_whose_switch_is_off_makes_execute_403(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(knm_client, admin_headers, "switched", [{"id": "x", "type": "test"}])
    await knm_client.put(
        "/features/automation/test", json={"enabled": False}, headers=admin_headers
    )
    try:
        response = await knm_client.post(
            "/automation/workflows/execute",
            json={"workflow_id": wf, "cluster_name": "lab", "target_nodes": NODES},
            headers=admin_headers,
        )
        assert "test_enabled" in assert_envelope(response, 403)["error"]
    finally:
        await knm_client.put(
            "/features/automation/test", json={"enabled": True}, headers=admin_headers
        )


async def test_a_dangerous_value_rendered_into_a_command_fails_the_step(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    from knm.core.policy import check_command

    # The command hands its parameter to a shell; the policy checks the value as a command too.
    assert not check_command("nohup sh -c 'sleep 2; exec sh -c \"$0\"' x >/dev/null 2>&1 &")
    wf = await create(
        knm_client,
        admin_headers,
        "reboot-ish",
        [{"id": "r", "type": "ssh", "command": 'sh -c "$0" {{ params.cmd }}'}],
        parameters=[{"name": "cmd", "default": "true"}],
    )
    credential = await knm_client.post(
        "/credentials",
        json={"name": "c", "username": "u", "auth_type": "password", "password": "p-123456"},
        headers=admin_headers,
    )
    started = await run(
        knm_client,
        admin_headers,
        wf,
        parameters={"cmd": "rm -rf /"},
        credential_id=assert_envelope(credential, 201)["data"]["id"],
    )
    status = await wait_for_task(knm_client, admin_headers, started["task_id"])
    step = steps_by_id(status)["r"]
    assert step["status"] == "failed" and "dangerous command blocked: rm -rf /" in step["error"]
    assert step["task_id"] is None


async def test_step_targets_narrow_the_nodes_by_name_or_by_selector(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    wf = await create(
        knm_client,
        admin_headers,
        "narrowed",
        [
            {"id": "named", "type": "test", "targets": ["n2"]},
            {"id": "selected", "type": "test", "targets": "rack=a"},
            {"id": "nobody", "type": "test", "targets": ["ghost"]},
        ],
    )
    status = await wait_for_task(
        knm_client, admin_headers, (await run(knm_client, admin_headers, wf))["task_id"]
    )
    steps = steps_by_id(status)
    assert steps["named"]["nodes"] == ["n2"]
    assert steps["selected"]["nodes"] == ["n1", "n2"]
    assert steps["nobody"]["status"] == "skipped"
    assert steps["nobody"]["error"] == "no target nodes in this batch"
    assert status["status"] == "completed"


# --- what a client may act on is stored before the event that announces it -------------------

#: Rolls the tests below repeat (each over three one-node batches), within ``ANNOUNCED_SECONDS``.
ANNOUNCED_ROLLS = 5
ANNOUNCED_SECONDS = 90.0


async def _stored_step(
    client: ApiClient, headers: dict[str, str], task_id: str, step_id: str, batch: int = 0
) -> dict[str, Any]:
    """The step as the task's stored status shows it (read once, right now)."""
    data = assert_envelope(await client.get(f"/tasks/{task_id}", headers=headers), 200)["data"]
    return steps_by_id(data, batch).get(step_id, {"status": "not stored"})


def _step_with_child(step_id: str) -> Any:
    running = event_of("step", step_id=step_id, status="running")
    return lambda event: running(event) and "task_id" in (event.data or {})


async def test_an_approval_can_be_decided_on_the_very_event_that_announces_it(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    # A rolling canary: one approval per batch, each approved the moment its step is announced
    # running. The pending approval and the step's state are stored before that event, so the
    # stored status shows the step running and no approve ever gets 404.
    wf = await create(
        knm_client,
        admin_headers,
        "approved-at-once",
        [
            {"id": "gate", "type": "approval", "message": "next batch?"},
            {"id": "work", "type": "test", "depends_on": ["gate"]},
        ],
        strategy={"mode": "rolling", "batch_size": 1},
    )
    end = time.monotonic() + ANNOUNCED_SECONDS
    decided = 0
    for _ in range(ANNOUNCED_ROLLS):
        if time.monotonic() > end:
            break
        task_id = (await run(knm_client, admin_headers, wf))["task_id"]
        for batch in range(len(NODES)):
            announced = event_of("step", step_id="gate", status="running", batch=batch)
            await wait_for_event(knm_client, admin_headers, task_id, announced)
            response = await knm_client.post(
                f"/automation/workflows/approve/{task_id}",
                json={"step_id": "gate"},
                headers=admin_headers,
            )
            assert assert_envelope(response, 200)["data"]["batch"] == batch
            step = await _stored_step(knm_client, admin_headers, task_id, "gate", batch)
            assert step["status"] in ("running", "completed"), step
            decided += 1
        assert (await wait_for_task(knm_client, admin_headers, task_id))["status"] == "completed"
    assert decided >= len(NODES)


async def test_a_step_announced_running_or_ended_is_stored_so_when_the_event_comes(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    # What a status read right after a step event shows is at least what the event said: a
    # client (or a worker recovering the run) never finds an announced step still pending.
    wf = await create(
        knm_client,
        admin_headers,
        "announced",
        [
            {"id": "first", "type": "test"},
            {"id": "held", "type": "test", "depends_on": ["first"], "hang_nodes": ["n1"]},
        ],
    )
    end = time.monotonic() + ANNOUNCED_SECONDS
    for _ in range(ANNOUNCED_ROLLS):
        if time.monotonic() > end:
            break
        task_id = (await run(knm_client, admin_headers, wf))["task_id"]
        for step_id, status in (("first", "running"), ("first", "completed"), ("held", "running")):
            announced = event_of("step", step_id=step_id, status=status)
            await wait_for_event(knm_client, admin_headers, task_id, announced)
            step = await _stored_step(knm_client, admin_headers, task_id, step_id)
            assert step["status"] in (status, "completed"), (step_id, status, step)
        # The child task's id, announced once the child exists, is stored by then too.
        event = await wait_for_event(knm_client, admin_headers, task_id, _step_with_child("held"))
        step = await _stored_step(knm_client, admin_headers, task_id, "held")
        assert (step["status"], step["task_id"]) == ("running", (event.data or {})["task_id"])
        cancel = f"/automation/workflows/cancel/{task_id}"
        assert_envelope(await knm_client.post(cancel, headers=admin_headers), 200)
        assert (await wait_for_task(knm_client, admin_headers, task_id))["status"] == "cancelled"


async def test_a_worker_that_lost_the_workflows_lease_runs_no_finalizer_and_stores_no_step(
    knm_app: Any, knm_client: ApiClient, admin_headers: dict[str, str], knm_pool: Any
) -> None:
    knm = knm_app.state["knm"]
    wf = await create(
        knm_client,
        admin_headers,
        "lease-lost",
        [
            {"id": "long", "type": "test", "hang_nodes": NODES},
            {"id": "finally", "type": "test", "depends_on": ["long"], "when": "always"},
        ],
    )
    task_id = (await run(knm_client, admin_headers, wf))["task_id"]
    await eventually(lambda: _step_running(knm_client, admin_headers, task_id, "long"))
    stored = await knm_pool.fetchval("SELECT result FROM tasks WHERE task_id = $1", task_id)
    # As if this worker had stalled past its lease and another had taken the workflow over:
    # that worker's recovery runs the finalizer, and the step states are its to write.
    await knm_pool.execute(
        "UPDATE tasks SET worker_id = 'another-worker' WHERE task_id = $1", task_id
    )

    async def stopped() -> bool:
        return task_id not in knm.runner.running

    await eventually(stopped, deadline=10 * knm.config.lease_seconds)
    assert await knm_pool.fetchval("SELECT result FROM tasks WHERE task_id = $1", task_id) == stored
    children = await knm_pool.fetch("SELECT task_id FROM tasks WHERE parent_task_id = $1", task_id)
    assert len(children) == 1  # the long step's; none for the finalizer
    steps = [e.data.get("step_id") for e in await read_events(knm_pool, task_id)]
    assert "finally" not in steps
    async with knm_pool.acquire() as conn:
        assert await store.finish(conn, task_id, worker_id="another-worker") is not None
