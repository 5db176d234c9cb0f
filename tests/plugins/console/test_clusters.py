"""The console's Clusters pages in a real browser against a real ``knm serve`` and the Kubernetes
stand-in (``knm.testing.kube``) that knm's official kubernetes client talks to: the nodes as the
stand-in has them, cordon / uncordon / drain with their dry run first, and the dashboard's
clusters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import standin
from knm.testing.process import KnmProcess

from .conftest import WAIT, Console, api, login_token

pytestmark = pytest.mark.slow

CLUSTER = "kube"
CORDONED_BY = "knm.io/cordoned-by"
OPERATOR = ("oper", "oper-passw0rd")
VIEWER = ("looker", "looker-passw0rd")
#: A static inventory (never contacted here): knm cannot tell its nodes' Ready or cordons.
STATIC = "racks"
_STATIC_NODE = {"name": "r1", "address": "192.0.2.99", "labels": {"rack": "7"}}


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStandin]:
    """The stand-in's small cluster (cp1 tainted, w1-w3 in pools a and b, web-1 on w1) and two
    nodes more: ``hand1`` cordoned by hand and ``sick1`` NotReady with a taint of its own."""
    found = standin()
    found.add_node("hand1", labels={"pool": "b"}, unschedulable=True)
    found.add_node(
        "sick1",
        labels={"pool": "c", "disk": "ssd"},
        ready=False,
        taints=[{"key": "maintenance", "value": "soon", "effect": "PreferNoSchedule"}],
    )
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, kube: KubeStandin
) -> Iterator[KnmProcess]:
    proc = KnmProcess(tmp_path_factory.mktemp("console-k8s"), knm_database_url, ["serve"], {})
    proc.start()
    try:
        with api(proc, login_token(proc, "admin", TEST_ADMIN_PASSWORD)) as admin:
            body = {
                "name": CLUSTER,
                "kind": "kubernetes",
                "kubeconfig": kube.kubeconfig(),
                "description": "the stand-in",
                "max_unavailable": 5,
            }
            created = admin.post("/clusters", json=body)
            assert created.status_code == 201, created.text
            static = {"name": STATIC, "kind": "static", "nodes": [_STATIC_NODE]}
            created = admin.post("/clusters", json=static)
            assert created.status_code == 201, created.text
            for username, password, role in ((*OPERATOR, "operator"), (*VIEWER, "viewer")):
                user = admin.post(
                    "/users", json={"username": username, "password": password, "role": role}
                )
                assert user.status_code == 201, user.text
        yield proc
    finally:
        proc.stop()


def _row(console: Console, node: str, cell: str = "") -> Any:
    return console.find(f"#node-table tr[data-node='{node}'] {cell}".strip())


def _text(console: Console, css: str) -> str:
    """The element's text, found again while its table is being redrawn (rows replaced)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(50):
        try:
            return console.find(css).text
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{css} never settled")


def _cell(console: Console, node: str, cell: str) -> str:
    return _text(console, f"#node-table tr[data-node='{node}'] {cell}")


def _k8s(admin: httpx.Client, action: str, nodes: list[str], **body: Any) -> str:
    request = {"cluster_name": CLUSTER, "target_nodes": nodes, "action": action, **body}
    answer = admin.post("/automation/k8s/execute", json=request)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


def _finished(admin: httpx.Client, task_id: str) -> dict[str, Any]:
    end = time.monotonic() + WAIT
    while True:
        data = admin.get(f"/tasks/{task_id}").json()["data"]
        if data["status"] in ("completed", "failed", "cancelled"):
            return data
        assert time.monotonic() < end, data
        time.sleep(0.2)


def _give_back(admin: httpx.Client, kube: KubeStandin, node: str) -> None:
    """Leaves ``node`` schedulable again for the next test."""
    _finished(admin, _k8s(admin, "uncordon", [node], params={"force": True}))
    assert not kube.node(node).unschedulable


def _taints(kube: KubeStandin, node: str) -> list[str]:
    """The node's taints as the stand-in serves them (a NotReady node's included)."""
    taints = kube.cluster.node_doc(node)["spec"].get("taints") or []
    return [f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}" for t in taints]


def _set_unschedulable(kube: KubeStandin, node: str, value: bool) -> None:
    """A change made on the cluster by hand, not through knm."""
    doc = kube.cluster.node_doc(node)
    doc["spec"]["unschedulable"] = value
    kube.cluster.write_node(node, doc, require_rv=False)


def _schedulable(admin: httpx.Client, node: str) -> bool:
    nodes = admin.get(f"/clusters/{CLUSTER}/nodes", params={"page_size": 100}).json()["data"]
    return next(n for n in nodes["nodes"] if n["name"] == node)["schedulable"]


def _pick(console: Console, *nodes: str) -> None:
    for node in nodes:
        _row(console, node, "input.pick").click()
    console.wait(lambda d: all(n in console.find("#picked").text for n in nodes))


@pytest.mark.timeout(240)
def test_a_clusters_nodes_show_labels_taints_and_ready_as_the_stand_in_has_them(
    console: Console, kube: KubeStandin
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.find("#nav-clusters").click()
    row = console.find(f"#cluster-list tr[data-cluster='{CLUSTER}']")
    console.wait(lambda d: row.find_element("css selector", "td.nodes").text == "6")
    assert row.find_element("css selector", "td.ready").text == "5"
    assert row.find_element("css selector", "td.not-ready").text == "1"
    assert row.find_element("css selector", "td.cordoned").text == "1 (1 by hand)"
    assert row.find_element("css selector", "td:nth-child(2)").text == "kubernetes"
    console.shot("clusters")
    row.find_element("css selector", "a").click()
    console.wait(lambda d: d.current_url.endswith(f"#/clusters/{CLUSTER}"))
    _row(console, "sick1")
    names = [r.get_attribute("data-node") for r in console.all("#node-table tbody tr")]
    assert names == sorted(node.name for node in kube.cluster.nodes())
    sick = _row(console, "sick1")
    assert sick.find_element("css selector", "td.ready").text == "NotReady"
    assert _cell(console, "w1", "td.ready") == "Ready"
    chips = [c.text for c in sick.find_elements("css selector", "td.labels .chip")]
    assert "disk=ssd" in chips and "pool=c" in chips
    # Taints as the stand-in has them: its own, and the one a NotReady node gets.
    shown = [c.text for c in sick.find_elements("css selector", "td.taints .chip")]
    assert shown == _taints(kube, "sick1")
    assert "maintenance=soon:PreferNoSchedule" in shown
    cp1 = [c.text for c in console.all("#node-table tr[data-node='cp1'] td.taints .chip")]
    assert cp1 == _taints(kube, "cp1") == ["node-role.kubernetes.io/control-plane:NoSchedule"]
    assert _cell(console, "cp1", "td.roles") == "control-plane"
    # Cordoned on the cluster by someone else, not by knm: the page says so.
    assert _cell(console, "hand1", "td.schedulable") == "cordoned"
    assert _cell(console, "hand1", "td.cordoned-by") == "by hand"
    assert _cell(console, "w2", "td.cordoned-by") == "no"
    assert (
        "6 nodes, 5 Ready, 1 NotReady, 1 cordoned (1 by hand), 0 locked"
        in console.find("#node-summary").text
    )
    console.shot("cluster-nodes")
    # Filtering: by label selector (the API's), then by part of a name.
    console.find("#node-selector").send_keys("pool=a")
    console.find("#node-filter-apply").click()
    console.wait(lambda d: "selector=pool%3Da" in d.current_url)
    console.wait(
        lambda d: (
            [r.get_attribute("data-node") for r in console.all("#node-table tbody tr")]
            == ["w1", "w2"]
        )
    )
    console.find("#node-name").send_keys("2")
    console.find("#node-filter-apply").click()
    console.wait(
        lambda d: (
            [r.get_attribute("data-node") for r in console.all("#node-table tbody tr")] == ["w2"]
        )
    )
    # A selector the API refuses is shown as its error, not a blank page.
    console.open(f"#/clusters/{CLUSTER}?selector=pool%3D%3D%3Da%20b")
    problem = console.find("#nodes-problem .problem")
    assert "422" in problem.text and "invalid label selector" in problem.text
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_cordon_runs_as_a_dry_run_first_and_changes_the_node_only_after_confirm(
    console: Console, kube: KubeStandin, admin: httpx.Client
) -> None:
    try:
        console.login(*OPERATOR)
        console.open(f"#/clusters/{CLUSTER}")
        assert console.find("#act-cordon").get_attribute("disabled") is not None
        _pick(console, "w2", "hand1")
        console.find("#act-cordon").click()
        dry = console.find("#dry-run-results")
        console.wait(lambda d: "dry run: would cordon" in _dry(console, "w2"))
        assert "already cordoned by hand; left as it is" in _dry(console, "hand1")
        assert "Nothing has changed yet" in console.find("#action-note").text
        console.shot("cordon-dry-run")
        assert dry.is_displayed()
        # The dry run changed nothing on the cluster.
        assert not kube.node("w2").unschedulable and CORDONED_BY not in kube.node("w2").annotations
        console.find("#action-confirm").click()
        console.wait(lambda d: "Cordon completed" in console.find("#action-note").text)
        task_id = console.find("#action-task a").text
        assert task_id.startswith("k8s-exec-")
        assert kube.node("w2").unschedulable
        assert kube.node("w2").annotations[CORDONED_BY] == task_id
        assert CORDONED_BY not in kube.node("hand1").annotations
        # The table follows: cordoned by knm, by which task and user.
        console.wait(
            lambda d: _cell(console, "w2", "td.cordoned-by") == f"by knm: {task_id} (oper)"
        )
        console.wait(lambda d: "cordon done" in _cell(console, "w2", "td.outcome"))
        console.shot("cordon-done")

        # Uncordon: the dry run says the hand cordon would be refused, and nothing changes.
        _pick(console, "w2", "hand1")
        console.find("#act-uncordon").click()
        console.wait(lambda d: "would uncordon" in _dry(console, "w2"))
        hand = _dry(console, "hand1")
        assert "refused" in hand and "cordoned by hand" in hand
        assert kube.node("w2").unschedulable
        console.find("#action-confirm").click()
        console.wait(lambda d: "Uncordon failed" in console.find("#action-note").text)
        assert not kube.node("w2").unschedulable
        assert kube.node("hand1").unschedulable
        console.wait(lambda d: "refused" in _cell(console, "hand1", "td.outcome"))
        console.wait(lambda d: _cell(console, "w2", "td.cordoned-by") == "no")
        assert console.severe_logs() == []
    finally:
        if kube.node("w2").unschedulable:
            _give_back(admin, kube, "w2")


def _dry(console: Console, node: str) -> str:
    return console.find(f"#dry-run-results tr[data-node='{node}']").text


@pytest.mark.timeout(240)
def test_changing_an_option_after_the_dry_run_needs_a_new_dry_run(
    console: Console, kube: KubeStandin, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open(f"#/clusters/{CLUSTER}")
    _pick(console, "hand1")
    console.find("#act-uncordon").click()
    console.wait(lambda d: "refused" in _dry(console, "hand1"))
    console.wait(lambda d: console.find("#action-confirm").is_enabled())
    console.find("#opt-force").click()
    assert not console.find("#action-confirm").is_enabled()
    assert "run the dry run again" in console.find("#action-note").text
    console.find("#action-dry-run").click()
    console.wait(lambda d: "would uncordon (cordoned by hand; forced)" in _dry(console, "hand1"))
    console.wait(lambda d: console.find("#action-confirm").is_enabled())
    assert kube.node("hand1").unschedulable
    # A bad value the form lets through is the API's clear error, shown in the panel.
    console.find("#opt-timeout").send_keys("0")
    console.find("#action-dry-run").click()
    problem = console.find("#action-problem .problem")
    assert "422" in problem.text and "timeout" in problem.text
    assert not console.find("#action-confirm").is_enabled()
    assert kube.node("hand1").unschedulable


@pytest.mark.timeout(240)
def test_drains_dry_run_lists_the_pods_and_a_budgets_refusal_is_the_nodes_reason(
    console: Console, kube: KubeStandin, admin: httpx.Client
) -> None:
    kube.add_pdb("default", "web-pdb", {"app": "web"}, min_available=1)
    kube.cluster.clear_requests()
    try:
        console.login("admin", TEST_ADMIN_PASSWORD)
        console.open(f"#/clusters/{CLUSTER}")
        _pick(console, "w1")
        console.find("#act-drain").click()
        console.wait(lambda d: "dry run: would evict 1 pod(s)" in _dry(console, "w1"))
        evict = console.find("#dry-run-results tr[data-node='w1'] .would-evict li")
        assert evict.text == "default/web-1"
        budgets = console.find("#dry-run-results tr[data-node='w1'] .blocking-budgets li").text
        assert budgets.startswith("default/web-pdb allows 0 disruption(s) now")
        skipped = console.find("#dry-run-results tr[data-node='w1'] .skipped").text
        assert "kube-system/agent-w1 (DaemonSet-managed)" in skipped
        assert "Disruption budgets would hold the drain of w1" in console.find("#action-note").text
        console.shot("drain-dry-run")
        assert not kube.node("w1").unschedulable
        assert not [r for r in kube.requests if r.method == "POST" and "eviction" in r.path]
        console.find("#opt-drain_timeout").send_keys("2")
        console.find("#action-dry-run").click()
        console.wait(lambda d: console.find("#action-confirm").is_enabled())
        console.find("#action-confirm").click()
        # While it runs, the budget's refusal shows as it happens; at the end, as the reason.
        console.wait(lambda d: "eviction blocked" in console.find("#action-log").text)
        console.wait(lambda d: "Drain failed" in console.find("#action-note").text)
        result = console.find("#action-results-table tr[data-node='w1']").text
        assert "drain_timeout" in result and "blocked by budget default/web-pdb" in result
        console.wait(lambda d: "drain_timeout" in _cell(console, "w1", "td.outcome"))
        assert "blocked by budget default/web-pdb" in _cell(console, "w1", "td.outcome")
        console.shot("drain-refused")
        # The stand-in answered the evictions 429, and the node stays cordoned by knm.
        evictions = [r.status for r in kube.requests if r.method == "POST" and "eviction" in r.path]
        assert evictions and set(evictions) == {429}
        assert kube.node("w1").unschedulable and CORDONED_BY in kube.node("w1").annotations
        assert [p.name for p in kube.pods_on("w1") if p.name == "web-1"] == ["web-1"]
        assert console.severe_logs() == []
    finally:
        kube.cluster.remove_pdb("default", "web-pdb")
        _give_back(admin, kube, "w1")


@pytest.mark.timeout(240)
def test_a_viewer_sees_the_nodes_but_no_action_buttons(
    console: Console, kube: KubeStandin, admin: httpx.Client
) -> None:
    console.login(*VIEWER)
    console.open(f"#/clusters/{CLUSTER}")
    assert "by hand" in _cell(console, "hand1", "td.cordoned-by")
    # w3 cordoned on the cluster itself (as kubectl cordon does) while the page is open.
    _set_unschedulable(kube, "w3", True)
    try:
        end = time.monotonic() + WAIT
        while _cell(console, "w3", "td.cordoned-by") != "by hand":
            assert time.monotonic() < end
            time.sleep(1)
            console.driver.refresh()
        assert _cell(console, "w3", "td.schedulable") == "cordoned"
        assert "2 cordoned (2 by hand)" in console.find("#node-summary").text
    finally:
        _set_unschedulable(kube, "w3", False)
        # knm keeps a cluster's nodes a few seconds: the next test sees them as they are now.
        end = time.monotonic() + WAIT
        while not _schedulable(admin, "w3"):
            assert time.monotonic() < end
            time.sleep(0.5)
    assert _cell(console, "sick1", "td.ready") == "NotReady"
    assert console.all("#node-actions") == [] and console.all("#node-actions button") == []
    assert console.all("#node-table input.pick") == [] and console.all("#pick-all") == []
    assert console.all("main button:not(#node-filter-apply)") == []
    console.shot("viewer-cluster-nodes")


@pytest.mark.timeout(240)
def test_the_dashboard_shows_each_clusters_nodes_cordons_and_locks(
    console: Console, kube: KubeStandin, admin: httpx.Client
) -> None:
    kube.add_pdb("default", "web-pdb", {"app": "web"}, min_available=1)
    draining = _k8s(admin, "drain", ["w1"], timeout=120, params={"drain_timeout": 100})
    try:
        end = time.monotonic() + WAIT
        while not admin.get("/locks").json()["data"]["total"]:
            assert time.monotonic() < end
            time.sleep(0.2)
        end = time.monotonic() + WAIT
        while not kube.node("w1").unschedulable:
            assert time.monotonic() < end
            time.sleep(0.2)
        console.login("admin", TEST_ADMIN_PASSWORD)
        row = f"#clusters tr[data-cluster='{CLUSTER}']"
        console.wait(lambda d: _text(console, f"{row} td.num") == "6")
        # w1 cordoned by the drain (knm), hand1 by hand; w1's lock held by the drain. The
        # dashboard reads the clusters again every few seconds, so it shows what just happened.
        console.wait(lambda d: _text(console, f"{row} td.cordoned") == "2 (1 by knm, 1 by hand)")
        assert _text(console, f"{row} td.locks") == "1: w1"
        assert _text(console, f"{row} td.not-ready") == "1"
        console.shot("dashboard-clusters")
        console.find(f"{row} a").click()
        # The cluster's page names the holder of the lock and of the cordon.
        lock = _cell(console, "w1", "td.lock")
        assert lock == f"{draining} (k8s, admin)"
        assert _cell(console, "w1", "td.cordoned-by") == f"by knm: {draining} (admin)"
    finally:
        admin.post(f"/automation/k8s/cancel/{draining}")
        _finished(admin, draining)
        kube.cluster.remove_pdb("default", "web-pdb")
        _give_back(admin, kube, "w1")
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_static_clusters_nodes_show_no_ready_state_and_offer_no_k8s_actions(
    console: Console,
) -> None:
    console.login(*OPERATOR)
    console.open("#/clusters")
    row = f"#cluster-list tr[data-cluster='{STATIC}']"
    console.wait(lambda d: _text(console, f"{row} td.nodes") == "1")
    assert _text(console, f"{row} td.ready") == "—" and _text(console, f"{row} td.cordoned") == "0"
    console.find(f"{row} a").click()
    assert _cell(console, "r1", "td.ready") == "—"
    assert _cell(console, "r1", "td.cordoned-by") == "—"
    assert _cell(console, "r1", "td.labels") == "rack=7"
    assert "need a kubernetes cluster" in console.find("#no-actions").text
    assert console.all("#node-actions") == [] and console.all("#node-table input.pick") == []
    # A cluster that does not exist is the API's 404, not a blank page.
    console.open("#/clusters/no-such-cluster")
    assert "404" in console.find("main .problem").text
    assert console.severe_logs() == []
