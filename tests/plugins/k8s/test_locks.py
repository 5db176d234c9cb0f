"""Node locks of disruptive actions, and the per-cluster ``max_unavailable`` bound."""

from __future__ import annotations

import asyncio
from typing import Any

from knm.testing.client import ApiClient
from knm.testing.kube import KubeCluster, Run, register_kube_cluster
from knm.testing.tasks import eventually, start_task, wait_for_task

NS = "default"


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


def pool_of(client: ApiClient) -> Any:
    return client.http.app.state["knm"].pool  # type: ignore[attr-defined]


async def lock_holder(client: ApiClient, cluster: str, node: str) -> str | None:
    async def read() -> str | None:
        return await pool_of(client).fetchval(
            "SELECT holder FROM k8s_node_locks WHERE cluster_name = $1 AND node = $2",
            cluster,
            node,
        )

    return await client.on_app(read)


async def test_a_second_disruptive_task_on_a_locked_node_fails_naming_the_holder(
    cluster: KubeCluster,
    start_k8s: Run,
    run_k8s: Run,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
) -> None:
    cluster.kube.add_pdb(NS, "web-pdb", {"app": "web"}, min_available=1)
    first = await start_k8s("drain", ["w1"], timeout=30, params={"drain_timeout": 2})

    async def locked() -> bool:
        return await lock_holder(knm_client, cluster.name, "w1") == first["task_id"]

    await eventually(locked)
    second = await run_k8s("cordon", ["w1"])
    result = by_node(second)["w1"]
    assert (result["status"], result["reason"]) == ("failed", "locked")
    assert first["task_id"] in result["message"]
    other = await run_k8s("uncordon", ["w1"])
    assert by_node(other)["w1"]["reason"] == "locked"

    done = await wait_for_task(knm_client, admin_headers, first["task_id"])
    assert by_node(done)["w1"]["reason"] == "drain_timeout"
    assert await lock_holder(knm_client, cluster.name, "w1") is None
    again = await run_k8s("cordon", ["w1"])
    assert by_node(again)["w1"]["status"] == "success"


async def test_wait_for_lock_waits_for_the_holder_to_finish(
    cluster: KubeCluster, start_k8s: Run, run_k8s: Run, knm_client: ApiClient
) -> None:
    cluster.kube.add_pdb(NS, "web-pdb", {"app": "web"}, min_available=1)
    first = await start_k8s(
        "drain", ["w1"], timeout=30, params={"drain_timeout": 1, "on_timeout": "uncordon"}
    )

    async def locked() -> bool:
        return await lock_holder(knm_client, cluster.name, "w1") == first["task_id"]

    await eventually(locked)
    waiting = await run_k8s("cordon", ["w1"], timeout=30, params={"wait_for_lock": True})
    result = by_node(waiting)["w1"]
    assert result["status"] == "success" and result["message"] == "cordoned"
    assert cluster.kube.node("w1").annotations["knm.io/cordoned-by"] == waiting["task_id"]


async def test_max_unavailable_bounds_the_nodes_knm_keeps_cordoned(
    kube_standin: Any, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    name = await register_kube_cluster(knm_client, admin_headers, kube_standin, "one-at-a-time")

    async def run(action: str, node: str, **body: Any) -> dict[str, Any]:
        task = await start_task(
            knm_client, admin_headers, "k8s", cluster_name=name, target_nodes=[node],
            action=action, **body,
        )  # fmt: skip
        return by_node(await wait_for_task(knm_client, admin_headers, task["task_id"]))[node]

    # Two tasks at once, each cordoning one node: only one of them may.
    both = await asyncio.gather(run("cordon", "w2"), run("cordon", "w3"))
    assert sorted(r["status"] for r in both) == ["failed", "success"]
    (refused,) = [r for r in both if r["status"] == "failed"]
    assert refused["reason"] == "max_unavailable"
    assert "max_unavailable" in refused["message"]
    cordoned = "w2" if both[0]["status"] == "success" else "w3"
    free = "w3" if cordoned == "w2" else "w2"
    assert [kube_standin.node(n).unschedulable for n in (cordoned, free)] == [True, False]

    # The bound counts nodes knm left cordoned, long after their tasks ended.
    still = await run("drain", free)
    assert still["reason"] == "max_unavailable" and cordoned in still["message"]
    assert (await run("cordon", cordoned))["status"] == "success"  # the same node: idempotent
    assert (await run("uncordon", cordoned))["status"] == "success"
    assert (await run("cordon", free))["status"] == "success"


async def test_locks_of_finished_tasks_are_reaped_when_contested(
    cluster: KubeCluster, run_k8s: Run, knm_client: ApiClient
) -> None:
    finished = await run_k8s("label", ["w3"], params={"labels": {"a": "b"}})

    async def plant() -> None:
        await pool_of(knm_client).execute(
            "INSERT INTO k8s_node_locks (cluster_name, node, holder, task_id) "
            "VALUES ($1, 'w3', $2, $2)",
            cluster.name,
            finished["task_id"],
        )

    await knm_client.on_app(plant)
    status = await run_k8s("cordon", ["w3"])
    assert by_node(status)["w3"]["status"] == "success"
    assert await lock_holder(knm_client, cluster.name, "w3") is None


async def test_the_locks_active_tasks_hold_are_listed_with_their_holder(
    cluster: KubeCluster, start_k8s: Run, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    cluster.kube.add_pdb(NS, "web-pdb", {"app": "web"}, min_available=1)
    first = await start_k8s("drain", ["w1"], timeout=30, params={"drain_timeout": 2})

    async def locked() -> bool:
        return await lock_holder(knm_client, cluster.name, "w1") == first["task_id"]

    await eventually(locked)
    listed = await knm_client.get(
        "/locks", params={"cluster_name": cluster.name}, headers=admin_headers
    )
    data = listed.json()["data"]
    assert listed.status_code == 200 and data["total"] == 1
    (lock,) = data["locks"]
    assert {k: lock[k] for k in ("cluster_name", "node", "holder", "task_id", "kind")} == {
        "cluster_name": cluster.name,
        "node": "w1",
        "holder": first["task_id"],
        "task_id": first["task_id"],
        "kind": "k8s",
    }
    assert lock["username"] == "admin" and lock["acquired_at"].endswith("Z")
    other = await knm_client.get(
        "/locks", params={"cluster_name": "elsewhere"}, headers=admin_headers
    )
    assert other.json()["data"] == {"total": 0, "locks": []}
    await wait_for_task(knm_client, admin_headers, first["task_id"])
    # A finished holder's lock is no longer shown, even before anything reaps it.
    after = await knm_client.get("/locks", headers=admin_headers)
    assert cluster.name not in {lock["cluster_name"] for lock in after.json()["data"]["locks"]}


async def test_a_dry_run_names_the_lock_it_would_be_refused_and_takes_none(
    cluster: KubeCluster, start_k8s: Run, run_k8s: Run, knm_client: ApiClient
) -> None:
    cluster.kube.add_pdb(NS, "web-pdb", {"app": "web"}, min_available=1)
    first = await start_k8s("drain", ["w1"], timeout=30, params={"drain_timeout": 2})

    async def locked() -> bool:
        return await lock_holder(knm_client, cluster.name, "w1") == first["task_id"]

    await eventually(locked)
    for action in ("cordon", "drain"):
        dry = await run_k8s(action, ["w1", "w2"], params={"dry_run": True})
        w1, w2 = by_node(dry)["w1"], by_node(dry)["w2"]
        assert (w1["status"], w1["reason"]) == ("failed", "locked")
        assert w1["message"].startswith("dry run: node w1 is locked by task " + first["task_id"])
        assert w2["status"] == "success" and w2["message"].startswith("dry run: would")
        assert await lock_holder(knm_client, cluster.name, "w2") is None
    assert not cluster.kube.node("w2").unschedulable
