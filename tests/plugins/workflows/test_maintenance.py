"""The builtin "Node maintenance" workflow end to end: the Kubernetes stand-in for the cluster, the
real OpenSSH fleet for the nodes, real ansible for the upgrade (in check mode), and a reboot that
the stand-in simulates — nothing on this machine is upgraded or rebooted."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from knm.testing import sshfleet
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import standin
from knm.testing.tasks import eventually, wait_for_task

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NODES = ["node1", "node2", "node3"]
WORKER = "node-role.kubernetes.io/worker"

UPGRADE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: pretend to upgrade
      ansible.builtin.command: /bin/true
      changed_when: false
"""
FAILING_UPGRADE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: fail on one node
      ansible.builtin.fail:
        msg: upgrade failed on {{ inventory_hostname }}
      when: inventory_hostname == "FAIL_ON"
"""


@pytest.fixture
def kube(ssh_fleet: sshfleet.SshFleet) -> Iterator[KubeStandin]:
    """A cluster of its own for each test, starting as the first roll needs it: whatever an
    earlier test drained, evicted or rebooted stays in that test's stand-in."""
    kube = standin(populate=False)
    for name, node in zip(NODES, ssh_fleet.nodes, strict=False):
        kube.add_node(name, labels={WORKER: ""}, addresses={"InternalIP": node.address})
    for i, name in enumerate(NODES, start=1):
        kube.add_pod("default", f"web-{i}", name, labels={"app": "web"}, owner_name="web")
    # A fourth replica still starting: until it is Ready the budget allows no eviction at all.
    kube.add_pod("default", "web-4", "node3", labels={"app": "web"}, owner_name="web", ready=False)
    kube.add_pdb("default", "web", {"app": "web"}, min_available=3)
    try:
        yield kube
    finally:
        kube.stop()


def ready_all(kube: KubeStandin) -> None:
    """Every web replica Ready, whatever an earlier test left starting."""
    for pod in kube.cluster.pods("default"):
        if not pod.ready:
            kube.cluster.set_pod_ready("default", pod.name, True)


def reboot_command(kube: KubeStandin, fleet: sshfleet.SshFleet) -> str:
    """What the nodes run to "reboot": ask the stand-in to reboot the node this SSH session is on
    (found from the server address of the connection). Base64 keeps the code clear of quoting."""
    names = {node.address: name for name, node in zip(NODES, fleet.nodes, strict=False)}
    code = (
        "import os, urllib.request as u\n"
        f"name = {names!r}[os.environ['SSH_CONNECTION'].split()[2]]\n"
        f"u.urlopen(u.Request('{kube.url}/_standin/nodes/' + name + '/reboot', method='POST'))\n"
    )
    encoded = base64.b64encode(code.encode()).decode()
    return f"python3 -c 'import base64; exec(base64.b64decode(\"{encoded}\"))'"


@pytest.fixture(scope="module")
async def library(
    knm_client: ApiClient, admin_headers: dict[str, str], ssh_fleet: sshfleet.SshFleet
) -> dict[str, Any]:
    # Kubernetes nodes carry no SSH port: the credential's applies.
    created = await knm_client.post(
        "/credentials",
        json={
            "name": "maintenance",
            "username": ssh_fleet.username,
            "auth_type": "password",
            "password": ssh_fleet.password,
            "port": ssh_fleet.port,
        },
        headers=admin_headers,
    )
    credential = assert_envelope(created, 201)["data"]["id"]
    playbook = await knm_client.post(
        "/automation/ansible/playbooks",
        json={"name": "pretend upgrade", "content": UPGRADE, "category": "test"},
        headers=admin_headers,
    )
    assert_envelope(playbook, 201)
    for node in ("node1", "node2"):
        failing = await knm_client.post(
            "/automation/ansible/playbooks",
            json={
                "name": f"upgrade failing on {node}",
                "content": FAILING_UPGRADE.replace("FAIL_ON", node),
            },
            headers=admin_headers,
        )
        assert_envelope(failing, 201)
    listed = await knm_client.get(
        "/automation/workflows?q=Node maintenance&is_builtin=true", headers=admin_headers
    )
    workflow = assert_envelope(listed, 200)["data"]["workflows"][0]
    assert workflow["name"] == "Node maintenance" and workflow["is_builtin"] is True
    return {"credential_id": credential, "workflow_id": workflow["id"]}


@pytest.fixture
async def setup(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    library: dict[str, Any],
    kube: KubeStandin,
    request: pytest.FixtureRequest,
) -> AsyncIterator[dict[str, Any]]:
    """The library and a cluster registered for this test's stand-in."""
    name = f"prod-{request.node.name.removeprefix('test_')[:40].replace('_', '-').strip('-')}"
    response = await knm_client.post(
        "/clusters",
        json={
            "name": name,
            "kind": "kubernetes",
            "kubeconfig": kube.kubeconfig(),
            "max_unavailable": 1,
        },
        headers=admin_headers,
    )
    assert_envelope(response, 201)
    yield {**library, "cluster_name": name}
    assert_envelope(await knm_client.delete(f"/clusters/{name}", headers=admin_headers), 200)


async def maintain(
    client: ApiClient,
    headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    fleet: sshfleet.SshFleet,
    fail_on: str = "",
    nodes: list[str] = NODES,
    **parameters: str,
) -> dict[str, Any]:
    given = {
        "upgrade_playbook": f"upgrade failing on {fail_on}" if fail_on else "pretend upgrade",
        "upgrade_args": "--check",
        "reboot_command": reboot_command(kube, fleet),
        **parameters,
    }
    response = await client.post(
        "/automation/workflows/execute",
        json={
            "workflow_id": setup["workflow_id"],
            "cluster_name": setup["cluster_name"],
            "target_nodes": nodes,
            "credential_id": setup["credential_id"],
            "parameters": given,
        },
        headers=headers,
    )
    started = assert_envelope(response, 200)["data"]
    try:
        return await wait_for_task(client, headers, started["task_id"], deadline=100)
    except AssertionError:
        status = (await client.get(f"/tasks/{started['task_id']}", headers=headers)).json()["data"]
        running = [s for s in status["steps"] if s["status"] == "running" and s["task_id"]]
        if running:
            events = (
                await client.get(f"/tasks/{running[0]['task_id']}/events", headers=headers)
            ).json()
            raise AssertionError(
                json.dumps([e["message"] for e in events["data"]["entries"]][-15:], indent=1)
            ) from None
        raise AssertionError(
            json.dumps([s for s in status["steps"] if s["status"] != "pending"], indent=1)
        ) from None


async def test_maintenance_rolls_through_every_node_honouring_the_budget(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    boot_ids = {name: kube.node(name).info.boot_id for name in NODES}

    async def replica_starts_once_a_drain_is_refused() -> None:
        def refused() -> bool:
            return any(r.path.endswith("/eviction") and r.status == 429 for r in kube.requests)

        async def check() -> bool:
            return refused()

        await eventually(check, deadline=120)
        kube.cluster.set_pod_ready("default", "web-4", True)

    unblock = asyncio.create_task(replica_starts_once_a_drain_is_refused())
    status = await maintain(knm_client, admin_headers, setup, kube, ssh_fleet)
    await unblock
    if status["status"] != "completed":
        failed = [s for s in status["steps"] if s["status"] == "failed"]
        child = (
            await knm_client.get(f"/tasks/{failed[0]['task_id']}", headers=admin_headers)
        ).json()["data"]
        raise AssertionError(json.dumps(child, indent=1)[:6000])
    assert [r["status"] for r in status["results"]] == ["success"] * 3
    for name in NODES:
        node = kube.node(name)
        assert node.info.boot_id != boot_ids[name], f"{name} was not rebooted"
        assert not node.unschedulable and "knm.io/cordoned-by" not in node.annotations
    # One node at a time: each batch's drain finished before the next batch's cordon.
    steps = {(s["batch"], s["id"]): s for s in status["steps"]}
    assert all(steps[(b, "uncordon")]["status"] == "completed" for b in range(3))
    # The budget held: the first drain was refused (429) until the fourth replica was Ready, then
    # went on; nothing was deleted around it.
    evictions = [r for r in kube.requests if r.path.endswith("/eviction")]
    assert evictions[0].status == 429
    assert {r.status for r in evictions} <= {201, 429}
    assert sum(1 for r in evictions if r.status == 201) >= 3
    assert not [r for r in kube.requests if r.method == "DELETE" and "/pods/" in r.path]


async def test_a_failure_on_node2_stops_the_roll_and_leaves_node3_untouched(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    ready_all(kube)
    before = kube.node("node3").resource_version
    status = await maintain(knm_client, admin_headers, setup, kube, ssh_fleet, fail_on="node2")
    results = {r["node"]: r for r in status["results"]}
    assert status["status"] == "failed"
    assert results["node1"]["status"] == "success"
    # The upgrade step's own reason for the node, and its message, at the workflow level.
    assert results["node2"]["reason"] == "task_failed"
    assert results["node2"]["message"].startswith("step upgrade: ")
    assert results["node3"]["reason"] == "skipped"
    # knm cordoned node2, so its finalizer gave it back; node3 was never touched.
    assert not kube.node("node2").unschedulable
    assert kube.node("node3").resource_version == before
    children = (
        await knm_client.get(
            f"/tasks?parent_task_id={status['task_id']}&page_size=100", headers=admin_headers
        )
    ).json()
    assert all("node3" not in child["target_nodes"] for child in children["data"]["executions"])


async def test_a_node_cordoned_by_hand_is_skipped_and_the_roll_goes_on(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    from kubernetes import client as k8s
    from kubernetes import config

    ready_all(kube)
    api = config.new_client_from_config_dict(kube.kubeconfig_dict())
    try:
        k8s.CoreV1Api(api).patch_node("node1", {"spec": {"unschedulable": True}})
        status = await maintain(knm_client, admin_headers, setup, kube, ssh_fleet, fail_on="node1")
        assert kube.node("node1").unschedulable, "knm must never uncordon a node cordoned by hand"
    finally:
        k8s.CoreV1Api(api).patch_node("node1", {"spec": {"unschedulable": False}})
        api.close()
    results = {r["node"]: r for r in status["results"]}
    # node1 was left alone (the failing upgrade never ran there); the others were maintained.
    assert status["status"] == "completed", status
    assert results["node1"]["reason"] == "skipped"
    assert "cordoned by hand" in results["node1"]["message"]
    assert results["node2"]["status"] == results["node3"]["status"] == "success"
    assert all(s["status"] == "skipped" for s in status["steps"] if s["batch"] == 0)


CHECK_MODE_ONLY = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: refuse to change anything for real
      ansible.builtin.fail:
        msg: not in check mode
      when: not ansible_check_mode
"""


async def test_upgrade_args_reach_ansible_playbook(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    ready_all(kube)
    created = await knm_client.post(
        "/automation/ansible/playbooks",
        json={"name": "check mode only", "content": CHECK_MODE_ONLY},
        headers=admin_headers,
    )
    assert_envelope(created, 201)
    without = await maintain(
        knm_client, admin_headers, setup, kube, ssh_fleet, nodes=["node1"],
        upgrade_playbook="check mode only", upgrade_args="",
    )  # fmt: skip
    assert without["status"] == "failed"
    assert without["results"][0]["message"].startswith("step upgrade: ")
    assert not kube.node("node1").unschedulable
    ready_all(kube)
    with_check = await maintain(
        knm_client, admin_headers, setup, kube, ssh_fleet, nodes=["node1"],
        upgrade_playbook="check mode only", upgrade_args="--check",
    )  # fmt: skip
    assert with_check["status"] == "completed", with_check


async def test_drain_timeout_gives_up_naming_the_blocking_budget(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    """With a budget allowing no eviction, a 1 s drain_timeout ends the drain (the drain step
    itself may take two hours); the node's result names the budget; the node is given back."""
    ready_all(kube)
    # The only replica of "db", on node1, must stay available: never evictable.
    kube.add_pod("default", "db-1", "node1", labels={"app": "db"}, owner_name="db")
    kube.add_pdb("default", "db", {"app": "db"}, min_available=1)
    try:
        status = await maintain(
            knm_client, admin_headers, setup, kube, ssh_fleet, nodes=["node1"], drain_timeout="1"
        )
    finally:
        kube.cluster.remove_pdb("default", "db")
        kube.cluster.delete_pod("default", "db-1", 0)
    node = status["results"][0]
    assert status["status"] == "failed"
    assert node["reason"] == "drain_timeout", node
    assert "step drain:" in node["message"] and "budget default/db" in node["message"]
    assert not kube.node("node1").unschedulable
