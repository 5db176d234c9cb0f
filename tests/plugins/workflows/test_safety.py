"""Node maintenance stays safe through every interruption, enforced by the engine: declared
preconditions checked on each node's live state right before every step, boot ids recorded right
before each rebooting step, resumes that re-establish and always run their finalizers, reasons
that reach the workflow's own results, nodes cordoned by hand skipped, ``disruptive`` locks.

The cluster is the Kubernetes stand-in; the "reboots" are the stand-in's (a step type of this
test asks for them and notes the node's state at that moment)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal

import msgspec
import pytest

from knm.core.hookspecs import hookimpl
from knm.core.tasks.steps import NodeDetail, StepOutcome, StepRun, StepType
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import register_kube_cluster, standin
from knm.testing.tasks import eventually, start_task, wait_for_task

pytestmark = pytest.mark.timeout(180)
NODES = ["node1", "node2", "node3"]
NS = "default"
CORDONED_BY = "knm.io/cordoned-by"
_names = itertools.count(1)


class StandinFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``now``: reboot each node at once; ``later``: a moment after the step ended (like
    #: ``nohup sh -c 'sleep 2; reboot' &``); ``no``: do nothing.
    reboot: Literal["now", "later", "no"] = "no"
    #: Comma-separated nodes on which the step fails (templated from a parameter).
    fail: str = ""


class Sighting(msgspec.Struct, kw_only=True):
    """A node as it was when this test's step rebooted it."""

    node: str
    unschedulable: bool
    knm_cordon: bool
    pods: list[str]


class StandinStep(StepType):
    """Reboots stand-in nodes, noting each node's state at that moment."""

    name = "standin"
    params_type = StandinFields
    kube: ClassVar[KubeStandin | None] = None
    sightings: ClassVar[list[Sighting]] = []

    @classmethod
    def reboot(cls, node: str) -> None:
        assert cls.kube is not None
        state = cls.kube.node(node)
        pods = [p.name for p in cls.kube.pods_on(node) if p.labels.get("app") == "web"]
        cls.sightings.append(
            Sighting(
                node=node,
                unschedulable=state.unschedulable,
                knm_cordon=CORDONED_BY in state.annotations,
                pods=pods,
            )
        )
        cls.kube.reboot(node, by="node")  # knm's reboot, as a command on the node asks it

    async def run(self, knm: Any, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        fields = msgspec.convert(run.params, StandinFields)
        failing = {n for n in fields.fail.split(",") if n}
        nodes: dict[str, str] = {}
        details: dict[str, NodeDetail] = {}
        for node in run.nodes:
            if node.name in failing:
                nodes[node.name] = "failed"
                details[node.name] = NodeDetail(reason="exit_code", message="failing as asked")
                continue
            if fields.reboot == "now":
                self.reboot(node.name)
            elif fields.reboot == "later":
                threading.Timer(0.3, self.reboot, (node.name,)).start()
            nodes[node.name] = "success"
        return StepOutcome(
            status="failed" if failing & set(nodes) else "success", nodes=nodes, details=details
        )


class StandinPlugin:
    @hookimpl
    def knm_step_types(self) -> list[StepType]:
        return [StandinStep()]


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin(), StandinPlugin()]


class Lab(msgspec.Struct, kw_only=True):
    kube: KubeStandin
    cluster: str


@pytest.fixture
async def lab(knm_client: ApiClient, admin_headers: dict[str, str]) -> AsyncIterator[Lab]:
    """A fresh stand-in: three workers, a web replica on each (plus a spare on node3, so the
    budget lets one go at a time), registered allowing one node out at a time."""
    kube = standin(populate=False)
    for name in NODES:
        kube.add_node(name, labels={"node-role.kubernetes.io/worker": ""})
    for i, name in enumerate(NODES, start=1):
        kube.add_pod(NS, f"web-{i}", name, labels={"app": "web"}, owner_name="web")
    kube.add_pdb(NS, "web", {"app": "web"}, max_unavailable=1)
    StandinStep.kube = kube
    StandinStep.sightings = []
    name = await register_kube_cluster(
        knm_client, admin_headers, kube, f"safety-{next(_names)}", max_unavailable=1
    )
    try:
        yield Lab(kube=kube, cluster=name)
    finally:
        kube.stop()


async def create(
    client: ApiClient, headers: dict[str, str], steps: list[dict[str, Any]], **definition: Any
) -> int:
    body = {
        "name": f"safety workflow {next(_names)}",
        "definition": {
            "steps": steps,
            "strategy": {"mode": "rolling", "batch_size": 1},
            **definition,
        },
    }
    response = await client.post("/automation/workflows", json=body, headers=headers)
    return assert_envelope(response, 201)["data"]["id"]


async def start(
    client: ApiClient,
    headers: dict[str, str],
    lab: Lab,
    workflow: int,
    nodes: list[str] = NODES,
    **body: Any,
) -> str:
    response = await client.post(
        "/automation/workflows/execute",
        json={"workflow_id": workflow, "cluster_name": lab.cluster, "target_nodes": nodes, **body},
        headers=headers,
    )
    return assert_envelope(response, 200)["data"]["task_id"]


def results(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["node"]: r for r in status["results"]}


def step(status: dict[str, Any], step_id: str, batch: int = 0) -> dict[str, Any]:
    return next(s for s in status["steps"] if s["id"] == step_id and s["batch"] == batch)


def no_knm_cordon(kube: KubeStandin) -> list[str]:
    return [n for n in NODES if kube.node(n).unschedulable]


def hand_cordon(kube: KubeStandin, node: str) -> None:
    """``kubectl cordon``: no knm annotation."""
    doc = kube.cluster.node_doc(node)
    doc["spec"]["unschedulable"] = True
    kube.cluster.write_node(node, doc, require_rv=False)


CORDON = {"id": "cordon", "type": "k8s", "action": "cordon"}
DRAIN = {"id": "drain", "type": "k8s", "action": "drain", "depends_on": ["cordon"], "timeout": 30}


def give_back(after: str, timeout: int = 30) -> dict[str, Any]:
    return {
        "id": "give_back",
        "type": "k8s",
        "action": "uncordon",
        "depends_on": [after],
        "when": "always",
        "continue_on_error": True,
        "timeout": timeout,
    }


# --- finding 1: the boot id is the one taken right before the rebooting step -----------------


async def test_a_node_goes_back_into_service_only_after_its_own_reboot(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    """The upgrade reboots the node by itself; the reboot step's own reboot comes a moment
    after the step ends. ``wait_ready after_reboot`` must wait for that one."""
    workflow = await create(
        knm_client,
        admin_headers,
        [
            CORDON,
            DRAIN,
            {"id": "upgrade", "type": "standin", "reboot": "now", "reboots": True,
             "depends_on": ["drain"]},
            {"id": "reboot", "type": "standin", "reboot": "later", "reboots": True,
             "depends_on": ["upgrade"]},
            {"id": "wait_ready", "type": "k8s", "action": "wait_ready", "depends_on": ["reboot"],
             "params": {"after_reboot": True}, "timeout": 60},
            {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["wait_ready"]},
            give_back("uncordon"),
        ],
    )  # fmt: skip
    task = await start(knm_client, admin_headers, lab, workflow, ["node1"])
    status = await wait_for_task(knm_client, admin_headers, task, deadline=120)
    assert status["status"] == "completed", status
    # Both reboots happened while the node was still cordoned by knm.
    assert [(s.node, s.unschedulable, s.knm_cordon) for s in StandinStep.sightings] == [
        ("node1", True, True),
        ("node1", True, True),
    ]
    assert not lab.kube.node("node1").unschedulable


def uncordoned_after_its_reboot(kube: KubeStandin, node: str) -> bool:
    """In the stand-in's history: knm's last uncordon of ``node`` came after the boot that
    ended the last reboot knm asked for."""
    history = [e for e in kube.history if e.node == node]
    reboot = max(e.seq for e in history if e.kind == "reboot" and e.by == "node")
    boot = min(e.seq for e in history if e.kind == "boot" and e.seq > reboot)
    uncordon = max(e.seq for e in history if e.kind == "node" and not e.unschedulable)
    return uncordon > boot


async def test_a_boot_id_is_taken_after_a_lock_wait_not_before_it(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    """The roll waits for a max_unavailable slot (another task's cordon) and the node reboots
    meanwhile; the boot id that counts is the one taken right before the rebooting step."""
    kube = lab.kube
    blocker = await start_task(
        knm_client, admin_headers, "k8s", cluster_name=lab.cluster, target_nodes=["node1"],
        action="cordon",
    )  # fmt: skip
    await wait_for_task(knm_client, admin_headers, blocker["task_id"])
    workflow = await create(
        knm_client,
        admin_headers,
        [
            {"id": "record", "type": "k8s", "action": "record_boot_id"},
            {**CORDON, "depends_on": ["record"], "params": {"wait_for_lock": True},
             "timeout": 60},
            DRAIN,
            {"id": "reboot", "type": "standin", "reboot": "later", "reboots": True,
             "depends_on": ["drain"]},
            {"id": "wait_ready", "type": "k8s", "action": "wait_ready", "depends_on": ["reboot"],
             "params": {"after_reboot": True}, "timeout": 60},
            {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["wait_ready"]},
            give_back("uncordon"),
        ],
    )  # fmt: skip
    task = await start(knm_client, admin_headers, lab, workflow, ["node2"])

    async def waiting() -> bool:
        status = (await knm_client.get(f"/tasks/{task}", headers=admin_headers)).json()["data"]
        return any(s["id"] == "cordon" and s["status"] == "running" for s in status["steps"])

    await eventually(waiting, deadline=30)
    kube.reboot("node2")  # not knm's
    await eventually(lambda: _booted(kube, "node2"), deadline=30)
    released = await start_task(
        knm_client, admin_headers, "k8s", cluster_name=lab.cluster, target_nodes=["node1"],
        action="uncordon",
    )  # fmt: skip
    await wait_for_task(knm_client, admin_headers, released["task_id"])
    status = await wait_for_task(knm_client, admin_headers, task, deadline=120)
    assert status["status"] == "completed", status
    assert uncordoned_after_its_reboot(kube, "node2")
    assert kube.cluster.violations() == []


async def _booted(kube: KubeStandin, node: str) -> bool:
    return any(e.kind == "boot" and e.node == node for e in kube.history)


# --- the preconditions, checked by the engine ------------------------------------------------


async def test_a_rebooting_step_is_refused_on_a_node_that_is_not_cordoned_and_drained(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    workflow = await create(
        knm_client,
        admin_headers,
        [{"id": "reboot", "type": "standin", "reboot": "now", "reboots": True}],
    )
    task = await start(knm_client, admin_headers, lab, workflow, ["node1"])
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    assert status["status"] == "failed"
    node = results(status)["node1"]
    assert node["reason"] == "precondition"
    assert "cordoned by this run" in node["message"] and "schedulable" in node["message"]
    assert StandinStep.sightings == []


async def test_requires_drained_refuses_a_node_with_pods_left(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    workflow = await create(
        knm_client,
        admin_headers,
        [
            CORDON,
            {"id": "work", "type": "test", "requires": ["cordoned", "drained"],
             "depends_on": ["cordon"]},
            give_back("work"),
        ],
    )  # fmt: skip
    task = await start(knm_client, admin_headers, lab, workflow, ["node1"])
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    node = results(status)["node1"]
    assert node["reason"] == "precondition"
    assert "drained" in node["message"] and "default/web-1" in node["message"]
    assert step(status, "work")["task_id"] is None  # it never ran
    assert not lab.kube.node("node1").unschedulable


# --- finding 2: resume re-establishes before it reboots --------------------------------------


MAINTENANCE = [
    CORDON,
    DRAIN,
    {"id": "upgrade", "type": "standin", "fail": "{{ params.fail }}", "reboots": True,
     "depends_on": ["drain"]},
    {"id": "reboot", "type": "standin", "reboot": "now", "reboots": True,
     "depends_on": ["upgrade"]},
    {"id": "wait_ready", "type": "k8s", "action": "wait_ready", "depends_on": ["reboot"],
     "params": {"after_reboot": True}, "timeout": 60},
    {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["wait_ready"]},
    give_back("uncordon"),
]  # fmt: skip


async def test_resume_recordons_and_redrains_before_it_reboots(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    workflow = await create(
        knm_client,
        admin_headers,
        MAINTENANCE,
        parameters=[{"name": "fail", "default": ""}],
    )
    task = await start(
        knm_client, admin_headers, lab, workflow, ["node1"], parameters={"fail": "node1"}
    )
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    assert status["status"] == "failed"
    # The finalizer gave node1 back; a budget-guarded pod lands on it again.
    assert not lab.kube.node("node1").unschedulable
    lab.kube.add_pod(NS, "web-back", "node1", labels={"app": "web"}, owner_name="web")
    resumed = await knm_client.post(
        f"/automation/workflows/resume/{task}", json={"parameters": {"fail": ""}},
        headers=admin_headers,
    )  # fmt: skip
    again = assert_envelope(resumed, 200)["data"]["task_id"]
    status = await wait_for_task(knm_client, admin_headers, again, deadline=120)
    assert status["status"] == "completed", status
    assert [(s.unschedulable, s.knm_cordon, s.pods) for s in StandinStep.sightings] == [
        (True, True, [])
    ]
    assert step(status, "cordon")["task_id"] is not None  # ran again
    assert step(status, "drain")["task_id"] is not None
    assert not lab.kube.node("node1").unschedulable


async def test_resume_reestablishes_even_for_a_workflow_that_declares_nothing(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    """The old shape of the builtin (a boot id recorded up front, nothing declared): resume
    still runs cordon and drain again, so the reboot finds the node cordoned and empty."""
    steps = [
        {"id": "record", "type": "k8s", "action": "record_boot_id"},
        {**CORDON, "depends_on": ["record"]},
        DRAIN,
        {"id": "upgrade", "type": "standin", "fail": "{{ params.fail }}", "depends_on": ["drain"]},
        {"id": "reboot", "type": "standin", "reboot": "now", "depends_on": ["upgrade"]},
        {"id": "wait_ready", "type": "k8s", "action": "wait_ready", "depends_on": ["reboot"],
         "params": {"after_reboot": True}, "timeout": 60},
        {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["wait_ready"]},
        give_back("uncordon"),
    ]  # fmt: skip
    workflow = await create(
        knm_client, admin_headers, steps, parameters=[{"name": "fail", "default": ""}]
    )
    task = await start(
        knm_client, admin_headers, lab, workflow, ["node1"], parameters={"fail": "node1"}
    )
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    assert status["status"] == "failed"
    lab.kube.add_pod(NS, "web-back", "node1", labels={"app": "web"}, owner_name="web")
    resumed = await knm_client.post(
        f"/automation/workflows/resume/{task}", json={"parameters": {"fail": ""}},
        headers=admin_headers,
    )  # fmt: skip
    again = assert_envelope(resumed, 200)["data"]["task_id"]
    status = await wait_for_task(knm_client, admin_headers, again, deadline=120)
    assert [(s.unschedulable, s.knm_cordon, s.pods) for s in StandinStep.sightings] == [
        (True, True, [])
    ], "the resumed run rebooted a schedulable node with pods on it"
    assert status["status"] == "completed", status


# --- finding 3: a resumed run that fails leaves no knm cordon --------------------------------


async def test_a_resumed_run_that_fails_still_runs_its_finalizer(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    kube = lab.kube
    kube.cluster.remove_pdb(NS, "web")
    kube.add_pdb(NS, "web", {"app": "web"}, min_available=3)  # nothing may go: drain blocks
    workflow = await create(
        knm_client,
        admin_headers,
        [
            CORDON,
            DRAIN,
            {"id": "wait_ready", "type": "k8s", "action": "wait_ready", "depends_on": ["drain"],
             "timeout": 2},
            {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["wait_ready"]},
            give_back("uncordon"),
        ],
    )  # fmt: skip
    task = await start(knm_client, admin_headers, lab, workflow, ["node1"])

    async def blocked() -> bool:
        return any(r.path.endswith("/eviction") and r.status == 429 for r in kube.requests)

    await eventually(blocked, deadline=60)
    cancelled = await knm_client.post(f"/automation/workflows/cancel/{task}", headers=admin_headers)
    assert cancelled.status_code in (200, 202), cancelled.text
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    assert status["status"] == "cancelled"
    assert not kube.node("node1").unschedulable  # the cancel gave it back
    # The resumed run drains (the budget relaxed), then fails: node1 is not Ready.
    kube.cluster.remove_pdb(NS, "web")
    kube.set_ready("node1", False)
    resumed = await knm_client.post(f"/automation/workflows/resume/{task}", headers=admin_headers)
    again = assert_envelope(resumed, 200)["data"]["task_id"]
    status = await wait_for_task(knm_client, admin_headers, again, deadline=60)
    assert status["status"] == "failed"
    assert not kube.node("node1").unschedulable, "the resumed run left node1 cordoned"
    assert CORDONED_BY not in kube.node("node1").annotations
    assert step(status, "drain")["status"] == "completed"
    assert step(status, "give_back")["status"] == "completed"
    assert results(status)["node1"]["reason"] == "not_ready"


# --- findings 4 and 5: drain_timeout honoured; the budget named at the workflow level --------


async def test_drain_timeout_gives_up_and_the_blocking_budget_is_named_on_the_node(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    kube = lab.kube
    kube.cluster.remove_pdb(NS, "web")
    kube.add_pdb(NS, "web", {"app": "web"}, min_available=3)
    workflow = await create(
        knm_client,
        admin_headers,
        [
            CORDON,
            {"id": "drain", "type": "k8s", "action": "drain", "depends_on": ["cordon"],
             "params": {"drain_timeout": "{{ params.drain_timeout }}"}, "timeout": 3600},
            give_back("drain"),
        ],
        parameters=[{"name": "drain_timeout", "type": "integer", "default": "600"}],
    )  # fmt: skip
    task = await start(
        knm_client, admin_headers, lab, workflow, ["node1"], parameters={"drain_timeout": "1"}
    )
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    node = results(status)["node1"]
    assert node["reason"] == "drain_timeout"
    assert "step drain:" in node["message"] and "default/web" in node["message"]
    events = (await knm_client.get(f"/tasks/{task}/events", headers=admin_headers)).json()
    node_events = [e for e in events["data"]["entries"] if e["type"] == "node"]
    assert node_events[-1]["data"]["reason"] == "drain_timeout"
    assert "default/web" in node_events[-1]["message"]
    assert not kube.node("node1").unschedulable


# --- finding 6: a node cordoned by hand is skipped; the roll goes on -------------------------


ROLL = [
    CORDON,
    DRAIN,
    {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["drain"]},
    give_back("uncordon"),
]


async def test_a_hand_cordoned_node_is_skipped_and_the_roll_completes(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    hand_cordon(lab.kube, "node2")
    workflow = await create(knm_client, admin_headers, ROLL)
    task = await start(knm_client, admin_headers, lab, workflow)
    status = await wait_for_task(knm_client, admin_headers, task, deadline=120)
    found = results(status)
    assert status["status"] == "completed", status
    assert found["node1"]["status"] == found["node3"]["status"] == "success"
    assert found["node2"]["status"] == "failed" and found["node2"]["reason"] == "skipped"
    assert "cordoned by hand" in found["node2"]["message"]
    assert status["failed_count"] == 1
    assert lab.kube.node("node2").unschedulable  # left as the operator left it
    assert no_knm_cordon(lab.kube) == ["node2"]


async def test_on_hand_cordoned_fail_stops_the_roll(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    hand_cordon(lab.kube, "node2")
    workflow = await create(
        knm_client,
        admin_headers,
        ROLL,
        strategy={"mode": "rolling", "batch_size": 1, "on_hand_cordoned": "fail"},
    )
    task = await start(knm_client, admin_headers, lab, workflow)
    status = await wait_for_task(knm_client, admin_headers, task, deadline=120)
    found = results(status)
    assert status["status"] == "failed"
    assert found["node2"]["reason"] == "refused" and "by hand" in found["node2"]["message"]
    assert found["node3"]["reason"] == "skipped" and "not reached" in found["node3"]["message"]


# --- keep_failed_cordoned: the one way to leave a knm cordon behind --------------------------


async def test_keep_failed_cordoned_leaves_the_failed_node_cordoned(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    workflow = await create(
        knm_client,
        admin_headers,
        MAINTENANCE,
        parameters=[{"name": "fail", "default": ""}],
    )
    task = await start(
        knm_client, admin_headers, lab, workflow, ["node1"],
        parameters={"fail": "node1"}, keep_failed_cordoned=True,
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, task, deadline=60)
    assert status["status"] == "failed"
    assert step(status, "give_back")["status"] == "skipped"
    assert lab.kube.node("node1").unschedulable
    assert lab.kube.node("node1").annotations[CORDONED_BY] == task


# --- finding 7: disruptive workflows lock their nodes ----------------------------------------


async def test_two_disruptive_runs_never_work_on_one_node_at_once(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    workflow = await create(
        knm_client,
        admin_headers,
        [{"id": "work", "type": "test", "hang_nodes": ["node1"]}],
        disruptive=True,
    )
    first = await start(knm_client, admin_headers, lab, workflow, ["node1"])

    async def working() -> bool:
        status = (await knm_client.get(f"/tasks/{first}", headers=admin_headers)).json()["data"]
        return any(s["task_id"] for s in status["steps"])

    await eventually(working, deadline=30)
    second = await start(knm_client, admin_headers, lab, workflow, ["node1"])
    status = await wait_for_task(knm_client, admin_headers, second, deadline=60)
    node = results(status)["node1"]
    assert node["reason"] == "locked" and first in node["message"]
    # Another node is out of service (max_unavailable 1): refused for that budget.
    third = await start(knm_client, admin_headers, lab, workflow, ["node2"])
    status = await wait_for_task(knm_client, admin_headers, third, deadline=60)
    assert results(status)["node2"]["reason"] == "max_unavailable"
    await knm_client.post(f"/automation/workflows/cancel/{first}", headers=admin_headers)
    await wait_for_task(knm_client, admin_headers, first, deadline=60)


# --- save-time checks ------------------------------------------------------------------------


async def save(client: ApiClient, headers: dict[str, str], definition: dict[str, Any]) -> Any:
    body = {"name": f"checked {next(_names)}", "definition": definition}
    return await client.post("/automation/workflows", json=body, headers=headers)


@pytest.mark.parametrize(
    "command",
    [
        "sudo systemctl reboot",
        "nohup sh -c 'sleep 2; shutdown -r now' >/dev/null 2>&1 &",
        "init 6",
        "timeout 5 sudo reboot",
    ],
)
# A reboot through /proc/sysrq-trigger is refused by the command guard-rail whatever the step
# says (the sysrq class, docs/design.md): not a way to reboot a node in a workflow.
async def test_a_step_that_reboots_without_saying_so_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str], command: str
) -> None:
    response = await save(
        knm_client, admin_headers, {"steps": [{"id": "r", "type": "ssh", "command": command}]}
    )
    body = assert_envelope(response, 422)
    assert '"reboots": true' in str(body), body
    said = await save(
        knm_client,
        admin_headers,
        {"steps": [{"id": "r", "type": "ssh", "command": command, "reboots": True}]},
    )
    assert_envelope(said, 201)


async def test_a_whole_command_parameter_is_refused_anywhere_but_a_whole_command(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    parameters = [{"name": "cmd", "type": "command", "default": "uptime"}]
    inside = await save(
        knm_client,
        admin_headers,
        {"parameters": parameters,
         "steps": [{"id": "s", "type": "ssh", "command": "nohup {{ params.cmd }} &"}]},
    )  # fmt: skip
    assert "type: command" in str(assert_envelope(inside, 422))
    whole = await save(
        knm_client,
        admin_headers,
        {"parameters": parameters,
         "steps": [{"id": "s", "type": "ssh", "command": "{{ params.cmd }}"}]},
    )  # fmt: skip
    assert_envelope(whole, 201)
    dangerous = await save(
        knm_client,
        admin_headers,
        {"parameters": [{"name": "cmd", "type": "command", "default": "rm -rf /"}],
         "steps": [{"id": "s", "type": "ssh", "command": "{{ params.cmd }}"}]},
    )  # fmt: skip
    assert "dangerous command" in str(assert_envelope(dangerous, 422))
    rebooting = await save(
        knm_client,
        admin_headers,
        {"parameters": [{"name": "cmd", "type": "command", "default": "sudo reboot"}],
         "steps": [{"id": "s", "type": "ssh", "command": "{{ params.cmd }}"}]},
    )  # fmt: skip
    assert '"reboots": true' in str(assert_envelope(rebooting, 422))


async def test_typed_parameters_are_checked_at_save_and_at_execute(
    knm_client: ApiClient, admin_headers: dict[str, str], lab: Lab
) -> None:
    bad = await save(
        knm_client,
        admin_headers,
        {"parameters": [{"name": "n", "type": "integer", "default": "soon"}],
         "steps": [{"id": "s", "type": "test"}]},
    )  # fmt: skip
    assert "must be an integer" in str(assert_envelope(bad, 422))
    workflow = await create(
        knm_client,
        admin_headers,
        [{"id": "s", "type": "test"}],
        parameters=[
            {"name": "n", "type": "integer", "default": "5"},
            {"name": "cmd", "type": "command", "default": "uptime"},
        ],
    )
    for parameters, said in (({"n": "soon"}, "must be an integer"), ({"cmd": "rm -rf /"}, "")):
        response = await knm_client.post(
            "/automation/workflows/execute",
            json={"workflow_id": workflow, "cluster_name": lab.cluster,
                  "target_nodes": ["node1"], "parameters": parameters},
            headers=admin_headers,
        )  # fmt: skip
        assert said in str(assert_envelope(response, 422))


def test_every_parameter_of_every_builtin_workflow_is_used_and_has_its_test() -> None:
    """A parameter no step uses changes nothing. Each one's test: upgrade_playbook —
    test_a_failure_on_node2_stops_the_roll_and_leaves_node3_untouched; upgrade_args —
    test_upgrade_args_reach_ansible_playbook; reboot_command —
    test_maintenance_rolls_through_every_node_honouring_the_budget (the nodes reboot only through
    it); drain_timeout — test_drain_timeout_gives_up_naming_the_blocking_budget (all in
    test_maintenance.py)."""
    from knm.plugins.workflows.builtins import builtin_workflows
    from knm.plugins.workflows.templates import references

    tested = {"upgrade_playbook", "upgrade_args", "reboot_command", "drain_timeout"}
    declared: set[str] = set()
    for item in builtin_workflows():
        body: dict[str, Any] = item.body  # type: ignore[assignment]
        names = {p["name"] for p in body.get("parameters", [])}
        used = {name for ns, name in references(body["steps"]) if ns == "params"}
        assert names <= used, f"{item.name}: unused parameters {names - used}"
        declared |= names
    assert declared == tested


async def test_a_script_or_playbook_that_reboots_needs_the_declaration_too(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    script = await knm_client.post(
        "/automation/scripts",
        json={"name": f"rebooter {next(_names)}", "content": "#!/bin/sh\nsync\nsudo reboot\n"},
        headers=admin_headers,
    )
    name = assert_envelope(script, 201)["data"]["name"]
    for step in (
        {"id": "s", "type": "script", "script": name},
        # The builtin upgrade playbook reboots when reboot_if_needed is set.
        {"id": "s", "type": "ansible", "playbook": "System upgrade"},
    ):
        refused = await save(knm_client, admin_headers, {"steps": [step]})
        assert '"reboots": true' in str(assert_envelope(refused, 422)), step
        said = await save(knm_client, admin_headers, {"steps": [{**step, "reboots": True}]})
        assert_envelope(said, 201)
