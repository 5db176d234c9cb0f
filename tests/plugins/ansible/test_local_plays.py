"""Plays on the knm host: refused when saved and when run, unless an admin allows them; and
even then, such a play finds no secret of the run to read."""

from __future__ import annotations

from typing import Any

from knm.testing.client import ApiClient, assert_envelope

from .conftest import Fleet, Runner

LOCAL = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: cat ../inventory/group_vars/all.yml
      delegate_to: localhost
"""
FEATURES = "/features/automation/ansible"


def spelled_out(secret: str) -> str:
    """A pattern matching ``secret`` whose own text does not hold it (it is stored in the run)."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in secret)


async def save(client: ApiClient, headers: dict[str, str], name: str, content: str) -> Any:
    body = {"name": name, "content": content, "category": "test"}
    return await client.post("/automation/ansible/playbooks", json=body, headers=headers)


async def test_a_play_on_the_knm_host_is_refused_when_saved_with_the_reason(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    body = assert_envelope(await save(knm_client, admin_headers, "local", LOCAL), 422)
    assert "delegate_to 'localhost'" in body["error"]
    assert "allow_local_plays" in body["error"]


async def test_a_saved_local_play_is_refused_at_run_once_the_setting_is_off(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, start_run: Runner
) -> None:
    on, off = {"allow_local_plays": True}, {"allow_local_plays": False}
    assert_envelope(await knm_client.put(FEATURES, json=on, headers=admin_headers), 200)
    try:
        saved = assert_envelope(await save(knm_client, admin_headers, "local ok", LOCAL), 201)
    finally:
        assert_envelope(await knm_client.put(FEATURES, json=off, headers=admin_headers), 200)
    request = {"playbook_id": saved["data"]["id"], "cluster_name": fleet.cluster_name,
               "credential_id": fleet.credential_id, "target_nodes": ["node1"]}  # fmt: skip
    response = await knm_client.post("/automation/ansible/run", json=request, headers=admin_headers)
    body = assert_envelope(response, 422)
    assert "runs on the knm host" in body["error"]


async def test_a_local_play_an_admin_allowed_finds_no_secret_in_the_run_directory(
    run_playbook: Runner, add_playbook: Any, fleet: Fleet, local_plays_allowed: None
) -> None:
    playbook = await add_playbook("look for secrets", """
- hosts: all
  gather_facts: false
  tasks:
    - name: no file of the run holds a key or a password
      ansible.builtin.shell: |
        test -n "$KNM_LOOK_FOR" && grep -rqs 'gather_facts' {{ playbook_dir }}/.. || exit 3
        found=$(grep -rlsP --devices=skip "$KNM_LOOK_FOR" {{ playbook_dir }}/..)
        test -z "$found" || { echo "found in: $found"; exit 1; }
      environment:
        KNM_LOOK_FOR: "{{ look_for }}"
      delegate_to: localhost
      run_once: true
      changed_when: false
""")  # fmt: skip
    for credential in (fleet.credential_id, fleet.key_credential_id):
        status = await run_playbook(
            playbook_id=playbook, credential_id=credential, target_nodes=["node1"],
            extra_vars={"look_for": spelled_out("PRIVATE KEY") + "|" + spelled_out(fleet.sshd.password)},
        )  # fmt: skip
        assert status["status"] == "completed", status["output"]
