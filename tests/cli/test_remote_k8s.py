"""``knm k8s cordon|uncordon|drain`` against a real server and the Kubernetes API stand-in: nodes
by name, by ``-n`` or by selector, action parameters, the per-node table, and exit codes that
follow the task."""

from __future__ import annotations

import itertools

from knm.client import Client
from knm.testing.k8s_standin import KubeStandin

from .conftest import Knm

CORDONED_BY = "knm.io/cordoned-by"
_names = itertools.count(1)


def register(admin: Client, kube: KubeStandin) -> str:
    name = f"kube-{next(_names)}"
    admin.create_cluster(name, "kubernetes", kubeconfig=kube.kubeconfig(), max_unavailable=3)
    return name


def by_node(status: dict) -> dict[str, dict]:
    return {r["node"]: r for r in status["results"]}


def test_cordon_and_uncordon_by_name_and_by_selector(
    knm: Knm, admin: Client, kube_standin: KubeStandin
) -> None:
    cluster = register(admin, kube_standin)
    cordoned = knm("k8s", "cordon", "w2", "-c", cluster, "-n", "w3")
    assert cordoned.code == 0, cordoned.err
    assert "completed" in cordoned.out and "2 succeeded, 0 failed" in cordoned.out
    assert "w2" in cordoned.out and "cordoned" in cordoned.out
    for node in ("w2", "w3"):
        assert kube_standin.node(node).unschedulable
    task_id = cordoned.out.split()[0]
    assert kube_standin.node("w2").annotations[CORDONED_BY] == task_id

    back = knm("k8s", "uncordon", "-c", cluster, "--selector", "pool=b", "--json")
    assert back.code == 0, back.err
    status = back.json()
    assert (status["action"], status["target_nodes"]) == ("uncordon", ["w3"])
    assert by_node(status)["w3"]["message"].startswith("uncordoned")
    assert not kube_standin.node("w3").unschedulable and kube_standin.node("w2").unschedulable


def test_drain_evicts_pods_and_takes_action_parameters(
    knm: Knm, admin: Client, kube_standin: KubeStandin
) -> None:
    cluster = register(admin, kube_standin)
    dry = knm("k8s", "drain", "w1", "-c", cluster, "--param", "dry_run=true", "--json")
    assert dry.code == 0, dry.err
    assert not kube_standin.node("w1").unschedulable
    assert "web-1" in [p.name for p in kube_standin.pods_on("w1")]

    drained = knm("k8s", "drain", "w1", "-c", cluster, "--timeout", "60", "--json")
    assert drained.code == 0, drained.err
    status = drained.json()
    assert status["status"] == "completed" and by_node(status)["w1"]["status"] == "success"
    assert kube_standin.node("w1").unschedulable
    left = [p.name for p in kube_standin.pods_on("w1")]
    assert "web-1" not in left and "agent-w1" in left  # DaemonSet pods stay


def test_a_refused_node_exits_1_and_bad_requests_exit_2_or_4(
    knm: Knm, admin: Client, kube_standin: KubeStandin
) -> None:
    cluster = register(admin, kube_standin)
    doc = kube_standin.cluster.node_doc("w3")
    doc["spec"]["unschedulable"] = True  # cordoned by hand: knm leaves it alone
    kube_standin.cluster.write_node("w3", doc, require_rv=False)
    refused = knm("k8s", "uncordon", "w2", "w3", "-c", cluster)
    assert refused.code == 1, refused.err
    row = next(line for line in refused.out.splitlines() if line.strip().startswith("w3"))
    assert "failed" in row and "refused" in row
    assert "1 succeeded, 1 failed" in refused.out
    forced = knm("k8s", "uncordon", "w3", "-c", cluster, "--param", "force=true")
    assert forced.code == 0, forced.err

    assert knm("k8s", "cordon", "-c", cluster).code == 2  # no nodes
    assert knm("k8s", "cordon", "w1", "-c", cluster, "--param", "novalue").code == 2
    unknown = knm("k8s", "cordon", "w9", "-c", cluster, "--json")
    assert unknown.code == 4 and unknown.json()["code"] == 422
    bad_param = knm("k8s", "drain", "w1", "-c", cluster, "--param", "grace=3", "--json")
    assert bad_param.code == 4 and bad_param.json()["code"] in (400, 422)
    no_cluster = knm("k8s", "cordon", "w1", "-c", "no-such-cluster", "--json")
    assert no_cluster.code == 4 and no_cluster.json()["code"] == 404
