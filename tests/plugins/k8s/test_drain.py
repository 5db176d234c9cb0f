"""Draining through the Eviction API: budgets honoured, refusals, timeouts, dry runs."""

from __future__ import annotations

import threading
from typing import Any

from knm.testing.client import ApiClient
from knm.testing.kube import KubeCluster, Run

NS = "default"


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


def evictions(cluster: KubeCluster) -> list[tuple[str, int]]:
    return [
        (r.path.split("/")[-2], r.status)
        for r in cluster.kube.requests
        if r.method == "POST" and r.path.endswith("/eviction")
    ]


def pod_deletes(cluster: KubeCluster) -> list[str]:
    return [r.path for r in cluster.kube.requests if r.method == "DELETE"]


def names_on(cluster: KubeCluster, node: str) -> list[str]:
    return [p.name for p in cluster.kube.pods_on(node)]


def blocking_budget(cluster: KubeCluster) -> None:
    """``web-1`` is the only pod of its ReplicaSet and must stay available: never evictable."""
    cluster.kube.add_pdb(NS, "web-pdb", {"app": "web"}, min_available=1)


async def test_drain_waits_for_a_budget_and_never_violates_it(
    cluster: KubeCluster, run_k8s: Run, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    kube = cluster.kube
    kube.add_pod(NS, "web-2", "w1", labels={"app": "web"})
    # Two replicas, both on w1; one may be down at a time.
    kube.add_pdb(NS, "web-pdb", {"app": "web"}, max_unavailable=1)
    healthy: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            healthy.append(
                sum(p.healthy for p in kube.cluster.pods(NS) if p.labels == {"app": "web"})
            )
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status = await run_k8s("drain", ["w1"], timeout=60)
    finally:
        done.set()
        watcher.join()
    result = by_node(status)["w1"]
    assert result["status"] == "success", result
    assert sorted(result["evicted"]) == ["default/web-1", "default/web-2"]
    assert result["skipped"] == ["kube-system/agent-w1 (DaemonSet-managed)"]
    assert names_on(cluster, "w1") == ["agent-w1"]
    assert kube.node("w1").unschedulable
    # The second eviction was refused until the first pod's replacement was Ready elsewhere.
    assert ("web-2", 429) in evictions(cluster) or ("web-1", 429) in evictions(cluster)
    assert sorted(name for name, code in evictions(cluster) if code == 201) == ["web-1", "web-2"]
    assert pod_deletes(cluster) == []
    assert healthy and min(healthy) >= 1
    events = await knm_client.get(f"/tasks/{status['task_id']}/events", headers=admin_headers)
    blocked = [e for e in events.json()["data"]["entries"] if "blocked" in e.get("data", {})]
    assert blocked and blocked[0]["data"]["blocked"][0]["budget"] == "default/web-pdb"
    assert "web-pdb" in blocked[0]["message"]
    # Each pod is announced as it leaves (the budget let one go at a time: two announcements).
    evicted = [e for e in events.json()["data"]["entries"] if "evicted" in e.get("data", {})]
    assert [pod for e in evicted for pod in e["data"]["evicted"]] == result["evicted"]
    assert len(evicted) == 2 and evicted[0]["message"].startswith("w1: evicted default/web-")


async def test_a_drain_that_times_out_fails_and_leaves_the_node_cordoned(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    blocking_budget(cluster)
    status = await run_k8s("drain", ["w1"], timeout=10, params={"drain_timeout": 1})
    result = by_node(status)["w1"]
    assert (result["status"], result["reason"]) == ("failed", "drain_timeout")
    assert "default/web-1 (blocked by budget default/web-pdb)" in result["message"]
    assert result["remaining"] == ["default/web-1 (blocked by budget default/web-pdb)"]
    assert "stays cordoned" in result["message"]
    assert cluster.kube.node("w1").unschedulable
    assert "web-1" in names_on(cluster, "w1")


async def test_on_timeout_uncordon_gives_the_node_back(cluster: KubeCluster, run_k8s: Run) -> None:
    blocking_budget(cluster)
    params = {"drain_timeout": 1, "on_timeout": "uncordon"}
    status = await run_k8s("drain", ["w1"], timeout=10, params=params)
    result = by_node(status)["w1"]
    assert (result["status"], result["reason"]) == ("failed", "drain_timeout")
    assert result["message"].endswith("node uncordoned")
    node = cluster.kube.node("w1")
    assert not node.unschedulable and "knm.io/cordoned-by" not in node.annotations


async def test_on_timeout_delete_removes_the_remaining_pods(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    blocking_budget(cluster)
    params = {"drain_timeout": 1, "on_timeout": "delete"}
    status = await run_k8s("drain", ["w1"], timeout=10, params=params)
    result = by_node(status)["w1"]
    assert result["status"] == "success", result
    assert result["deleted"] == ["default/web-1"]
    assert names_on(cluster, "w1") == ["agent-w1"]
    assert pod_deletes(cluster) == ["/api/v1/namespaces/default/pods/web-1"]


async def test_a_dry_run_reports_and_changes_nothing(cluster: KubeCluster, run_k8s: Run) -> None:
    blocking_budget(cluster)
    cluster.kube.add_pod(NS, "loner", "w1", owner_kind=None)
    before = cluster.kube.cluster.resource_version
    cluster.kube.cluster.clear_requests()
    status = await run_k8s("drain", ["w1"], params={"dry_run": True})
    result = by_node(status)["w1"]
    assert result["status"] == "success"
    assert result["would_evict"] == ["default/web-1"]
    assert result["blocking_budgets"] == [
        "default/web-pdb allows 0 disruption(s) now; 1 of its pods are on the node"
    ]
    assert result["refused"] == [
        "default/loner: no controller manages it (params.force evicts it for good)"
    ]
    assert result["message"].startswith("dry run: would evict 1 pod(s)")
    assert {r.method for r in cluster.kube.requests} == {"GET"}
    assert cluster.kube.cluster.resource_version == before
    assert not cluster.kube.node("w1").unschedulable


async def test_daemonset_and_mirror_pods_are_skipped(cluster: KubeCluster, run_k8s: Run) -> None:
    status = await run_k8s("drain", ["w1", "cp1"])
    results = by_node(status)
    assert status["success_count"] == 2
    assert results["cp1"]["skipped"] == ["kube-system/etcd-cp1 (mirror pod)"]
    assert results["cp1"]["evicted"] == []
    assert results["w1"]["evicted"] == ["default/web-1"]
    assert names_on(cluster, "cp1") == ["etcd-cp1"] and names_on(cluster, "w1") == ["agent-w1"]
    assert {name for name, _ in evictions(cluster)} == {"web-1"}


async def test_unmanaged_and_emptydir_pods_are_refused_without_their_switches(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    kube = cluster.kube
    kube.add_pod(NS, "loner", "w2", owner_kind=None)
    kube.add_pod(NS, "cache-1", "w3", labels={"app": "cache"}, empty_dir=True)
    status = await run_k8s("drain", ["w2", "w3"])
    results = by_node(status)
    assert (results["w2"]["reason"], results["w3"]["reason"]) == ("refused", "refused")
    assert "default/loner: no controller manages it" in results["w2"]["message"]
    assert "default/cache-1: it has emptyDir data" in results["w3"]["message"]
    # Refused before anything changed.
    assert not kube.node("w2").unschedulable and not kube.node("w3").unschedulable
    assert evictions(cluster) == []

    forced = await run_k8s("drain", ["w2"], params={"force": True})
    assert by_node(forced)["w2"]["evicted"] == ["default/loner"]
    emptied = await run_k8s("drain", ["w3"], params={"delete_emptydir_data": True})
    assert by_node(emptied)["w3"]["evicted"] == ["default/cache-1"]
    assert names_on(cluster, "w2") == [] and names_on(cluster, "w3") == []
