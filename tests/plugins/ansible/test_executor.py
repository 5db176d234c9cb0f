"""Ansible runs against real sshd nodes: results per node, extra vars, check mode, isolation,
cancel, and secrets kept out of argv, logs and output."""

from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from knm.plugins.ansible.runner import MARK
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import eventually, wait_for_task

from .conftest import Fleet, Runner, sleeping_on

HELLO = """
- name: hello
  hosts: all
  gather_facts: false
  tasks:
    - name: say hello
      ansible.builtin.command: echo "hello {{ greeting | default('nobody') }} from {{ inventory_hostname }}"
      changed_when: false
      register: said
    - ansible.builtin.debug:
        msg: "{{ said.stdout }}"
    - name: show labels
      ansible.builtin.debug:
        msg: "zone={{ label_zone | default('none') }} roles={{ group_names | join(',') }}"
- name: control plane only
  hosts: control_plane
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "I am the control plane"
"""


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


@pytest.fixture(scope="module")
async def hello_id(add_playbook: Any) -> int:
    return await add_playbook("hello", HELLO)


async def test_a_playbook_runs_on_every_node_with_counts_output_and_groups(
    start_run: Runner, run_playbook: Runner, hello_id: int, fleet: Fleet,
    knm_client: ApiClient, admin_headers: dict[str, str],
) -> None:  # fmt: skip
    data = await start_run(playbook_id=hello_id, extra_vars={"greeting": "world"})
    assert data["status"] in ("running", "pending")
    assert data["task_id"].startswith("ansible-exec-")
    assert (data["playbook_id"], data["playbook_name"]) == (hello_id, "hello")
    assert data["target_nodes"] == fleet.nodes
    assert data["cluster_name"] == fleet.cluster_name
    await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=100)
    response = await knm_client.get(
        f"/automation/ansible/status/{data['task_id']}", headers=admin_headers
    )
    status = assert_envelope(response, 200)["data"]
    assert status["status"] == "completed", status
    assert status["playbook_name"] == "hello"
    assert (status["success_count"], status["failed_count"]) == (3, 0)
    results = by_node(status)
    assert results["node1"]["ok"] == 4 and results["node2"]["ok"] == 3
    for result in results.values():
        assert result["status"] == "success"
        assert (result["failed"], result["unreachable"], result["changed"]) == (0, 0, 0)
    assert "PLAY [hello]" in status["output"]
    assert "hello world from node2" in status["output"]
    assert "zone=z1 roles=worker" in status["output"]
    assert "I am the control plane" in status["output"]


async def test_an_unreachable_node_fails_alone(
    run_playbook: Runner, hello_id: int, fleet: Fleet
) -> None:
    status = await run_playbook(playbook_id=hello_id, target_nodes=[*fleet.nodes, fleet.refused])
    assert status["status"] == "failed"
    results = by_node(status)
    refused = results[fleet.refused]
    assert (refused["status"], refused["reason"]) == ("failed", "unreachable")
    assert refused["unreachable"] == 1
    assert all(results[node]["status"] == "success" for node in fleet.nodes)
    assert (status["success_count"], status["failed_count"]) == (3, 1)


async def test_a_task_failing_on_one_node_fails_that_node(
    run_playbook: Runner, add_playbook: Any
) -> None:
    playbook = await add_playbook("fail on node2", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: "false"
      when: inventory_hostname == "node2"
    - ansible.builtin.debug: msg=after
""")  # fmt: skip
    status = await run_playbook(playbook_id=playbook)
    results = by_node(status)
    assert (results["node2"]["status"], results["node2"]["reason"]) == ("failed", "task_failed")
    assert results["node2"]["failed"] == 1
    assert "non-zero return code" in results["node2"]["message"]
    assert results["node1"]["status"] == results["node3"]["status"] == "success"
    assert results["node1"]["skipped"] == 1


async def test_check_mode_changes_nothing(run_playbook: Runner, add_playbook: Any) -> None:
    target = f"/tmp/knm-ansible-check-{uuid.uuid4().hex}"
    playbook = await add_playbook("write a file", f"""
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        content: "written\\n"
        dest: "{target}-{{{{ inventory_hostname }}}}"
""")  # fmt: skip
    status = await run_playbook(playbook_id=playbook, extra_args="--check --diff")
    assert status["status"] == "completed", status
    assert all(r["changed"] == 1 for r in status["results"])
    assert not list(Path("/tmp").glob(Path(target).name + "*"))
    assert status["extra_args"] == "--check --diff"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"extra_vars": {"ansible_user": "root"}}, "ansible_user"),
        ({"extra_vars": {"ansible_become_password": "x", "ok": 1}}, "ansible_become_password"),
        ({"extra_args": "--check -e x=1"}, "'-e'"),
        ({"extra_args": "--become"}, "'--become'"),
        ({"extra_args": "--limit node9"}, "node9"),
        ({"extra_args": "--ssh-common-args=-oProxyCommand=x"}, "--ssh-common-args"),
    ],
)
async def test_forbidden_extra_vars_and_args_are_422_naming_them(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, hello_id: int,
    body: dict[str, Any], named: str,
) -> None:  # fmt: skip
    request = {"playbook_id": hello_id, "cluster_name": fleet.cluster_name,
               "target_nodes": fleet.nodes, "credential_id": fleet.credential_id, **body}  # fmt: skip
    response = await knm_client.post("/automation/ansible/run", json=request, headers=admin_headers)
    assert named in assert_envelope(response, 422)["error"]


async def test_an_unknown_playbook_is_404(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    request = {"playbook_id": 999999, "cluster_name": fleet.cluster_name,
               "target_nodes": fleet.nodes, "credential_id": fleet.credential_id}  # fmt: skip
    response = await knm_client.post("/automation/ansible/run", json=request, headers=admin_headers)
    assert assert_envelope(response, 404)["error"] == "Playbook ID 999999 not found"


async def test_limit_runs_on_a_subset_and_skips_the_rest(
    run_playbook: Runner, hello_id: int
) -> None:
    status = await run_playbook(playbook_id=hello_id, extra_args="--limit node1,node3 -v")
    results = by_node(status)
    assert results["node1"]["status"] == results["node3"]["status"] == "success"
    assert (results["node2"]["status"], results["node2"]["reason"]) == ("failed", "skipped")


async def test_a_localhost_play_can_neither_list_nor_read_knms_data_dir(
    run_playbook: Runner, add_playbook: Any, data_dir: Path, fleet: Fleet, local_plays_allowed: None
) -> None:
    secret = data_dir / "secret.txt"
    playbook = await add_playbook("peek", f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.command: id -un
      changed_when: false
    - ansible.builtin.command: ls {data_dir}
      changed_when: false
      ignore_errors: true
    - ansible.builtin.command: cat {secret}
      changed_when: false
""")  # fmt: skip
    status = await run_playbook(playbook_id=playbook, target_nodes=["node1"])
    assert "knm-data-dir-secret" not in status["output"], status["output"]
    assert "knm-ansible" in status["output"]
    assert "Permission denied" in status["output"], status["output"]
    (result,) = status["results"]
    assert (result["status"], result["reason"]) == ("failed", "task_failed")
    assert result["message"].startswith("a play on localhost failed")
    assert secret.read_text() == "knm-data-dir-secret\n"  # still there: the run was refused
    assert "runtime" not in status["output"]  # the listing was refused too
    # The run did not close the data dir: the mirrored Python in it stays reachable.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o711


async def test_a_run_past_its_timeout_is_stopped_and_its_nodes_fail_with_timeout(
    run_playbook: Runner, add_playbook: Any, fleet: Fleet
) -> None:
    playbook = await add_playbook("slow", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 3600
""")  # fmt: skip
    status = await run_playbook(playbook_id=playbook, target_nodes=["node3"], timeout=3)
    (result,) = status["results"]
    assert (result["status"], result["reason"]) == ("failed", "timeout")
    assert "timed out after 3 s" in result["message"]


def _run_processes(task_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == task_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def test_cancel_kills_the_run_and_its_remote_commands_with_no_secret_in_sight(
    start_run: Runner, add_playbook: Any, fleet: Fleet, knm_client: ApiClient,
    admin_headers: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    playbook = await add_playbook("sleep", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 3600
""")  # fmt: skip
    data = await start_run(playbook_id=playbook, extra_args="-vvvv")
    task_id = data["task_id"]

    async def all_sleeping() -> bool:
        return len(sleeping_on(fleet)) == 3

    await eventually(all_sleeping, deadline=60)
    running = _run_processes(task_id)
    assert running, "the run's processes carry the mark"
    password = fleet.sshd.password
    # Every process of ours: this test process's descendants, and all of the run user's.
    ours = {p.pid: p for p in psutil.Process().children(recursive=True)}
    ours.update({p.pid: p for p in running})
    ours.update({p.pid: p for p in psutil.process_iter(["username"])
                 if p.info["username"] == "knm-ansible"})  # fmt: skip
    assert len(ours) > 3
    for proc in ours.values():
        try:
            assert password not in " ".join(proc.cmdline())
            assert password not in str(proc.environ())
        except psutil.Error:
            continue
    response = await knm_client.post(f"/automation/ansible/cancel/{task_id}", headers=admin_headers)
    assert_envelope(response, 200)
    await wait_for_task(knm_client, admin_headers, task_id)
    status = assert_envelope(
        await knm_client.get(f"/automation/ansible/status/{task_id}", headers=admin_headers), 200
    )["data"]
    assert status["status"] == "cancelled"
    assert {r["reason"] for r in status["results"]} == {"cancelled"}
    assert _run_processes(task_id) == []

    async def remote_gone() -> bool:
        return not sleeping_on(fleet)

    await eventually(remote_gone, deadline=15)
    assert "TASK [ansible.builtin.command]" in status["output"]
    assert password not in status["output"] and password not in str(status)
    assert password not in caplog.text


async def test_stored_output_never_holds_the_password_even_when_a_play_prints_it(
    run_playbook: Runner, add_playbook: Any, fleet: Fleet
) -> None:
    playbook = await add_playbook("leak", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "the password is {{ ansible_password }}"
""")  # fmt: skip
    status = await run_playbook(playbook_id=playbook, target_nodes=["node1"])
    assert status["status"] == "completed"
    assert "the password is ********" in status["output"]
    assert fleet.sshd.password not in str(status)


async def test_a_changed_host_key_fails_that_node_only(
    knm_client: ApiClient, admin_headers: dict[str, str], run_playbook: Runner, hello_id: int,
    fleet: Fleet,
) -> None:  # fmt: skip
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    pin = f"/automation/ssh/host-keys/{fleet.cluster_name}/node2"
    response = await knm_client.put(pin, json={"public_key": other}, headers=admin_headers)
    assert response.status_code < 300, response.text
    try:
        status = await run_playbook(playbook_id=hello_id)
    finally:
        await knm_client.delete(pin, headers=admin_headers)
    results = by_node(status)
    assert (results["node2"]["status"], results["node2"]["reason"]) == (
        "failed", "host_key_changed"
    ), results["node2"]["message"]  # fmt: skip
    assert results["node1"]["status"] == results["node3"]["status"] == "success"


async def test_kept_artifacts_hold_no_secret_and_are_no_longer_the_run_users(
    knm_client: ApiClient, admin_headers: dict[str, str], run_playbook: Runner, add_playbook: Any,
    fleet: Fleet, outside_tmp: Path,
) -> None:  # fmt: skip
    playbook = await add_playbook("print the password", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "{{ ansible_password }}"
""")  # fmt: skip
    keep = {"keep_artifacts": True}
    features = "/features/automation/ansible"
    assert_envelope(await knm_client.put(features, json=keep, headers=admin_headers), 200)
    try:
        status = await run_playbook(playbook_id=playbook, target_nodes=["node1"])
    finally:
        reset = {"keep_artifacts": False}
        assert_envelope(await knm_client.put(features, json=reset, headers=admin_headers), 200)
    run_dir = outside_tmp / "runs" / status["task_id"]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.match("job_events/*.json") for p in files)
    assert not [p for p in files if p.name in ("all.yml", "ssh_key", "ssh_key_data")]
    assert all(p.stat().st_uid == 0 for p in [run_dir, *files])
    assert not [p for p in files if fleet.sshd.password in p.read_text(errors="replace")]
