"""The SSH executor against real sshd nodes: results, failures with reasons, policy, sudo, cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster, create_fleet_credential
from knm.testing.sshfleet import FAULT_COMMANDS
from knm.testing.tasks import eventually, wait_for_task

Runner = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module", params=["asyncssh", "libssh2"])
def ssh_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs with each SSH client (the settings' ``client``)."""
    return str(request.param)


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    # A small cap keeps the 50 MB output test about draining, not about storing.
    return {"output_cap": 256 * 1024}


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


async def test_a_command_runs_on_every_node_with_its_output_and_exit_code(
    start_ssh: Runner, knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    data = await start_ssh(command="echo out-$(hostname -I 2>/dev/null | wc -c); echo err >&2")
    assert data["status"] == "running"
    assert data["command"].startswith("echo out-")
    assert data["target_nodes"] == fleet.nodes
    assert data["cluster_name"] == fleet.cluster_name
    assert data["task_id"].startswith("ssh-exec-")
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "completed"
    assert (status["success_count"], status["failed_count"]) == (3, 0)
    for result in status["results"]:
        assert result["status"] == "success"
        assert result["exit_code"] == 0
        assert result["stdout"].startswith("out-")
        assert result["stderr"] == "err\n"


async def test_each_node_reports_its_own_exit_code(run_ssh: Runner, fleet: FleetCluster) -> None:
    # SSH_CONNECTION's server address tells the nodes apart: 127.0.0.2 → exit 2, ...
    status = await run_ssh(command="exit $(echo $SSH_CONNECTION | cut -d' ' -f3 | cut -d. -f4)")
    assert status["status"] == "failed"
    results = by_node(status)
    for node, code in zip(fleet.nodes, (2, 3, 4), strict=True):
        assert results[node]["status"] == "failed"
        assert results[node]["exit_code"] == code
        assert results[node]["reason"] == "exit_code"
        assert results[node]["message"] == f"exit code {code}"


async def test_a_command_reading_stdin_gets_end_of_file_instead_of_hanging(run_ssh: Runner) -> None:
    status = await run_ssh(command="cat; echo done", timeout=20)
    assert all(r["stdout"] == "done\n" for r in status["results"])


async def test_a_command_killed_by_a_signal_says_so(run_ssh: Runner) -> None:
    status = await run_ssh(command="kill -TERM $$", target_nodes=["node1"])
    (result,) = status["results"]
    assert (result["status"], result["reason"]) == ("failed", "signal")
    assert result["message"] == "killed by signal TERM"


async def test_every_fault_fails_only_its_node_with_a_reason(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    status = await run_ssh(
        command="echo fine", target_nodes=[*fleet.nodes, fleet.refused, fleet.silent]
    )
    results = by_node(status)
    assert all(results[node]["status"] == "success" for node in fleet.nodes)
    refused = results[fleet.refused]
    assert (refused["status"], refused["reason"]) == ("failed", "unreachable")
    assert "connection refused" in refused["message"]
    silent = results[fleet.silent]
    assert (silent["status"], silent["reason"]) == ("failed", "unreachable")
    assert "timed out" in silent["message"]
    assert (status["success_count"], status["failed_count"]) == (3, 2)


async def test_a_wrong_password_fails_with_auth_failed(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str],
    ssh_client: str,
) -> None:  # fmt: skip
    wrong = await create_fleet_credential(
        knm_client,
        admin_headers,
        fleet.fleet,
        name=f"wrong-password-{ssh_client}",
        password="not-it-at-all",
    )
    status = await run_ssh(command="true", credential_id=wrong, target_nodes=["node1"])
    (result,) = status["results"]
    assert (result["status"], result["reason"]) == ("failed", "auth_failed"), result
    assert "not-it-at-all" not in str(status)


async def test_a_hanging_command_times_out_and_the_others_still_succeed(
    run_ssh: Runner, fleet: FleetCluster
) -> None:
    command = f'if [ "$(echo $SSH_CONNECTION | cut -d" " -f3)" = "{fleet.fleet.nodes[1].address}" ]; then {FAULT_COMMANDS.hang}; fi; echo ok'
    status = await run_ssh(command=command, timeout=2)
    results = by_node(status)
    assert results["node2"]["reason"] == "timeout"
    assert results["node1"]["status"] == results["node3"]["status"] == "success"
    await _no_session_left(fleet, "sleep 3600")


async def test_a_connection_dropped_mid_command_is_connection_lost(
    run_ssh: Runner, fleet: FleetCluster
) -> None:
    status = await run_ssh(
        command=FAULT_COMMANDS.kill_connection, target_nodes=["node1"], timeout=30
    )
    (result,) = status["results"]
    assert (result["status"], result["reason"]) == ("failed", "connection_lost")
    assert result["stdout"] == "started\n"
    ok = await run_ssh(command="echo again", target_nodes=["node1"])
    assert ok["results"][0]["stdout"] == "again\n"


async def test_huge_output_succeeds_with_stdout_truncated_at_the_cap(run_ssh: Runner) -> None:
    status = await run_ssh(command=FAULT_COMMANDS.big_output, target_nodes=["node1"], timeout=90)
    (result,) = status["results"]
    assert result["status"] == "success"
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 256 * 1024
    assert set(result["stdout"]) == {"x"}


async def test_cancel_stops_the_remote_command(
    start_ssh: Runner, knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    data = await start_ssh(command="echo going; sleep 3600", timeout=600)

    async def sleeping() -> bool:
        return len(_sessions(fleet, "sleep 3600")) == 3

    await eventually(sleeping)
    response = await knm_client.post(
        f"/automation/ssh/cancel/{data['task_id']}", headers=admin_headers
    )
    assert_envelope(response, 200)
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "cancelled"
    assert {r["reason"] for r in status["results"]} == {"cancelled"}
    await _no_session_left(fleet, "sleep 3600")


async def test_a_dangerous_command_is_refused_with_the_spec_body(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    response = await knm_client.post(
        "/automation/ssh/execute",
        json={"cluster_name": fleet.cluster_name, "target_nodes": ["node1"],
              "credential_id": fleet.credential_id, "command": "rm -rf /"},
        headers=admin_headers,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json() == {
        "code": 422, "message": "command validation failed",
        "error": "dangerous command blocked: rm -rf /",
    }  # fmt: skip


async def test_site_deny_rules_block_and_allow_rules_unblock(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster, run_ssh: Runner
) -> None:
    body = {"cluster_name": fleet.cluster_name, "target_nodes": ["node1"],
            "credential_id": fleet.credential_id}  # fmt: skip
    settings = {"deny_rules": [{"name": "no-reboot", "pattern": r"^reboot\b"}]}
    assert_envelope(
        await knm_client.put("/features/automation/ssh", json=settings, headers=admin_headers), 200
    )
    try:
        response = await knm_client.post(
            "/automation/ssh/execute", json={**body, "command": "reboot now"}, headers=admin_headers
        )
        assert assert_envelope(response, 422)["error"] == "dangerous command blocked: reboot now"
        allow = {"allow_rules": ["no-reboot"]}
        assert_envelope(
            await knm_client.put("/features/automation/ssh", json=allow, headers=admin_headers), 200
        )
        status = await run_ssh(command="echo reboot", target_nodes=["node1"])
        assert status["status"] == "completed"
    finally:
        reset = {"deny_rules": [], "allow_rules": []}
        await knm_client.put("/features/automation/ssh", json=reset, headers=admin_headers)


async def test_bad_policy_settings_are_422(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    bad_regex = {"deny_rules": [{"name": "broken", "pattern": "("}]}
    response = await knm_client.put(
        "/features/automation/ssh", json=bad_regex, headers=admin_headers
    )
    assert "not a valid regular expression" in assert_envelope(response, 422)["error"]
    unknown = {"allow_rules": ["no-such-rule"]}
    response = await knm_client.put("/features/automation/ssh", json=unknown, headers=admin_headers)
    assert "unknown rule 'no-such-rule'" in assert_envelope(response, 422)["error"]


async def test_the_feature_switch_off_is_403(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    await knm_client.put("/features/automation/ssh", json={"enabled": False}, headers=admin_headers)
    try:
        response = await knm_client.post(
            "/automation/ssh/execute",
            json={"cluster_name": fleet.cluster_name, "target_nodes": ["node1"],
                  "credential_id": fleet.credential_id, "command": "true"},
            headers=admin_headers,
        )  # fmt: skip
        assert assert_envelope(response, 403)["message"] == "feature disabled"
    finally:
        await knm_client.put(
            "/features/automation/ssh", json={"enabled": True}, headers=admin_headers
        )


async def test_an_unknown_node_is_422_and_an_unknown_credential_404(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    body = {
        "cluster_name": fleet.cluster_name,
        "credential_id": fleet.credential_id,
        "command": "true",
    }
    response = await knm_client.post(
        "/automation/ssh/execute", json={**body, "target_nodes": ["node9"]}, headers=admin_headers
    )
    assert "node9" in assert_envelope(response, 422)["error"]
    response = await knm_client.post(
        "/automation/ssh/execute",
        json={**body, "target_nodes": ["node1"], "credential_id": 999},
        headers=admin_headers,
    )
    assert assert_envelope(response, 404)["error"] == "Credential ID 999 not found"


async def test_sudo_with_a_password_runs_as_root_and_never_shows_the_password(
    run_ssh: Runner, fleet: FleetCluster, knm_database_url: str
) -> None:
    # Only what this test wrote is read: another test may store the password on purpose (as a
    # command whose output must be masked).
    conn = await asyncpg.connect(knm_database_url)
    try:
        audit_before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_log")
    finally:
        await conn.close()
    status = await run_ssh(command="id -u", sudo=True, target_nodes=["node1"])
    (result,) = status["results"]
    assert result["status"] == "success", result
    assert result["stdout"] == "0\n"
    assert status["sudo"] is True
    conn = await asyncpg.connect(knm_database_url)
    try:
        task_id = status["task_id"]
        stored = await conn.fetchval(
            "SELECT string_agg(data, '') FROM task_output WHERE task_id = $1", task_id
        )
        audit = await conn.fetchval(
            "SELECT string_agg(detail::text || target, ' ') FROM audit_log WHERE id > $1",
            audit_before,
        )
        requests = await conn.fetchval(
            "SELECT request::text FROM tasks WHERE task_id = $1", task_id
        )
    finally:
        await conn.close()
    assert stored and requests and audit, "the checks below read this test's rows"
    for text in (stored, audit, requests, str(status)):
        assert fleet.fleet.password not in (text or "")


async def test_sudo_of_a_shell_line_runs_it_through_sh(run_ssh: Runner) -> None:
    # The fleet's sudoers allows only id/whoami/true: a shell line through sh is refused there,
    # which shows the line went to sudo whole.
    status = await run_ssh(command="id -u && whoami", sudo=True, target_nodes=["node1"])
    (result,) = status["results"]
    assert result["reason"] == "exit_code"
    assert "/bin/sh" in result["stderr"] or "not allowed" in result["stderr"]


async def test_a_password_the_command_prints_is_masked_in_stored_output(
    run_ssh: Runner, fleet: FleetCluster
) -> None:
    password = fleet.fleet.password
    status = await run_ssh(command=f"echo 'x{password}y'", target_nodes=["node1"])
    assert status["results"][0]["stdout"] == "x********y\n"


@pytest.mark.parametrize("auth", ["key", "encrypted_key", "encrypted_key_pkcs8"])
async def test_key_auth_with_and_without_a_passphrase(
    auth: str,
    run_ssh: Runner,
    fleet: FleetCluster,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    ssh_client: str,
) -> None:
    credential = await create_fleet_credential(
        knm_client,
        admin_headers,
        fleet.fleet,
        auth=auth,
        name=f"fleet-{auth}-{ssh_client}",  # type: ignore[arg-type]
    )
    status = await run_ssh(command="whoami", credential_id=credential)
    assert status["status"] == "completed"
    assert {r["stdout"] for r in status["results"]} == {f"{fleet.fleet.username}\n"}


async def test_sudo_with_key_auth_uses_sudo_n_and_fails_without_a_password(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str],
    ssh_client: str,
) -> None:  # fmt: skip
    credential = await create_fleet_credential(
        knm_client, admin_headers, fleet.fleet, auth="key", name=f"key-for-sudo-{ssh_client}"
    )
    status = await run_ssh(
        command="id -u", sudo=True, credential_id=credential, target_nodes=["node1"]
    )
    (result,) = status["results"]
    assert result["reason"] == "exit_code"
    assert "password" in result["stderr"]


async def test_batch_size_and_max_failures_apply_to_ssh(
    run_ssh: Runner, fleet: FleetCluster
) -> None:
    status = await run_ssh(
        command="echo hi",
        target_nodes=[fleet.refused, "node1", "node2", "node3"],
        batch_size=1,
        max_failures=0,
    )
    results = by_node(status)
    assert results[fleet.refused]["reason"] == "unreachable"
    assert {results[n]["reason"] for n in fleet.nodes} == {"skipped"}


def _sessions(fleet: FleetCluster, cmdline: str) -> list[Any]:
    found = []
    for proc in fleet.fleet.session_processes():
        try:
            if " ".join(proc.cmdline()) == cmdline:
                found.append(proc)
        except Exception:
            continue
    return found


async def _no_session_left(fleet: FleetCluster, cmdline: str) -> None:
    async def gone() -> bool:
        return not _sessions(fleet, cmdline)

    await eventually(gone, deadline=30)


async def test_without_credential_id_the_clusters_default_is_used_and_without_one_it_is_400(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    body = {"cluster_name": fleet.cluster_name, "target_nodes": ["node1"], "command": "echo hi"}
    response = await knm_client.post("/automation/ssh/execute", json=body, headers=admin_headers)
    error = assert_envelope(response, 400)["error"]
    assert error.startswith("credential_id: required") and "default_credential_id" in error
    cluster = f"/clusters/{fleet.cluster_name}"
    changed = await knm_client.put(
        cluster, json={"default_credential_id": fleet.credential_id}, headers=admin_headers
    )
    assert_envelope(changed, 200)
    try:
        response = await knm_client.post(
            "/automation/ssh/execute", json=body, headers=admin_headers
        )
        task_id = assert_envelope(response, 200)["data"]["task_id"]
        status = await wait_for_task(knm_client, admin_headers, task_id)
        assert status["results"][0]["stdout"] == "hi\n"
        # A credential named in the request still wins over the default.
        named = await knm_client.post(
            "/automation/ssh/execute", json={**body, "credential_id": 999}, headers=admin_headers
        )
        assert_envelope(named, 404)
    finally:
        await knm_client.put(cluster, json={"default_credential_id": None}, headers=admin_headers)
