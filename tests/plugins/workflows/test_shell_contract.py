"""Workflows meet other plugins only through the core: the one command policy (site rules
included) and the core's node locks for disruptive step types."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import asyncpg
import msgspec
import pytest

from knm.core.features import ExecutorSettings, FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.core.tasks import ExecRequest, Executor, NodeResult, TaskContext, locks
from knm.core.tasks.steps import StepOutcome, StepRun, StepType
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import start_task, wait_for_task

NODES = ["n1", "n2"]


class RebootFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class Reboot(StepType):
    """A third party's disruptive step type: it notes who holds each node's lock as it runs."""

    name = "reboot"
    params_type = RebootFields
    disruptive: ClassVar[bool] = True
    holders: ClassVar[dict[str, str | None]] = {}

    async def run(self, knm: Any, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        for node in run.nodes:
            self.holders[node.name] = await locks.holder_of(knm.pool, run.cluster_name, node.name)
        return StepOutcome(status="success", nodes={n.name: "success" for n in run.nodes})


class NapRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    pass


class Nap(Executor):
    """A disruptive executor: its tasks (and its workflow steps) hold their nodes' locks."""

    kind = "nap"
    route = "nap"
    feature = "nap"
    request_type = NapRequest
    requires_credential = False
    disruptive = True
    holders: ClassVar[dict[str, str | None]] = {}

    async def run(self, ctx: TaskContext) -> None:
        async def work(node: Any) -> NodeResult:
            pool, cluster = ctx.knm.pool, ctx.task.cluster_name
            self.holders[node.name] = await locks.holder_of(pool, cluster, node.name)
            return NodeResult.success("napped")

        await ctx.fan_out(work)


class RebootPlugin:
    @hookimpl
    def knm_step_types(self) -> list[StepType]:
        return [Reboot()]

    @hookimpl
    def knm_executors(self) -> list[Executor]:
        return [Nap()]

    @hookimpl
    def knm_features(self) -> list[FeatureSpec]:
        return [FeatureSpec("nap", ExecutorSettings)]


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin(), RebootPlugin()]


@pytest.fixture(scope="module", autouse=True)
async def lab(knm_client: ApiClient, admin_headers: dict[str, str]) -> None:
    nodes = [{"name": n, "address": f"127.0.0.{i + 2}"} for i, n in enumerate(NODES)]
    response = await knm_client.post(
        "/clusters", json={"name": "lab", "kind": "static", "nodes": nodes}, headers=admin_headers
    )
    assert_envelope(response, 201)


async def _run(
    client: ApiClient, headers: dict[str, str], name: str, steps: list[dict[str, Any]], **body: Any
) -> dict[str, Any]:
    definition = {"steps": steps}
    response = await client.post(
        "/automation/workflows",
        json={"name": name, "description": "", "definition": definition},
        headers=headers,
    )
    workflow = assert_envelope(response, 201)["data"]["id"]
    response = await client.post(
        "/automation/workflows/execute",
        json={"workflow_id": workflow, "cluster_name": "lab", "target_nodes": NODES, **body},
        headers=headers,
    )
    started = assert_envelope(response, 200)["data"]
    return await wait_for_task(client, headers, started["task_id"])


@pytest.fixture(scope="module")
async def pool(knm_database_url: str) -> Any:
    """This test's own pool: the app's lives on the test client's event loop."""
    async with asyncpg.create_pool(knm_database_url, min_size=1, max_size=2) as pool:
        yield pool


def _step(status: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in status["steps"] if s["id"] == step_id)


async def test_a_site_deny_rule_blocks_a_workflow_ssh_step_at_save_and_before_its_task_exists(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    definition = {"steps": [{"id": "r", "type": "ssh", "command": "reboot now", "reboots": True}]}
    response = await knm_client.post(
        "/automation/workflows",
        json={"name": "site-rule", "description": "", "definition": definition},
        headers=admin_headers,
    )
    workflow = assert_envelope(response, 201)["data"]["id"]  # saved before the rule existed
    rules = {"deny_rules": [{"name": "no-reboot", "pattern": "^reboot"}]}
    response = await knm_client.put("/features/automation/ssh", json=rules, headers=admin_headers)
    assert_envelope(response, 200)
    credential = await knm_client.post(
        "/credentials",
        json={"name": "c", "username": "u", "auth_type": "password", "password": "p-123456"},
        headers=admin_headers,
    )
    try:
        again = await knm_client.post(
            "/automation/workflows",
            json={"name": "site-rule-2", "description": "", "definition": definition},
            headers=admin_headers,
        )
        assert (
            "step r: dangerous command blocked: reboot now" in assert_envelope(again, 422)["error"]
        )
        # A definition saved before the rule is checked again when it starts: refused before
        # any task exists (steps rendered with run values are checked again by the engine).
        response = await knm_client.post(
            "/automation/workflows/execute",
            json={"workflow_id": workflow, "cluster_name": "lab", "target_nodes": NODES,
                  "credential_id": assert_envelope(credential, 201)["data"]["id"]},
            headers=admin_headers,
        )  # fmt: skip
        assert "dangerous command blocked: reboot now" in assert_envelope(response, 422)["error"]
    finally:
        reset = {"deny_rules": []}
        await knm_client.put("/features/automation/ssh", json=reset, headers=admin_headers)


async def test_a_disruptive_step_holds_each_nodes_lock_for_its_workflow_until_the_batch_ends(
    knm_client: ApiClient, admin_headers: dict[str, str], pool: Any
) -> None:
    Reboot.holders.clear()
    status = await _run(knm_client, admin_headers, "reboot", [{"id": "r", "type": "reboot"}])
    assert status["status"] == "completed", status
    assert Reboot.holders == {node: status["task_id"] for node in NODES}
    assert [await locks.holder_of(pool, "lab", node) for node in NODES] == [None, None]


async def test_a_disruptive_step_on_a_node_another_task_has_locked_fails_without_running(
    knm_client: ApiClient, admin_headers: dict[str, str], pool: Any
) -> None:
    other = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"], sleep=30
    )
    refusal = await locks.acquire(
        pool, cluster="lab", node="n1", holder=other["task_id"], task_id=other["task_id"],
        max_unavailable=None,
    )  # fmt: skip
    assert refusal is None
    Reboot.holders.clear()
    try:
        status = await _run(knm_client, admin_headers, "blocked", [{"id": "r", "type": "reboot"}])
    finally:
        # The lock is the other task's until it has ended, and cancelling is asynchronous.
        await knm_client.post(f"/automation/test/cancel/{other['task_id']}", headers=admin_headers)
        await wait_for_task(knm_client, admin_headers, other["task_id"])
    step = _step(status, "r")
    assert step["status"] == "failed"
    assert f"node n1 is locked by task {other['task_id']}" in step["error"]
    assert Reboot.holders == {}


async def test_a_disruptive_executor_holds_its_nodes_locks_for_the_task_or_its_workflow(
    knm_client: ApiClient, admin_headers: dict[str, str], pool: Any
) -> None:
    Nap.holders.clear()
    data = await start_task(
        knm_client, admin_headers, "nap", cluster_name="lab", target_nodes=NODES
    )
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "completed", status
    assert Nap.holders == {node: data["task_id"] for node in NODES}
    assert [await locks.holder_of(pool, "lab", node) for node in NODES] == [None, None]
    Nap.holders.clear()
    status = await _run(knm_client, admin_headers, "nap-step", [{"id": "z", "type": "nap"}])
    assert status["status"] == "completed", status
    assert Nap.holders == {node: status["task_id"] for node in NODES}
    assert [await locks.holder_of(pool, "lab", node) for node in NODES] == [None, None]
