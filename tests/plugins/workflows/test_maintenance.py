"""The builtin "Node maintenance" workflow end to end: the Kubernetes stand-in for the cluster, the
real OpenSSH fleet for the nodes, real ansible for the upgrade (in check mode), and a reboot that
the stand-in simulates — nothing on this machine is upgraded or rebooted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from knm.testing import sshfleet
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import create_fleet_credential
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import standin
from knm.testing.tasks import eventually, wait_for_task

pytestmark = pytest.mark.timeout(600)
NODES = ["node1", "node2", "node3"]
WORKER = "node-role.kubernetes.io/worker"

UPGRADE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: pretend to upgrade
      ansible.builtin.command: /bin/true
      changed_when: false
    - name: fail where asked
      ansible.builtin.fail:
        msg: upgrade failed on {{ inventory_hostname }}
      when: inventory_hostname in (fail_on | default('')).split(',')
"""


@pytest.fixture(scope="module")
def kube(ssh_fleet: sshfleet.SshFleet) -> Iterator[KubeStandin]:
    kube = standin(populate=False)
    for name, node in zip(NODES, ssh_fleet.nodes, strict=False):
        kube.add_node(name, labels={WORKER: ""}, addresses={"InternalIP": node.address})
    for i, name in enumerate(NODES, start=1):
        kube.add_pod("default", f"web-{i}", name, labels={"app": "web"}, owner_name="web")
    # No pod of "web" may go until its replacement is Ready: every drain waits on this budget.
    kube.add_pdb("default", "web", {"app": "web"}, min_available=3)
    try:
        yield kube
    finally:
        kube.stop()


def reboot_command(kube: KubeStandin, fleet: sshfleet.SshFleet) -> str:
    """What the nodes run to "reboot": ask the stand-in to reboot the node this SSH session is on
    (found from the server address of the connection)."""
    names = json.dumps({node.address: name for name, node in zip(NODES, fleet.nodes, strict=False)})
    code = (
        "import json, os, urllib.request as u; "
        f"name = json.loads({names!r})[os.environ['SSH_CONNECTION'].split()[2]]; "
        f"u.urlopen(u.Request('{kube.url}/_standin/nodes/' + name + '/reboot', method='POST'))"
    )
    return f'python3 -c "{code}"'


@pytest.fixture(scope="module")
async def setup(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> dict[str, Any]:
    credential = await create_fleet_credential(
        knm_client, admin_headers, ssh_fleet, name="maintenance"
    )
    response = await knm_client.post(
        "/clusters",
        json={
            "name": "prod",
            "kind": "kubernetes",
            "kubeconfig": kube.kubeconfig(),
            "max_unavailable": 1,
        },
        headers=admin_headers,
    )
    assert_envelope(response, 201)
    playbook = await knm_client.post(
        "/automation/ansible/playbooks",
        json={"name": "pretend upgrade", "content": UPGRADE, "category": "test"},
        headers=admin_headers,
    )
    assert_envelope(playbook, 201)
    listed = await knm_client.get(
        "/automation/workflows?q=Node maintenance&is_builtin=true", headers=admin_headers
    )
    workflow = assert_envelope(listed, 200)["data"]["workflows"][0]
    assert workflow["name"] == "Node maintenance" and workflow["is_builtin"] is True
    return {"credential_id": credential, "workflow_id": workflow["id"]}


async def maintain(
    client: ApiClient,
    headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    fleet: sshfleet.SshFleet,
    fail_on: str = "",
) -> dict[str, Any]:
    response = await client.post(
        "/automation/workflows/execute",
        json={
            "workflow_id": setup["workflow_id"],
            "cluster_name": "prod",
            "target_nodes": NODES,
            "credential_id": setup["credential_id"],
            "parameters": {
                "upgrade_playbook": "pretend upgrade",
                "upgrade_args": f"--check -e fail_on={fail_on}" if fail_on else "--check",
                "reboot_command": reboot_command(kube, fleet),
            },
        },
        headers=headers,
    )
    started = assert_envelope(response, 200)["data"]
    return await wait_for_task(client, headers, started["task_id"], deadline=400)


async def test_maintenance_rolls_through_every_node_honouring_the_budget(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    boot_ids = {name: kube.node(name).info.boot_id for name in NODES}
    status = await maintain(knm_client, admin_headers, setup, kube, ssh_fleet)
    assert status["status"] == "completed", json.dumps(status["steps"], indent=1)
    assert [r["status"] for r in status["results"]] == ["success"] * 3
    for name in NODES:
        node = kube.node(name)
        assert node.info.boot_id != boot_ids[name], f"{name} was not rebooted"
        assert not node.unschedulable and "knm.io/cordoned-by" not in node.annotations
    # One node at a time: each batch's drain finished before the next batch's cordon.
    steps = {(s["batch"], s["id"]): s for s in status["steps"]}
    assert all(steps[(b, "uncordon")]["status"] == "success" for b in range(3))
    # The budget held throughout: at no time were fewer than 3 web pods healthy; evictions that it
    # refused came back as 429 and were retried.
    evictions = [r for r in kube.requests if r.path.endswith("/eviction")]
    assert {r.status for r in evictions} <= {201, 429}
    assert sum(1 for r in evictions if r.status == 201) >= 3


async def test_a_failure_on_node2_stops_the_roll_and_leaves_node3_untouched(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    before = kube.node("node3").resource_version
    status = await maintain(knm_client, admin_headers, setup, kube, ssh_fleet, fail_on="node2")
    results = {r["node"]: r for r in status["results"]}
    assert status["status"] == "failed"
    assert results["node1"]["status"] == "success"
    assert results["node2"]["reason"] == "step_failed"
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


async def test_a_node_cordoned_by_hand_stays_cordoned_after_a_failure(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    setup: dict[str, Any],
    kube: KubeStandin,
    ssh_fleet: sshfleet.SshFleet,
) -> None:
    from kubernetes import client as k8s
    from kubernetes import config

    api = config.new_client_from_config_dict(json.loads(json.dumps(kube.kubeconfig_dict())))
    try:
        k8s.CoreV1Api(api).patch_node("node1", {"spec": {"unschedulable": True}})
    finally:
        api.close()
    status = await maintain(knm_client, admin_headers, setup, kube, ssh_fleet, fail_on="node1")
    assert status["status"] == "failed"
    assert kube.node("node1").unschedulable, "knm must never uncordon a node cordoned by hand"

    async def give_back_ran() -> bool:
        return any(
            s["id"] == "give_back" and s["batch"] == 0 and s["status"] in ("success", "failed")
            for s in status["steps"]
        )

    await eventually(give_back_ran)
