"""The Kubernetes stand-in, exercised only through the official ``kubernetes`` client.

The client deserialises every response into its strict models, so these tests
also prove that the stand-in sends every field a real API server would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client import ApiClient, ApiException

from knm.testing.k8s_standin import KubeStandin, Timings

T = TypeVar("T")
TOKEN = "standin-test-token"
NS = "default"
KNM = "knm.io/cordoned-by"


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll until ``predicate`` returns something truthy; deadlines are generous on purpose."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def status_of(exc: ApiException) -> dict[str, object]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def ready_status(node: client.V1Node) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


@pytest.fixture
def kube() -> Iterator[KubeStandin]:
    with KubeStandin(token=TOKEN, timings=Timings(reboot_duration=0.5)) as standin:
        standin.add_node("n1", labels={"pool": "a", "gpu": "true"})
        standin.add_node("n2", labels={"pool": "b"}, addresses={"InternalIP": "192.0.2.2"})
        standin.add_node(
            "n3",
            labels={"pool": "c", "gpu": "false"},
            addresses=[("InternalIP", "192.0.2.3"), ("ExternalIP", "198.51.100.3")],
        )
        yield standin


@pytest.fixture
def api(kube: KubeStandin) -> Iterator[ApiClient]:
    with config.new_client_from_config_dict(yaml.safe_load(kube.kubeconfig())) as api_client:
        yield api_client


@pytest.fixture
def core(api: ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def test_version_and_discovery(api: ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    assert {g.name for g in client.ApisApi(api).get_api_versions().groups} >= {"apps", "policy"}
    names = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"nodes", "pods", "pods/eviction"} <= names


def test_nodes_have_required_fields(core: client.CoreV1Api) -> None:
    node = core.read_node("n3")
    info = node.status.node_info
    assert info.boot_id and info.machine_id and info.kubelet_version.startswith("v1.")
    assert ready_status(node) == "True"
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses == {
        "InternalIP": "192.0.2.3",
        "ExternalIP": "198.51.100.3",
        "Hostname": "n3",
    }
    assert node.metadata.labels["kubernetes.io/hostname"] == "n3"
    assert int(node.metadata.resource_version) > 0


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("pool=a", ["n1"]),
        ("pool==b", ["n2"]),
        ("pool!=a", ["n2", "n3"]),
        ("pool in (a, b)", ["n1", "n2"]),
        ("pool notin (a,b)", ["n3"]),
        ("gpu", ["n1", "n3"]),
        ("!gpu", ["n2"]),
        ("gpu,pool in (a,c),gpu!=false", ["n1"]),
    ],
)
def test_list_nodes_label_selector(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    assert [n.metadata.name for n in core.list_node(label_selector=selector).items] == expected


def test_list_nodes_field_selector_and_bad_selectors(core: client.CoreV1Api) -> None:
    assert [n.metadata.name for n in core.list_node(field_selector="metadata.name=n2").items] == [
        "n2"
    ]
    with pytest.raises(ApiException) as bad_label:
        core.list_node(label_selector="pool in a")
    assert bad_label.value.status == 400
    assert status_of(bad_label.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as bad_field:
        core.list_node(field_selector="status.bogus=x")
    assert "field label not supported" in status_of(bad_field.value)["message"]


def test_missing_node_is_404_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        core.read_node("nope")
    assert excinfo.value.status == 404
    body = status_of(excinfo.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'nodes "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "nodes"}


def test_cordon_and_label_patches(kube: KubeStandin, core: client.CoreV1Api) -> None:
    before = core.read_node("n1")
    cordoned = core.patch_node("n1", {"spec": {"unschedulable": True}})
    assert cordoned.spec.unschedulable is True
    assert int(cordoned.metadata.resource_version) > int(before.metadata.resource_version)
    assert kube.node("n1").unschedulable

    labelled = core.patch_node("n1", {"metadata": {"labels": {"knm/drained": "yes", "gpu": None}}})
    assert labelled.metadata.labels["knm/drained"] == "yes"
    assert "gpu" not in labelled.metadata.labels
    assert labelled.metadata.labels["pool"] == "a"

    merged = core.patch_node(
        "n1",
        {"spec": {"unschedulable": None}},
        _content_type="application/merge-patch+json",
    )
    assert not merged.spec.unschedulable
    patched = core.patch_node(
        "n1",
        [{"op": "add", "path": "/metadata/labels/zone", "value": "z1"}],
        _content_type="application/json-patch+json",
    )
    assert patched.metadata.labels["zone"] == "z1"
    # A no-op patch must not bump resourceVersion, as on the real server.
    again = core.patch_node("n1", {"metadata": {"labels": {"zone": "z1"}}})
    assert again.metadata.resource_version == patched.metadata.resource_version
    # Status is not writable through the main resource.
    kept = core.patch_node("n1", {"status": {"nodeInfo": {"bootID": "forged"}}})
    assert kept.status.node_info.boot_id == kube.node("n1").info.boot_id


def test_taints_round_trip(core: client.CoreV1Api) -> None:
    taint = {"key": "knm/maintenance", "value": "true", "effect": "NoSchedule"}
    node = core.patch_node("n2", {"spec": {"taints": [taint]}})
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        ("knm/maintenance", "true", "NoSchedule")
    ]
    # Taints have no merge key: a strategic patch replaces the whole list.
    node = core.patch_node("n2", {"spec": {"taints": [{"key": "other", "effect": "NoExecute"}]}})
    assert [t.key for t in node.spec.taints] == ["other"]
    assert node.spec.taints[0].time_added is not None
    node.spec.taints.append(client.V1Taint(key="knm/maintenance", effect="PreferNoSchedule"))
    node = core.replace_node("n2", node)
    assert [t.key for t in core.read_node("n2").spec.taints] == ["other", "knm/maintenance"]
    assert not core.patch_node("n2", {"spec": {"taints": []}}).spec.taints
    with pytest.raises(ApiException) as excinfo:
        core.patch_node("n2", {"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}})
    assert excinfo.value.status == 422
    assert status_of(excinfo.value)["reason"] == "Invalid"


def test_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    stale = core.read_node("n3")
    core.patch_node("n3", {"metadata": {"labels": {"touched": "1"}}})
    stale.metadata.labels["mine"] = "1"
    with pytest.raises(ApiException) as excinfo:
        core.replace_node("n3", stale)
    assert excinfo.value.status == 409
    body = status_of(excinfo.value)
    assert body["reason"] == "Conflict"
    assert body["details"] == {"name": "n3", "kind": "nodes"}
    with pytest.raises(ApiException) as patch_conflict:
        core.patch_node(
            "n3",
            {
                "metadata": {
                    "resourceVersion": stale.metadata.resource_version,
                    "labels": {"x": "y"},
                }
            },
        )
    assert patch_conflict.value.status == 409

    fresh = core.read_node("n3")
    fresh.metadata.labels["mine"] = "1"
    replaced = core.replace_node("n3", fresh)
    assert replaced.metadata.labels["mine"] == "1"
    assert replaced.metadata.labels["touched"] == "1"


def test_pods_on_a_node(kube: KubeStandin, core: client.CoreV1Api) -> None:
    kube.add_pod(NS, "web-1", "n1", labels={"app": "web"})
    kube.add_pod(NS, "web-2", "n2", labels={"app": "web"})
    kube.add_pod("other", "db-1", "n1", labels={"app": "db"}, owner_kind=None)
    on_n1 = core.list_pod_for_all_namespaces(
        field_selector="spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed"
    )
    assert sorted((p.metadata.namespace, p.metadata.name) for p in on_n1.items) == [
        (NS, "web-1"),
        ("other", "db-1"),
    ]
    web = core.list_namespaced_pod(NS, label_selector="app=web")
    assert [p.metadata.name for p in web.items] == ["web-1", "web-2"]
    pod = core.read_namespaced_pod("web-2", NS)
    assert pod.spec.node_name == "n2"
    assert pod.status.phase == "Running"
    assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    assert pod.status.host_ip == "192.0.2.2"
    assert [(p.namespace, p.name) for p in kube.pods_on("n1")] == [(NS, "web-1"), ("other", "db-1")]
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_pod("web-2", "other")
    assert status_of(excinfo.value)["message"] == 'pods "web-2" not found'


def test_daemonset_mirror_and_emptydir_pods(kube: KubeStandin, api: ApiClient) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    kube.add_pod("kube-system", "agent-x1", "n1", owner_kind="DaemonSet", labels={"app": "agent"})
    kube.add_pod("kube-system", "etcd-n1", "n1", mirror=True)
    kube.add_pod(NS, "cache-1", "n1", empty_dir=True, labels={"app": "cache"})
    kube.add_pod(NS, "bare", "n1", owner_kind=None)

    ds_pod = core.read_namespaced_pod("agent-x1", "kube-system")
    (owner,) = ds_pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("DaemonSet", "agent", True)
    daemonset = apps.read_namespaced_daemon_set("agent", "kube-system")
    assert daemonset.metadata.uid == owner.uid
    assert daemonset.status.desired_number_scheduled == 1

    mirror = core.read_namespaced_pod("etcd-n1", "kube-system")
    assert "kubernetes.io/config.mirror" in mirror.metadata.annotations
    assert mirror.metadata.owner_references[0].kind == "Node"

    cache = core.read_namespaced_pod("cache-1", NS)
    assert any(v.empty_dir is not None for v in cache.spec.volumes)
    replica_set = apps.read_namespaced_replica_set(cache.metadata.owner_references[0].name, NS)
    assert replica_set.spec.replicas == 1
    assert replica_set.status.ready_replicas == 1

    assert core.read_namespaced_pod("bare", NS).metadata.owner_references is None
    with pytest.raises(ApiException) as excinfo:
        apps.read_namespaced_replica_set("missing", NS)
    assert status_of(excinfo.value)["details"] == {
        "name": "missing",
        "group": "apps",
        "kind": "replicasets",
    }


def evict(core: client.CoreV1Api, name: str, namespace: str = NS) -> None:
    core.create_namespaced_pod_eviction(
        name,
        namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace)),
    )


def gone(core: client.CoreV1Api, name: str, namespace: str = NS) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_eviction_allowed_and_replacement_scheduled(
    kube: KubeStandin, core: client.CoreV1Api
) -> None:
    kube.add_pod(NS, "web-1", "n1", labels={"app": "web"})
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    evict(core, "web-1")
    assert kube.requests[-1].status == 201
    wait_for(lambda: gone(core, "web-1"))

    def replacement() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(NS, label_selector="app=web").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    new = wait_for(replacement)
    assert new.metadata.name.startswith("web-") and new.metadata.name != "web-1"
    assert new.spec.node_name in ("n2", "n3")
    wait_for(lambda: kube.cluster.pod(NS, new.metadata.name).ready)


def test_eviction_blocked_by_budget_until_replacement_ready(
    kube: KubeStandin, api: ApiClient
) -> None:
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    kube.add_pod(NS, "web-1", "n1", labels={"app": "web"})
    kube.add_pod(NS, "web-2", "n1", labels={"app": "web"})
    kube.add_pdb(NS, "web-pdb", {"app": "web"}, max_unavailable=1)
    budget = policy.read_namespaced_pod_disruption_budget("web-pdb", NS)
    assert (budget.status.current_healthy, budget.status.desired_healthy) == (2, 1)
    assert budget.status.expected_pods == 2
    assert budget.status.disruptions_allowed == 1

    # With every node cordoned the replacement stays Pending, so the budget is
    # exhausted for as long as the test needs, regardless of timing.
    for node in ("n1", "n2", "n3"):
        core.patch_node(node, {"spec": {"unschedulable": True}})
    evict(core, "web-1")
    with pytest.raises(ApiException) as excinfo:
        evict(core, "web-2")
    assert excinfo.value.status == 429
    body = status_of(excinfo.value)
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    (cause,) = body["details"]["causes"]
    assert cause["type"] == "DisruptionBudget"
    assert "web-pdb" in cause["message"]
    listed = policy.list_pod_disruption_budget_for_all_namespaces().items
    assert [b.status.disruptions_allowed for b in listed] == [0]
    pending = wait_for(
        lambda: [p for p in core.list_namespaced_pod(NS).items if p.status.phase == "Pending"]
    )
    assert pending[0].spec.node_name is None
    core.patch_node("n3", {"spec": {"unschedulable": False}})

    def try_evict() -> bool:
        try:
            evict(core, "web-2")
        except ApiException as exc:
            if exc.status == 429:
                return False
            raise
        return True

    wait_for(try_evict)
    healthy = [p for p in kube.cluster.pods(NS) if p.healthy]
    assert healthy and all(p.node == "n3" for p in healthy)


def test_eviction_of_missing_pod_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        evict(core, "ghost")
    assert excinfo.value.status == 404
    assert status_of(excinfo.value)["reason"] == "NotFound"


def test_budget_percentages(kube: KubeStandin, api: ApiClient) -> None:
    for i, node in enumerate(["n1", "n2", "n3", "n1"]):
        kube.add_pod(NS, f"api-{i}", node, labels={"app": "api"})
    kube.add_pdb(NS, "half", {"app": "api"}, min_available="50%")
    kube.add_pdb("other", "all", None, max_unavailable="25%")
    half = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("half", NS).status
    assert (half.expected_pods, half.desired_healthy, half.disruptions_allowed) == (4, 2, 2)
    kube.cluster.set_pod_ready(NS, "api-0", False)
    half = kube.cluster.pdb(NS, "half").status
    assert half is not None
    assert (half.current_healthy, half.disruptions_allowed) == (3, 1)


def test_delete_honours_grace_period(kube: KubeStandin, core: client.CoreV1Api) -> None:
    kube.add_pod(NS, "slow", "n2", owner_kind=None)
    kube.add_pod(NS, "fast", "n2", owner_kind=None)
    deleted = core.delete_namespaced_pod("slow", NS, grace_period_seconds=20)
    assert deleted.metadata.deletion_grace_period_seconds == 20
    assert deleted.metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("fast", NS, grace_period_seconds=0)
    assert gone(core, "fast")
    wait_for(lambda: gone(core, "slow"))
    # Unowned pods are not replaced.
    assert kube.pods_on("n2") == []


def node_if(core: client.CoreV1Api, name: str, *, ready: bool) -> client.V1Node | None:
    node = core.read_node(name)
    return node if (ready_status(node) == "True") == ready else None


def test_reboot_changes_boot_id(kube: KubeStandin, core: client.CoreV1Api) -> None:
    kube.add_pod(NS, "web-1", "n3", labels={"app": "web"})
    boot_id = core.read_node("n3").status.node_info.boot_id
    # The HTTP hook is what an SSH fleet in another process calls on `reboot`.
    request = urllib.request.Request(
        f"{kube.url}/_standin/nodes/n3/reboot",
        data=json.dumps({"duration": 2.0}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    down = wait_for(lambda: node_if(core, "n3", ready=False))
    assert down.status.node_info.boot_id == boot_id
    assert any(t.key == "node.kubernetes.io/unreachable" for t in down.spec.taints)
    up = wait_for(lambda: node_if(core, "n3", ready=True))
    assert up.status.node_info.boot_id != boot_id
    assert not up.spec.taints
    wait_for(lambda: core.read_namespaced_pod("web-1", NS).status.container_statuses[0].ready)
    assert kube.cluster.pod(NS, "web-1").restart_count == 1


def test_set_ready_false(kube: KubeStandin, core: client.CoreV1Api) -> None:
    kube.set_ready("n2", False)
    node = core.read_node("n2")
    assert ready_status(node) == "False"
    assert [t.key for t in node.spec.taints] == ["node.kubernetes.io/not-ready"]
    kube.set_ready("n2", True)
    assert ready_status(core.read_node("n2")) == "True"


def test_wrong_token_is_401(kube: KubeStandin) -> None:
    kubeconfig = yaml.safe_load(kube.kubeconfig(user_token="wrong", context="bad"))
    with (
        config.new_client_from_config_dict(kubeconfig, context="bad") as api_client,
        pytest.raises(ApiException) as excinfo,
    ):
        client.CoreV1Api(api_client).list_node()
    assert excinfo.value.status == 401
    assert status_of(excinfo.value)["reason"] == "Unauthorized"
    assert kube.requests[-1].status == 401


def test_request_log(kube: KubeStandin, core: client.CoreV1Api) -> None:
    kube.cluster.clear_requests()
    core.read_node("n1")
    with pytest.raises(ApiException):
        core.read_node("zz")
    assert [(r.method, r.path, r.status) for r in kube.requests] == [
        ("GET", "/api/v1/nodes/n1", 200),
        ("GET", "/api/v1/nodes/zz", 404),
    ]


def test_stop_frees_the_port() -> None:
    standin = KubeStandin().start()
    port = standin.port
    with config.new_client_from_config_dict(yaml.safe_load(standin.kubeconfig())) as api_client:
        # An open keep-alive connection must not keep the server alive.
        client.CoreV1Api(api_client).list_node()
        standin.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with KubeStandin(port=port) as again:
        assert again.port == port


def test_runs_as_a_separate_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "knm.testing.k8s_standin", "--port", "0", "--node", "solo"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/api/v1/nodes", timeout=5) as response:
            names = [n["metadata"]["name"] for n in json.load(response)["items"]]
        assert names == ["solo"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_history_records_every_change_in_order(
    kube: KubeStandin, core: client.CoreV1Api
) -> None:
    kube.add_pod(NS, "web-1", "n1", labels={"app": "web"}, owner_name="web")
    kube.add_pod(NS, "web-2", "n2", labels={"app": "web"}, owner_name="web")
    core.patch_node(
        "n1",
        {"spec": {"unschedulable": True}, "metadata": {"annotations": {KNM: "workflow-1"}}},
    )
    evict(core, "web-1")
    wait_for(lambda: gone(core, "web-1"))
    core.delete_namespaced_pod("web-2", NS)
    kube.reboot("n1")
    wait_for(lambda: node_if(core, "n1", ready=True) if kube.history[-1].kind == "boot" else None)
    core.patch_node(
        "n1", {"spec": {"unschedulable": False}, "metadata": {"annotations": {KNM: None}}}
    )
    kinds = [(e.kind, e.node) for e in kube.history if e.kind != "deletion" or e.pod]
    assert kinds[:2] == [("node", "n1"), ("eviction", "n1")]
    assert ("deletion", "n2") in kinds
    assert kinds[-3:] == [("reboot", "n1"), ("boot", "n1"), ("node", "n1")]
    reboot = next(e for e in kube.history if e.kind == "reboot")
    assert reboot.by == "test" and reboot.unschedulable and reboot.cordoned_by == "workflow-1"
    assert [e.seq for e in kube.history] == list(range(len(kube.history)))
    assert kube.cluster.violations() == []


def test_a_reboot_a_node_asks_for_with_a_budget_at_its_limit_is_a_violation(
    kube: KubeStandin,
) -> None:
    for i, node in enumerate(("n1", "n2"), start=1):
        kube.add_pod(NS, f"db-{i}", node, labels={"app": "db"}, owner_name="db")
    kube.add_pdb(NS, "db", {"app": "db"}, min_available=2)
    kube.reboot("n3")  # no budgeted pods there
    kube.reboot("n2")  # the test's own: never counted against knm
    request = urllib.request.Request(f"{kube.url}/_standin/nodes/n1/reboot", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    (violation,) = kube.cluster.violations()
    assert violation.kind == "reboot" and violation.node == "n1" and violation.by == "node"
    assert violation.pods == (f"{NS}/db-1",)
    assert violation.violations[0].startswith(f"{NS}/db:")


def test_deleting_a_pod_its_budget_cannot_spare_is_a_violation(
    kube: KubeStandin, core: client.CoreV1Api
) -> None:
    kube.add_pod(NS, "db-1", "n1", labels={"app": "db"}, owner_name="db")
    kube.add_pdb(NS, "db", {"app": "db"}, min_available=1)
    core.delete_namespaced_pod("db-1", NS)
    (violation,) = kube.cluster.violations()
    assert violation.kind == "deletion" and violation.pod == f"{NS}/db-1"
