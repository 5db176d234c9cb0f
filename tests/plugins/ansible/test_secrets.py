"""A run's secrets are never files: keys are used through the run's own ssh-agent, passwords
answered through a pipe or a socket, and nothing secret can be read out of the run directory
by a play while it runs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import psutil
import pytest

from knm.plugins.ansible.inventory import unlocked_key
from knm.plugins.ansible.runner import MARK
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import eventually, wait_for_task

from .conftest import Fleet, Runner, sleeping_on

SLEEP = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 3600
"""


def secret_forms(fleet: Fleet) -> dict[str, str]:
    """Every secret of the fleet's credentials as it could sit in a file, and its base64."""
    sshd = fleet.sshd
    unlocked = unlocked_key(sshd.encrypted_private_key_pem, sshd.key_passphrase)
    # A line from the middle of each key's body: in any file holding the key, whole or not.
    plain = {
        "password": sshd.password,
        "passphrase": sshd.key_passphrase,
        "stored key": sshd.encrypted_private_key_pem.splitlines()[3],
        "unlocked key": unlocked.splitlines()[3],
        "plain key": sshd.private_key_pem.splitlines()[3],
    }
    found = dict(plain)
    for name, value in plain.items():
        found[f"{name} in base64"] = base64.b64encode(value.encode()).decode()[:-4]
    return found


def files_holding_secrets(run_dir: Path, forms: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for path in run_dir.rglob("*"):
        # Only regular files hold data at rest (the agent's socket and the emptied FIFO do not).
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_bytes().decode(errors="replace")
        found += [(str(path), name) for name, value in forms.items() if value in text]
    return found


def agents_of(task_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.name() == "ssh-agent" and proc.environ().get(MARK) == task_id:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("credential", ["password", "encrypted key"])
async def test_no_file_of_a_running_run_holds_a_secret_and_the_agent_ends_with_the_run(
    credential: str, knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet,
    add_playbook: Any, start_run: Runner, outside_tmp: Path,
) -> None:  # fmt: skip
    credential_id = fleet.credential_id if credential == "password" else fleet.key_credential_id
    playbook = await add_playbook(f"sleep for secrets {credential}", SLEEP)
    data = await start_run(playbook_id=playbook, credential_id=credential_id)
    task_id = data["task_id"]

    async def all_sleeping() -> bool:
        return len(sleeping_on(fleet)) == 3

    await eventually(all_sleeping, deadline=60)
    run_dir = outside_tmp / "runs" / task_id
    assert files_holding_secrets(run_dir, secret_forms(fleet)) == []
    assert not (run_dir / "env" / "ssh_key").exists()
    assert not (run_dir / "inventory" / "group_vars").exists()
    if credential == "encrypted key":
        assert agents_of(task_id), "the run holds its key in an ssh-agent of its own"
    response = await knm_client.post(f"/automation/ansible/cancel/{task_id}", headers=admin_headers)
    assert_envelope(response, 200)
    await wait_for_task(knm_client, admin_headers, task_id)

    async def agent_gone() -> bool:
        return not agents_of(task_id)

    await eventually(agent_gone, deadline=15)

    async def remote_gone() -> bool:
        return not sleeping_on(fleet)

    await eventually(remote_gone, deadline=15)


async def test_a_passphrase_protected_key_logs_in_through_the_runs_agent(
    run_playbook: Runner, add_playbook: Any, fleet: Fleet
) -> None:
    playbook = await add_playbook("who am i", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: whoami
      changed_when: false
      register: me
    - ansible.builtin.debug:
        msg: "logged in as {{ me.stdout }}"
""")  # fmt: skip
    status = await run_playbook(
        playbook_id=playbook, credential_id=fleet.key_credential_id, target_nodes=["node1"]
    )
    assert status["status"] == "completed", status
    assert f"logged in as {fleet.sshd.username}" in status["output"]
    assert fleet.sshd.key_passphrase not in str(status)


async def test_a_bastions_password_is_served_not_written_while_the_run_lasts(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, add_playbook: Any,
    start_run: Runner, outside_tmp: Path,
) -> None:  # fmt: skip
    jump, *behind = fleet.sshd.nodes
    body = {
        "name": "secrets-behind-a-password", "kind": "static",
        "bastion": {"address": jump.address, "port": jump.port,
                    "credential_id": fleet.credential_id},
        "nodes": [{"name": n.name, "address": n.address, "port": n.port} for n in behind],
    }  # fmt: skip
    assert_envelope(await knm_client.post("/clusters", json=body, headers=admin_headers), 201)
    playbook = await add_playbook("sleep behind a password bastion", SLEEP)
    data = await start_run(
        playbook_id=playbook, cluster_name=body["name"], credential_id=fleet.key_credential_id,
        target_nodes=[n.name for n in behind],
    )  # fmt: skip
    task_id = data["task_id"]

    async def both_sleeping() -> bool:
        return len(sleeping_on(fleet)) == len(behind)

    await eventually(both_sleeping, deadline=60)
    run_dir = outside_tmp / "runs" / task_id
    assert files_holding_secrets(run_dir, secret_forms(fleet)) == []
    assert not (run_dir / "keys" / "bastion_password").exists()
    response = await knm_client.post(f"/automation/ansible/cancel/{task_id}", headers=admin_headers)
    assert_envelope(response, 200)
    await wait_for_task(knm_client, admin_headers, task_id)

    async def remote_gone() -> bool:
        return not sleeping_on(fleet)

    await eventually(remote_gone, deadline=15)
