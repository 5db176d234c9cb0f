"""A cordoning roll on the Kubernetes stand-in, its work run over SSH on the real OpenSSH fleet,
stopped at its window's end: the batch in flight finishes and its finalizer gives its node back,
untouched nodes stay untouched, and the resume at the next opening finishes the roll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from knm.core.windows.cron import Schedule
from knm.testing import sshfleet
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import standin
from knm.testing.tasks import eventually, wait_for_task

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]
NODES = ["node1", "node2", "node3"]
#: Every minute, open for 12 s: a batch of ~10 s fits, the third does not.
WINDOW = {"cron": "* * * * *", "timezone": "UTC", "duration": 12}
STEPS = [
    {"id": "cordon", "type": "k8s", "action": "cordon"},
    {"id": "work", "type": "ssh", "command": "sleep 8", "depends_on": ["cordon"],
     "requires": ["cordoned"]},
    {"id": "give_back", "type": "k8s", "action": "uncordon", "depends_on": ["work"],
     "when": "always", "continue_on_error": True},
]  # fmt: skip


@pytest.fixture
def kube(ssh_fleet: sshfleet.SshFleet) -> Iterator[KubeStandin]:
    kube = standin(populate=False)
    for name, node in zip(NODES, ssh_fleet.nodes, strict=False):
        kube.add_node(name, addresses={"InternalIP": node.address})
    try:
        yield kube
    finally:
        kube.stop()


async def status_of(client: ApiClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    return await wait_for_task(client, headers, task_id, deadline=150)


async def resume_row(client: ApiClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    listed = await client.get("/windows/resumes?page_size=100", headers=headers)
    rows = assert_envelope(listed, 200)["data"]["resumes"]
    return next(r for r in rows if r["task_id"] == task_id)


async def test_a_cordoning_roll_gives_its_batch_back_at_the_window_end_and_resumes_later(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    credential = await knm_client.post(
        "/credentials",
        json={
            "name": "windows-kube", "username": ssh_fleet.username, "auth_type": "password",
            "password": ssh_fleet.password, "port": ssh_fleet.port,
        },
        headers=admin_headers,
    )  # fmt: skip
    credential_id = assert_envelope(credential, 201)["data"]["id"]
    cluster = {"name": "win-kube", "kind": "kubernetes", "kubeconfig": kube.kubeconfig()}
    assert_envelope(await knm_client.post("/clusters", json=cluster, headers=admin_headers), 201)
    window = {"name": "kube-minutely", "clusters": ["win-kube"], **WINDOW}
    assert_envelope(await knm_client.post("/windows", json=window, headers=admin_headers), 201)
    body = {
        "name": "win-kube-roll",
        "definition": {"steps": STEPS, "strategy": {"mode": "rolling", "batch_size": 1}},
    }
    created = await knm_client.post("/automation/workflows", json=body, headers=admin_headers)
    workflow_id = assert_envelope(created, 201)["data"]["id"]
    schedule = Schedule(**WINDOW)
    opening = schedule.opening_at(datetime.now(UTC))
    if opening is not None:  # start at the next opening, with the whole window ahead
        await asyncio.sleep((opening.end - datetime.now(UTC)).total_seconds() + 0.2)
    versions = {name: kube.node(name).resource_version for name in NODES}
    started = await knm_client.post(
        "/automation/workflows/execute",
        json={
            "workflow_id": workflow_id, "cluster_name": "win-kube", "target_nodes": NODES,
            "credential_id": credential_id, "wait_for_window": True,
        },
        headers=admin_headers,
    )  # fmt: skip
    task_id = assert_envelope(started, 200)["data"]["task_id"]
    first = await status_of(knm_client, admin_headers, task_id)
    assert first["status"] == "failed" and first["error"] == "window_closed", first
    results = {r["node"]: r for r in first["results"]}
    done = [n for n in NODES if results[n]["status"] == "success"]
    stopped = [n for n in NODES if results[n]["status"] == "failed"]
    assert done and stopped, results
    assert {results[n]["reason"] for n in stopped} == {"window_closed"}
    for name in done:
        # The batch in flight finished and its finalizer gave the node back.
        node = kube.node(name)
        assert not node.unschedulable and "knm.io/cordoned-by" not in node.annotations
    for name in stopped:
        assert kube.node(name).resource_version == versions[name], f"{name} was touched"

    chain = [first]
    while chain[-1]["status"] != "completed":
        assert len(chain) <= 3, chain
        previous = chain[-1]["task_id"]

        async def resumed(previous: str = previous) -> bool:
            row = await resume_row(knm_client, admin_headers, previous)
            return row["state"] == "started"

        await eventually(resumed, deadline=90)
        row = await resume_row(knm_client, admin_headers, previous)
        chain.append(await status_of(knm_client, admin_headers, row["resume_task_id"]))
        assert chain[-1]["resumed_from"] == previous
    finished = {r["node"] for s in chain for r in s["results"] if r["status"] == "success"}
    assert finished == set(NODES)
    for name in NODES:
        node = kube.node(name)
        assert not node.unschedulable and "knm.io/cordoned-by" not in node.annotations
