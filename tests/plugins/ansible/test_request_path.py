"""An Ansible run takes one straight path: the credential and cluster ``prepare`` loaded, the
playbook version the task was created with."""

from __future__ import annotations

from typing import Any

from knm.core.counters import counting
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import eventually, wait_for_task

from .conftest import Fleet, Runner

SAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "{word}"
"""
SLEEP = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 3600
"""


async def _status(client: ApiClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    response = await client.get(f"/automation/ansible/status/{task_id}", headers=headers)
    return assert_envelope(response, 200)["data"]


async def test_an_ansible_run_decrypts_each_secret_once_and_reads_each_row_once(
    start_run: Runner, add_playbook: Any, fleet: Fleet,
    knm_client: ApiClient, admin_headers: dict[str, str],
) -> None:  # fmt: skip
    playbook = await add_playbook("say-counted", SAY.format(word="counted"))
    with counting() as counts:
        data = await start_run(playbook_id=playbook)
        await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=100)
    assert (await _status(knm_client, admin_headers, data["task_id"]))["status"] == "completed"
    credential = f"credentials:{fleet.credential_id}"
    assert counts.rows == {credential: 1, f"clusters:{fleet.cluster_name}": 1}
    assert counts.decrypts and all(n == 1 for n in counts.decrypts.values()), counts.decrypts


async def test_a_playbook_edited_while_its_task_is_pending_runs_the_version_it_was_created_with(
    start_run: Runner, add_playbook: Any, fleet: Fleet,
    knm_client: ApiClient, admin_headers: dict[str, str],
) -> None:  # fmt: skip
    one_at_a_time = {"max_tasks": 1}
    assert_envelope(
        await knm_client.put(
            "/features/automation/ansible", json=one_at_a_time, headers=admin_headers
        ),
        200,
    )
    try:
        blocker = await start_run(playbook_id=await add_playbook("blocker", SLEEP))
        playbook = await add_playbook("say-pinned", SAY.format(word="version-one"))
        data = await start_run(playbook_id=playbook)
        assert data["status"] == "pending"
        response = await knm_client.put(
            f"/automation/ansible/playbooks/{playbook}",
            json={"content": SAY.format(word="version-two")},
            headers=admin_headers,
        )
        assert assert_envelope(response, 200)["data"]["version"] == 2
        response = await knm_client.post(
            f"/automation/ansible/cancel/{blocker['task_id']}", headers=admin_headers
        )
        assert_envelope(response, 200)
        await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=120)
        status = await _status(knm_client, admin_headers, data["task_id"])
        assert status["status"] == "completed", status
        assert status["playbook_version"] == 1
        assert "version-one" in status["output"]
        assert "version-two" not in status["output"]
    finally:
        await knm_client.put(
            "/features/automation/ansible", json={"max_tasks": 100}, headers=admin_headers
        )

        async def blocker_gone() -> bool:
            state = await _status(knm_client, admin_headers, blocker["task_id"])
            return state["status"] in ("cancelled", "failed", "completed")

        await eventually(blocker_gone, deadline=60)
