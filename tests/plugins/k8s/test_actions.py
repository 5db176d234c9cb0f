"""The ``k8s`` executor's node actions, against the stand-in over a real socket."""

from __future__ import annotations

from typing import Any

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.k8s.api import Request, Response
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import KubeCluster, Run, register_kube_cluster, standin
from knm.testing.tasks import start_task, wait_for_task

CORDONED_BY = "knm.io/cordoned-by"


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


def cordon_by_hand(kube: KubeStandin, node: str) -> None:
    doc = kube.cluster.node_doc(node)
    doc["spec"]["unschedulable"] = True
    kube.cluster.write_node(node, doc, require_rv=False)


async def test_cordon_marks_the_node_as_knms_and_uncordon_undoes_it(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    status = await run_k8s("cordon", ["w2", "w3"])
    assert status["status"] == "completed" and status["action"] == "cordon"
    assert {r["message"] for r in status["results"]} == {"cordoned"}
    w2 = cluster.kube.node("w2")
    assert w2.unschedulable and w2.annotations[CORDONED_BY] == status["task_id"]
    assert "knm.io/cordoned-at" in w2.annotations

    again = await run_k8s("cordon", ["w2"])
    assert by_node(again)["w2"]["status"] == "success"
    # The first task has ended: the second takes its cordon over (a resumed workflow does).
    assert by_node(again)["w2"]["message"].startswith(
        f"already cordoned by knm (task {status['task_id']}, which has ended)"
    )

    back = await run_k8s("uncordon", ["w2", "w3"])
    assert back["success_count"] == 2
    assert by_node(back)["w2"]["message"].startswith("uncordoned (cordoned by knm task")
    w2 = cluster.kube.node("w2")
    assert not w2.unschedulable and CORDONED_BY not in w2.annotations
    idle = await run_k8s("uncordon", ["w2"])
    assert by_node(idle)["w2"]["message"] == "not cordoned"


async def test_a_node_cordoned_by_hand_is_never_uncordoned_without_force(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    cordon_by_hand(cluster.kube, "w3")
    kept = await run_k8s("cordon", ["w3"])
    assert by_node(kept)["w3"]["message"] == "already cordoned by hand; left as it is"
    assert CORDONED_BY not in cluster.kube.node("w3").annotations

    refused = await run_k8s("uncordon", ["w3"])
    result = by_node(refused)["w3"]
    assert refused["status"] == "failed"
    assert (result["status"], result["reason"]) == ("failed", "refused")
    assert "cordoned by hand" in result["message"] and "force" in result["message"]
    assert cluster.kube.node("w3").unschedulable

    forced = await run_k8s("uncordon", ["w3"], params={"force": True})
    assert by_node(forced)["w3"]["message"] == "uncordoned (cordoned by hand; forced)"
    assert not cluster.kube.node("w3").unschedulable


async def test_labels_and_taints_round_trip(cluster: KubeCluster, run_k8s: Run) -> None:
    labelled = await run_k8s("label", ["w1", "w2"], params={"labels": {"zone": "z1", "tier": ""}})
    assert labelled["success_count"] == 2
    assert cluster.kube.node("w1").labels["zone"] == "z1"
    same = await run_k8s("label", ["w1"], params={"labels": {"zone": "z1"}})
    assert by_node(same)["w1"]["message"] == "labels already set"
    await run_k8s("unlabel", ["w1"], params={"keys": ["zone", "tier", "absent"]})
    assert "zone" not in cluster.kube.node("w1").labels
    assert cluster.kube.node("w2").labels["zone"] == "z1"

    taint = {"key": "maint", "value": "yes", "effect": "NoExecute"}
    tainted = await run_k8s("taint", ["w1"], params=taint)
    assert by_node(tainted)["w1"]["message"] == "tainted maint=yes:NoExecute"
    changed = await run_k8s("taint", ["w1"], params={**taint, "value": "no"})
    assert by_node(changed)["w1"]["status"] == "success"
    taints = cluster.kube.node("w1").taints
    assert [(t.key, t.value, t.effect) for t in taints] == [("maint", "no", "NoExecute")]
    await run_k8s("taint", ["w1"], params={"key": "maint", "effect": "NoSchedule"})
    await run_k8s("untaint", ["w1"], params={"key": "maint", "effect": "NoExecute"})
    assert [(t.key, t.effect) for t in cluster.kube.node("w1").taints] == [("maint", "NoSchedule")]
    gone = await run_k8s("untaint", ["w1"], params={"key": "maint"})
    assert by_node(gone)["w1"]["message"] == "taint maint removed"
    assert cluster.kube.node("w1").taints == []


async def test_a_concurrent_change_to_the_node_is_kept_and_the_write_retried(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    api = cluster.kube.api
    original = api.handle
    injected: list[str] = []

    def handle(request: Request) -> Response:
        if request.method == "PATCH" and request.path == "/api/v1/nodes/w2" and not injected:
            # Someone else writes between knm's read and its write: knm's patch is stale.
            doc = cluster.kube.cluster.node_doc("w2")
            doc["metadata"]["labels"]["other-writer"] = "was-here"
            cluster.kube.cluster.write_node("w2", doc, require_rv=False)
            injected.append(request.path)
        return original(request)

    api.handle = handle  # type: ignore[method-assign]
    try:
        status = await run_k8s("label", ["w2"], params={"labels": {"mine": "1"}})
    finally:
        api.handle = original  # type: ignore[method-assign]
    result = by_node(status)["w2"]
    assert result["status"] == "success" and result["conflicts"] == 1
    assert "retried after 1 conflicting change" in result["message"]
    labels = cluster.kube.node("w2").labels
    assert labels["mine"] == "1" and labels["other-writer"] == "was-here"
    patches = [r.status for r in cluster.kube.requests if r.method == "PATCH"]
    assert patches == [409, 200]


async def test_selectors_resolve_on_the_clusters_real_labels(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    status = await run_k8s("label", target_selector="pool=a", params={"labels": {"picked": "1"}})
    assert sorted(status["target_nodes"]) == ["w1", "w2"]
    roles = await run_k8s(
        "label",
        target_selector="node-role.kubernetes.io/control-plane",
        params={"labels": {"picked": "cp"}},
    )
    assert roles["target_nodes"] == ["cp1"]
    assert cluster.kube.node("cp1").labels["picked"] == "cp"
    assert "picked" not in cluster.kube.node("w3").labels


async def test_wait_ready_after_a_reboot_waits_for_a_new_boot_id(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    before = cluster.kube.node("w3").info.boot_id
    recorded = await run_k8s("record_boot_id", ["w3"])
    assert by_node(recorded)["w3"]["boot_id"] == before
    assert cluster.kube.node("w3").annotations["knm.io/boot-id"] == before

    cluster.kube.reboot("w3")
    status = await run_k8s("wait_ready", ["w3"], params={"after_reboot": True}, timeout=30)
    result = by_node(status)["w3"]
    assert result["status"] == "success" and result["boot_id"] != before
    assert cluster.kube.node("w3").info.boot_id == result["boot_id"]

    plain = await run_k8s("wait_ready", ["w1"])
    assert by_node(plain)["w1"]["message"] == "Ready"
    unrecorded = await run_k8s("wait_ready", ["w2"], params={"after_reboot": True})
    assert by_node(unrecorded)["w2"]["reason"] == "no_boot_id"
    never = await run_k8s(
        "wait_ready",
        ["w1"],
        params={"after_reboot": True, "boot_id": cluster.kube.node("w1").info.boot_id},
        timeout=2,
    )
    assert by_node(never)["w1"]["reason"] == "not_ready"


async def test_wait_ready_compares_each_node_with_its_own_boot_id(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    """``boot_ids`` (what a workflow recorded right before its rebooting step) wins over the
    node's older annotation."""
    kube = cluster.kube
    await run_k8s("record_boot_id", ["w1", "w2"])
    kube.reboot("w1")
    kube.reboot("w2")
    await run_k8s("wait_ready", ["w1", "w2"], params={"after_reboot": True}, timeout=30)
    # Both rebooted once since the annotation; only w1 reboots again, after a new record.
    ids = {"w1": kube.node("w1").info.boot_id, "w2": kube.node("w2").info.boot_id}
    kube.reboot("w1")
    status = await run_k8s(
        "wait_ready", ["w1", "w2"], params={"after_reboot": True, "boot_ids": ids}, timeout=3
    )
    assert by_node(status)["w1"]["status"] == "success"
    assert by_node(status)["w2"]["reason"] == "not_ready"


async def test_cordon_takes_over_the_knm_cordon_of_a_finished_task(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    first = await run_k8s("cordon", ["w2"])
    assert cluster.kube.node("w2").annotations["knm.io/cordoned-by"] == first["task_id"]
    second = await run_k8s("cordon", ["w2"])
    assert cluster.kube.node("w2").annotations["knm.io/cordoned-by"] == second["task_id"]
    await run_k8s("uncordon", ["w2"])


async def test_a_waiting_task_is_cancelled(
    cluster: KubeCluster, start_k8s: Run, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    cluster.kube.set_ready("w2", False)
    task = await start_k8s("wait_ready", ["w2"], timeout=120)
    cancel = await knm_client.post(
        f"/automation/k8s/cancel/{task['task_id']}", headers=admin_headers
    )
    assert_envelope(cancel, 200)
    status = await wait_for_task(knm_client, admin_headers, task["task_id"])
    assert status["status"] == "cancelled"
    assert by_node(status)["w2"]["reason"] == "cancelled"


async def test_actions_and_params_are_checked_before_a_task_exists(
    cluster: KubeCluster, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    async def execute(**body: Any) -> Any:
        request = {"cluster_name": cluster.name, "target_nodes": ["w1"], **body}
        return await knm_client.post("/automation/k8s/execute", json=request, headers=admin_headers)

    assert_envelope(await execute(action="reboot"), 400)
    unknown = await execute(action="uncordon", params={"forse": True})
    assert assert_envelope(unknown, 400)["error"].endswith(
        "`forse`; uncordon takes: force, dry_run"
    )
    drain_typo = await execute(action="drain", params={"grace": 30})
    takes = assert_envelope(drain_typo, 400)["error"].partition("; drain takes: ")[2]
    assert "grace_period" in takes.split(", ")
    typed = await execute(action="uncordon", params={"force": "yes"})
    assert "params.force" in assert_envelope(typed, 400)["error"]
    missing = await execute(action="label", params={})
    assert "labels" in assert_envelope(missing, 400)["error"]
    effect = await execute(action="taint", params={"key": "k", "effect": "Sometimes"})
    assert "params.effect" in assert_envelope(effect, 400)["error"]
    bad_label = await execute(action="label", params={"labels": {"a/b/c": "x"}})
    assert "a/b/c" in assert_envelope(bad_label, 422)["error"]
    grace = await execute(action="drain", params={"grace_period": -1})
    assert "grace_period" in assert_envelope(grace, 422)["error"]
    ghost = await execute(action="cordon", target_nodes=["ghost"])
    assert "ghost" in assert_envelope(ghost, 422)["error"]
    none_matched = await execute(action="cordon", target_nodes=[], target_selector="pool=zzz")
    assert_envelope(none_matched, 422)
    static = await knm_client.post(
        "/clusters",
        json={"name": "hand", "kind": "static", "nodes": [{"name": "w1", "address": "10.0.0.1"}]},
        headers=admin_headers,
    )
    assert_envelope(static, 201)
    wrong_kind = await execute(action="cordon", cluster_name="hand")
    assert "kubernetes cluster" in assert_envelope(wrong_kind, 422)["error"]


async def test_an_unreachable_api_server_fails_every_node_and_the_task_ends(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    kube = standin()
    name = await register_kube_cluster(knm_client, admin_headers, kube, "unreachable")
    kube.stop()
    task = await start_task(
        knm_client, admin_headers, "k8s", cluster_name=name, target_nodes=["w1", "w2"],
        action="cordon",
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, task["task_id"])
    assert status["status"] == "failed" and status["failed_count"] == 2
    for result in status["results"]:
        assert result["reason"] == "api_unreachable"
        assert "unreachable" in result["message"] and name in result["message"]
    selector = await knm_client.post(
        "/automation/k8s/execute",
        json={"cluster_name": name, "target_selector": "pool=a", "action": "cordon"},
        headers=admin_headers,
    )
    assert_envelope(selector, 503)


async def test_cordon_and_uncordon_dry_runs_say_what_would_happen_and_change_nothing(
    cluster: KubeCluster, run_k8s: Run
) -> None:
    cordon_by_hand(cluster.kube, "w3")
    before = cluster.kube.cluster.resource_version
    cluster.kube.cluster.clear_requests()
    dry = by_node(await run_k8s("cordon", ["w2", "w3"], params={"dry_run": True}))
    assert dry["w2"]["message"] == "dry run: would cordon" and dry["w2"]["would_change"]
    assert dry["w3"]["message"] == "dry run: already cordoned by hand; left as it is"
    undo = await run_k8s("uncordon", ["w2", "w3"], params={"dry_run": True})
    assert by_node(undo)["w2"]["message"] == "dry run: not cordoned"
    w3 = by_node(undo)["w3"]
    assert (w3["status"], w3["reason"]) == ("failed", "refused")
    assert "cordoned by hand" in w3["message"] and "force" in w3["message"]
    forced = await run_k8s("uncordon", ["w3"], params={"dry_run": True, "force": True})
    assert by_node(forced)["w3"]["message"] == "dry run: would uncordon (cordoned by hand; forced)"
    assert {r.method for r in cluster.kube.requests} == {"GET"}
    assert cluster.kube.cluster.resource_version == before
    assert not cluster.kube.node("w2").unschedulable and cluster.kube.node("w3").unschedulable

    done = await run_k8s("cordon", ["w2"])
    knm_mark = by_node(await run_k8s("uncordon", ["w2"], params={"dry_run": True}))["w2"]
    assert (
        knm_mark["message"] == f"dry run: would uncordon (cordoned by knm task {done['task_id']})"
    )
    assert cluster.kube.node("w2").unschedulable
