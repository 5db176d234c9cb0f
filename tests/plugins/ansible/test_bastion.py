"""Ansible runs on a cluster behind a bastion: node1 of the fleet is the jump host to the others."""

from __future__ import annotations

from typing import Any

import psutil
import pytest

from knm.core.counters import counting
from knm.plugins.ansible.runner import MARK
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import eventually, wait_for_task

from .conftest import Fleet, Runner, sleeping_on

HELLO = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: echo "hello from {{ inventory_hostname }}"
      changed_when: false
      register: said
    - ansible.builtin.debug:
        msg: "{{ said.stdout }}"
"""
SLEEP = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 3600
"""


@pytest.fixture(scope="module")
async def credentials(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> dict[str, int]:
    """Every kind of credential for the fleet's user, by name."""
    sshd = fleet.sshd
    found = {"password": fleet.credential_id, "encrypted key": fleet.key_credential_id}
    more = {
        "plain key": {"auth_type": "private_key", "private_key": sshd.private_key_pem},
        "other encrypted key": {
            "auth_type": "private_key", "private_key": sshd.encrypted_private_key_pkcs8_pem,
            "passphrase": sshd.key_passphrase,
        },
    }  # fmt: skip
    for name, fields in more.items():
        body = {"name": f"bastion {name}", "username": sshd.username, **fields}
        response = await knm_client.post("/credentials", json=body, headers=admin_headers)
        found[name] = assert_envelope(response, 201)["data"]["id"]
    return found


async def _cluster(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, name: str,
    bastion_node: Any, credential_id: int | None = None,
) -> str:  # fmt: skip
    behind = [n for n in fleet.sshd.nodes if n.name != bastion_node.name]
    bastion: dict[str, Any] = {"address": bastion_node.address, "port": bastion_node.port}
    if credential_id is not None:
        bastion["credential_id"] = credential_id
    body = {
        "name": name, "kind": "static", "bastion": bastion,
        "nodes": [{"name": n.name, "address": n.address, "port": n.port} for n in behind],
    }  # fmt: skip
    assert_envelope(await knm_client.post("/clusters", json=body, headers=admin_headers), 201)
    return name


@pytest.mark.parametrize(
    ("bastion_credential", "node_credential"),
    [
        (None, "password"),  # the same password: askpass for the bastion, sshpass for nodes
        (None, "encrypted key"),  # the nodes' key in the run's agent serves the bastion too
        ("plain key", "encrypted key"),  # both keys in the run's agent
        ("password", "plain key"),  # askpass for the bastion, the agent for the nodes
        ("encrypted key", "password"),  # the bastion's key in the run's agent
    ],
)
async def test_a_playbook_reaches_the_nodes_through_the_bastion(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, add_playbook: Any,
    run_playbook: Runner, credentials: dict[str, int], bastion_credential: str | None,
    node_credential: str,
) -> None:  # fmt: skip
    name = f"behind-{bastion_credential or 'shared'}-{node_credential}".replace(" ", "-")
    bastion_id = credentials[bastion_credential] if bastion_credential else None
    cluster = await _cluster(
        knm_client, admin_headers, fleet, name, fleet.sshd.nodes[0], bastion_id
    )
    playbook = await add_playbook(f"hello {name}", HELLO)
    with counting() as counts:
        status = await run_playbook(
            playbook_id=playbook, cluster_name=cluster, target_nodes=["node2", "node3"],
            credential_id=credentials[node_credential],
        )  # fmt: skip
    assert status["status"] == "completed", status
    assert "hello from node3" in status["output"]
    # The bastion's own credential too: read and decrypted once from request to run.
    assert all(times == 1 for times in counts.rows.values()), counts.rows
    assert all(times == 1 for times in counts.decrypts.values()), counts.decrypts
    response = await knm_client.get(
        f"/automation/ssh/host-keys?cluster={cluster}", headers=admin_headers
    )
    pins = assert_envelope(response, 200)["data"]["host_keys"]
    assert {pin["node"] for pin in pins} == {"@bastion", "node2", "node3"}
    for secret in (fleet.sshd.password, fleet.sshd.key_passphrase):
        assert secret not in str(status)


async def test_a_dead_bastion_makes_every_node_unreachable(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, add_playbook: Any,
    run_playbook: Runner,
) -> None:  # fmt: skip
    refused = fleet.sshd.refused_node()
    cluster = await _cluster(knm_client, admin_headers, fleet, "dead-bastion", refused)
    playbook = await add_playbook("hello dead bastion", HELLO)
    status = await run_playbook(playbook_id=playbook, cluster_name=cluster)
    assert status["status"] == "failed"
    # The nodes themselves are up: only the way through the bastion is closed.
    for result in status["results"]:
        assert result["reason"] == "unreachable", result
        assert f"{refused.address} port {refused.port}" in result["message"], result


async def test_two_different_passphrase_keys_share_the_runs_agent(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, add_playbook: Any,
    run_playbook: Runner, credentials: dict[str, int],
) -> None:  # fmt: skip
    cluster = await _cluster(
        knm_client, admin_headers, fleet, "two-agent-keys", fleet.sshd.nodes[0],
        credentials["other encrypted key"],
    )  # fmt: skip
    status = await run_playbook(
        playbook_id=await add_playbook("hello agent keys", HELLO), cluster_name=cluster,
        target_nodes=["node2"], credential_id=credentials["encrypted key"],
    )  # fmt: skip
    assert status["status"] == "completed", status
    assert "hello from node2" in status["output"]


def _jumps(task_id: str) -> list[list[str]]:
    """The command lines of the run's ssh processes going through a jump host."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == task_id and "-W" in proc.cmdline():
                found.append(proc.cmdline())
        except psutil.Error:
            continue
    return found


async def test_cancel_through_the_bastion_stops_the_remote_commands(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, add_playbook: Any,
    start_run: Runner,
) -> None:  # fmt: skip
    bastion = fleet.sshd.nodes[0]
    cluster = await _cluster(knm_client, admin_headers, fleet, "cancel-behind", bastion)
    playbook = await add_playbook("sleep behind a bastion", SLEEP)
    data = await start_run(
        playbook_id=playbook, cluster_name=cluster, target_nodes=["node2", "node3"]
    )
    task_id = data["task_id"]

    async def both_sleeping() -> bool:
        return len(sleeping_on(fleet)) == 2

    await eventually(both_sleeping, deadline=60)
    jumps = _jumps(task_id)
    assert any(cmd[-1] == bastion.address and "%h:%p" not in cmd for cmd in jumps), jumps
    assert not [cmd for cmd in jumps if fleet.sshd.password in " ".join(cmd)]
    response = await knm_client.post(f"/automation/ansible/cancel/{task_id}", headers=admin_headers)
    assert_envelope(response, 200)
    await wait_for_task(knm_client, admin_headers, task_id)

    async def remote_gone() -> bool:
        return not sleeping_on(fleet)

    await eventually(remote_gone, deadline=15)
