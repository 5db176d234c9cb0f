"""Every request example of the wire contract, replayed on a fresh install, and the shapes it
shows checked: what a client written from the contract alone sends and expects.

The examples' ids are literal (playbook 1, script 1, workflow 1, credential 1) and so are their
bodies; only hosts and secrets come from the test fleet.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import websockets

from knm.core.keys import derive_key
from knm.testing.database import TEST_ADMIN_PASSWORD, TEST_SECRET
from knm.testing.sshfleet import SshFleet
from knm.testing.tasks import is_complete, wait_for_event_sync

from .conftest import CLUSTER, Api

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TASK_STATES = {"pending", "running", "completed", "failed", "cancelled"}
TERMINAL = {"completed", "failed", "cancelled"}
STEP_STATES = {"pending", "running", "completed", "failed", "skipped", "cancelled"}
#: The contract's task ids: ``<kind>-exec-<unix seconds>-<6 random [a-z0-9]>``.
TASK_ID = r"^{}-exec-\d{{10}}-[a-z0-9]{{6}}$"


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    """The body, after the contract's envelope rules: ``code`` equals the HTTP status; errors
    carry ``message`` and ``error``, successes ``message`` (and ``data`` when there is any)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    assert isinstance(body["message"], str) and body["message"]
    if status >= 400:
        assert isinstance(body["error"], str) and body["error"]
        assert "Traceback" not in response.text
    return body


def data(response: httpx.Response, status: int = 200) -> Any:
    return envelope(response, status)["data"]


def is_time(value: Any) -> bool:
    return isinstance(value, str) and bool(RFC3339.match(value))


def wait(api: Api, path: str, deadline: float = 240.0) -> dict[str, Any]:
    """A task's status (``path``) once its ``complete`` event is out (never asserts on time)."""
    task_id = path.rstrip("/").rpartition("/")[2]
    headers = {"Authorization": f"Bearer {api.token}"}
    wait_for_event_sync(api.server.api, task_id, is_complete, headers, deadline)
    return data(api.get(path))


def check_status_common(status: dict[str, Any], nodes: list[str]) -> None:
    """The fields every status answer carries, as the contract lists them."""
    for field in ("task_id", "status", "cluster_name", "target_nodes", "success_count",
                  "failed_count", "start_time", "end_time", "duration", "results"):  # fmt: skip
        assert field in status, field
    assert status["status"] in TERMINAL
    assert status["cluster_name"] == CLUSTER and status["target_nodes"] == nodes
    assert is_time(status["start_time"]) and is_time(status["end_time"])
    assert isinstance(status["duration"], int) and status["duration"] >= 0
    assert status["success_count"] + status["failed_count"] == len(nodes)
    assert sorted(r["node"] for r in status["results"]) == sorted(nodes)
    for result in status["results"]:
        assert result["status"] in ("success", "failed")
        assert "message" in result
        if result["status"] == "failed":
            assert result["reason"]


def check_history(api: Api, route: str, task_id: str, display: str, value: Any) -> None:
    page = data(api.get(f"/automation/{route}/history", params={"page": 1, "page_size": 20}))
    assert isinstance(page["total"], int) and page["total"] >= 1
    (row,) = [r for r in page["executions"] if r["task_id"] == task_id]
    for field in ("id", "task_id", "cluster_name", "target_nodes", "status", "success_count",
                  "failed_count", "start_time", "end_time", "duration", "user_id",
                  "username"):  # fmt: skip
        assert field in row, field
    assert row[display] == value and "summary" not in row
    assert row["username"] == "admin" and row["user_id"] == 1
    today = datetime.now(UTC).date().isoformat()
    filtered = data(
        api.get(
            f"/automation/{route}/history",
            params={"cluster_name": CLUSTER, "status": row["status"], "start_date": today,
                    "end_date": today, "page": 1, "page_size": 20},
        )
    )  # fmt: skip
    assert task_id in {r["task_id"] for r in filtered["executions"]}


# --- authentication ----------------------------------------------------------------------------


def test_login_answers_the_token_and_the_user(api: Api) -> None:
    body = envelope(
        api.http.post("/auth/login", json={"username": "admin", "password": TEST_ADMIN_PASSWORD}),
        200,
    )
    assert body["message"] == "login successful"
    assert isinstance(body["data"]["token"], str) and body["data"]["token"]
    user = body["data"]["user"]
    assert {k: user[k] for k in ("id", "username", "role")} == {
        "id": 1, "username": "admin", "role": "admin",
    }  # fmt: skip


def test_every_route_but_features_and_login_needs_a_valid_token(api: Api) -> None:
    envelope(api.http.get("/features"), 200)
    envelope(api.http.get("/automation/ansible/playbooks"), 401)
    key = derive_key(TEST_SECRET, "jwt-signing")
    now = datetime.now(UTC)
    claims = {"sub": "1", "role": "admin", "jti": uuid.uuid4().hex, "ep": 0}
    expired = jwt.encode(
        {**claims, "iat": int((now - timedelta(hours=2)).timestamp()),
         "exp": int((now - timedelta(hours=1)).timestamp())},
        key, algorithm="HS256",
    )  # fmt: skip
    forged = jwt.encode(
        {**claims, "iat": int(now.timestamp()), "exp": int((now + timedelta(hours=1)).timestamp())},
        b"not-the-key-" * 3, algorithm="HS256",
    )  # fmt: skip
    for token in ("not-a-jwt", expired, forged):
        response = api.http.get(
            "/automation/ansible/playbooks", headers={"Authorization": f"Bearer {token}"}
        )
        envelope(response, 401)


def test_a_role_too_low_is_403_and_only_admins_change_feature_flags(api: Api) -> None:
    created = api.post(
        "/users", json={"username": "ops", "password": "ops-password-1", "role": "operator"}
    )
    envelope(created, 201)
    operator = api.login("ops", "ops-password-1")
    response = api.put("/features/automation/enabled", json={"enabled": True}, token=operator)
    envelope(response, 403)


def test_repeated_failed_logins_are_429_with_retry_after(api: Api) -> None:
    for _ in range(3):
        envelope(api.http.post("/auth/login", json={"username": "mallory", "password": "x"}), 401)
    response = api.http.post("/auth/login", json={"username": "mallory", "password": "x"})
    envelope(response, 429)
    assert int(response.headers["Retry-After"]) > 0


# --- envelope and the 400/422/404 rule ---------------------------------------------------------


def test_the_400_and_422_rule(api: Api, production: dict[str, Any]) -> None:
    ssh = "/automation/ssh/execute"
    good = {"cluster_name": CLUSTER, "target_nodes": ["node1"], "credential_id": 1,
            "command": "df -h", "timeout": 60}  # fmt: skip
    not_json = api.post(ssh, content=b"{not json", headers={"Content-Type": "application/json"})
    envelope(not_json, 400)
    missing = {k: v for k, v in good.items() if k != "command"}
    assert "command" in envelope(api.post(ssh, json=missing), 400)["error"]
    no_credential = {k: v for k, v in good.items() if k != "credential_id"}
    assert "credential_id" in envelope(api.post(ssh, json=no_credential), 400)["error"]
    wrong_type = {**good, "timeout": "60"}
    assert "timeout" in envelope(api.post(ssh, json=wrong_type), 400)["error"]
    enum = api.post("/users", json={"username": "u1", "password": "password-123", "role": "king"})
    assert "role" in envelope(enum, 400)["error"]
    envelope(api.post(ssh, json={**good, "timeout": 0}), 422)
    envelope(api.post(ssh, json={**good, "target_nodes": ["node99"]}), 422)
    unknown = api.post(ssh, json={**good, "credential_id": 999})
    assert envelope(unknown, 404)["error"] == "Credential ID 999 not found"
    cycle = {"name": "cyclic", "definition": {"steps": [
        {"id": "a", "type": "ssh", "command": "true", "depends_on": ["b"]},
        {"id": "b", "type": "ssh", "command": "true", "depends_on": ["a"]},
    ]}}  # fmt: skip
    envelope(api.post("/automation/workflows", json=cycle), 422)
    for route, field, label in (
        ("/automation/ansible/run", "playbook_id", "Playbook"),
        ("/automation/scripts/execute", "script_id", "Script"),
        ("/automation/workflows/execute", "workflow_id", "Workflow"),
    ):
        body = {field: 999, "cluster_name": CLUSTER, "target_nodes": ["node1"], "credential_id": 1}
        assert envelope(api.post(route, json=body), 404)["error"] == f"{label} ID 999 not found"


def test_unknown_routes_and_methods_answer_in_the_envelope(api: Api) -> None:
    envelope(api.get("/no/such/route"), 404)
    envelope(api.call("PATCH", "/features"), 405)


# --- features ----------------------------------------------------------------------------------


def test_features_show_every_switch_without_auth(api: Api) -> None:
    automation = data(api.http.get("/features"))["automation"]
    for switch in ("enabled", "ansible_enabled", "ssh_enabled", "scripts_enabled",
                   "workflows_enabled"):  # fmt: skip
        assert automation[switch] is True


def test_admins_change_switches_and_executor_settings(
    api: Api, production: dict[str, Any], ansible_temp_dir: str
) -> None:
    envelope(api.put("/features/automation/enabled", json={"enabled": True}), 200)
    ssh = {"timeout": 300, "max_concurrent": 50, "connection_pool_size": 20}
    envelope(api.put("/features/automation/ssh", json=ssh), 200)
    before = data(api.get("/features/automation"))["ansible"]
    example = {"binary_path": "/usr/bin/ansible-playbook", "temp_dir": ansible_temp_dir,
               "timeout": 3600, "max_concurrent": 10}  # fmt: skip
    restore = {k: before[k] for k in ("binary_path", "temp_dir", "timeout", "max_concurrent")}
    try:
        response = api.put("/features/automation/ansible", json=example)
        if os.access(example["binary_path"], os.X_OK):
            envelope(response, 200)
        else:
            # Ansible is switched on, and a binary_path that cannot run would leave it broken.
            assert "binary_path" in envelope(response, 422)["error"]
    finally:
        envelope(api.put("/features/automation/ansible", json=restore), 200)


def test_a_switch_that_is_off_answers_403_feature_disabled(
    api: Api, production: dict[str, Any]
) -> None:
    envelope(api.put("/features/automation/ssh", json={"enabled": False}), 200)
    try:
        assert data(api.http.get("/features"))["automation"]["ssh_enabled"] is False
        body = {"cluster_name": CLUSTER, "target_nodes": ["node1"], "credential_id": 1,
                "command": "true"}  # fmt: skip
        refused = envelope(api.post("/automation/ssh/execute", json=body), 403)
        assert refused["message"] == "feature disabled" and "ssh" in refused["error"]
    finally:
        envelope(api.put("/features/automation/ssh", json={"enabled": True}), 200)


# --- ids and content ---------------------------------------------------------------------------


def test_a_fresh_install_has_playbook_script_and_workflow_1_builtins_first(api: Api) -> None:
    for route in ("ansible/playbooks", "scripts", "workflows"):
        item = data(api.get(f"/automation/{route}/1"))
        assert item["id"] == 1 and item["is_builtin"] is True
        listed = data(api.get(f"/automation/{route}", params={"page": 1, "page_size": 100}))
        ids = [i["id"] for i in listed[route.split("/")[-1]] if i["is_builtin"]]
        assert sorted(ids) == list(range(1, len(ids) + 1))


def test_playbooks_list_read_create_update_and_delete(api: Api) -> None:
    route = "/automation/ansible/playbooks"
    listed = data(api.get(route, params={"category": "diagnostics", "is_builtin": "true",
                                         "page": 1, "page_size": 20}))  # fmt: skip
    assert listed["total"] >= 1 and all(p["is_builtin"] for p in listed["playbooks"])
    one = data(api.get(f"{route}/1"))
    for field in ("id", "name", "description", "content", "category", "is_builtin", "is_active",
                  "version", "tags", "created_at", "updated_at"):  # fmt: skip
        assert field in one, field
    body = {"name": "Uptime", "description": "how long", "category": "diagnostics",
            "tags": ["read-only"],
            "content": "- hosts: all\n  gather_facts: false\n  tasks:\n"
                       "    - ansible.builtin.command: uptime\n"}  # fmt: skip
    created = data(api.post(route, json=body), 201)
    assert created["id"] > 1 and created["version"] == 1 and created["tags"] == ["read-only"]
    updated = data(api.put(f"{route}/{created['id']}", json={"description": "still how long"}))
    assert updated["version"] == 2
    again = data(api.put(f"{route}/{created['id']}", json={"description": "still how long"}))
    assert again["version"] == 3
    invalid = api.post(route, json={**body, "name": "Broken", "content": "- hosts: [unclosed"})
    envelope(invalid, 422)
    envelope(api.post(route, json=body), 409)
    envelope(api.delete(f"{route}/1"), 409)
    envelope(api.delete(f"{route}/{created['id']}"), 200)
    missing = api.get(f"{route}/999")
    assert envelope(missing, 404)["error"] == "Playbook ID 999 not found"


def test_scripts_list_without_content_and_read_with_parameters(api: Api) -> None:
    route = "/automation/scripts"
    listed = data(api.get(route, params={"language": "shell", "page": 1, "page_size": 20}))
    assert listed["total"] >= 1 and all("content" not in s for s in listed["scripts"])
    one = data(api.get(f"{route}/1"))
    for field in ("id", "name", "description", "content", "language", "category", "is_builtin",
                  "is_active", "version", "tags", "parameters"):  # fmt: skip
        assert field in one, field
    for parameter in one["parameters"]:
        assert {"name", "description", "default"} <= parameter.keys()
    created = data(api.post(route, json={"name": "hello", "content": "echo hello\n"}), 201)
    assert data(api.put(f"{route}/{created['id']}", json={"content": "echo hi\n"}))["version"] == 2
    envelope(api.delete(f"{route}/{created['id']}"), 200)


def test_workflows_list_with_step_counts_and_read_with_the_definition(api: Api) -> None:
    route = "/automation/workflows"
    listed = data(api.get(route, params={"page": 1, "page_size": 20}))
    assert all(isinstance(w["step_count"], int) for w in listed["workflows"])
    one = data(api.get(f"{route}/1"))
    for step in one["definition"]["steps"]:
        assert {"id", "type"} <= step.keys()
    body = {"name": "echo twice", "definition": {"steps": [
        {"id": "step1", "name": "first", "type": "ssh", "command": "echo one", "timeout": 60},
        {"id": "step2", "name": "second", "type": "ssh", "command": "echo two",
         "depends_on": ["step1"]},
    ]}}  # fmt: skip
    created = data(api.post(route, json=body), 201)
    assert data(api.put(f"{route}/{created['id']}", json={"description": "x"}))["version"] == 2
    envelope(api.delete(f"{route}/{created['id']}"), 200)


# --- executions --------------------------------------------------------------------------------


def test_the_ansible_example_runs_playbook_1(api: Api, production: dict[str, Any]) -> None:
    body = {"playbook_id": 1, "cluster_name": "production", "target_nodes": ["node1", "node2"],
            "credential_id": 1, "extra_args": "--check",
            "extra_vars": {"ntp_server": "pool.ntp.org"}}  # fmt: skip
    started = data(api.post("/automation/ansible/run", json=body))
    assert re.match(TASK_ID.format("ansible"), started["task_id"])
    assert started["status"] in ("running", "pending") and started["playbook_id"] == 1
    assert started["playbook_name"] == data(api.get("/automation/ansible/playbooks/1"))["name"]
    assert started["cluster_name"] == CLUSTER and started["target_nodes"] == ["node1", "node2"]
    assert is_time(started["start_time"])
    status = wait(api, f"/automation/ansible/status/{started['task_id']}")
    check_status_common(status, ["node1", "node2"])
    assert status["playbook_name"] == started["playbook_name"]
    assert isinstance(status["output"], str) and "PLAY [" in status["output"]
    assert status["status"] == "completed", status
    cancel = api.post(f"/automation/ansible/cancel/{started['task_id']}")
    envelope(cancel, 409)
    check_history(api, "ansible", started["task_id"], "playbook_name", started["playbook_name"])


def test_the_ssh_example_runs_df_and_a_dangerous_command_is_refused(
    api: Api, production: dict[str, Any]
) -> None:
    body = {"cluster_name": "production", "target_nodes": ["node1", "node2"],
            "credential_id": 1, "command": "df -h", "timeout": 60}  # fmt: skip
    started = data(api.post("/automation/ssh/execute", json=body))
    assert re.match(TASK_ID.format("ssh"), started["task_id"])
    assert started["status"] in ("running", "pending") and started["command"] == "df -h"
    assert started["cluster_name"] == CLUSTER and started["target_nodes"] == ["node1", "node2"]
    assert is_time(started["start_time"])
    status = wait(api, f"/automation/ssh/status/{started['task_id']}")
    check_status_common(status, ["node1", "node2"])
    assert status["command"] == "df -h" and status["status"] == "completed"
    for result in status["results"]:
        assert (result["status"], result["exit_code"]) == ("success", 0)
        assert "Filesystem" in result["stdout"] and isinstance(result["stderr"], str)
    check_history(api, "ssh", started["task_id"], "command", "df -h")
    refused = api.post("/automation/ssh/execute", json={**body, "command": "rm -rf /"})
    assert refused.json() == {
        "code": 422, "message": "command validation failed",
        "error": "dangerous command blocked: rm -rf /",
    }  # fmt: skip


def test_a_node_that_timed_out_shows_exit_code_null(api: Api, production: dict[str, Any]) -> None:
    body = {"cluster_name": CLUSTER, "target_nodes": ["node1"], "credential_id": 1,
            "command": "sleep 30", "timeout": 1}  # fmt: skip
    started = data(api.post("/automation/ssh/execute", json=body))
    (result,) = wait(api, f"/automation/ssh/status/{started['task_id']}")["results"]
    assert (result["status"], result["reason"]) == ("failed", "timeout")
    assert "exit_code" in result and result["exit_code"] is None


def test_the_scripts_example_runs_script_1_with_its_parameter(
    api: Api, production: dict[str, Any]
) -> None:
    body = {"script_id": 1, "cluster_name": "production", "target_nodes": ["node1"],
            "credential_id": 1, "parameters": {"PORT": "8080"}, "timeout": 300}  # fmt: skip
    started = data(api.post("/automation/scripts/execute", json=body))
    assert re.match(TASK_ID.format("script"), started["task_id"])
    assert started["status"] in ("running", "pending")
    status = wait(api, f"/automation/scripts/status/{started['task_id']}")
    check_status_common(status, ["node1"])
    (result,) = status["results"]
    assert {"node", "status", "exit_code", "stdout", "stderr"} <= result.keys()
    assert "8080" in result["stdout"]
    name = data(api.get("/automation/scripts/1"))["name"]
    check_history(api, "scripts", started["task_id"], "script_name", name)


def test_the_workflows_example_runs_workflow_1_and_its_steps_read_as_the_contract_says(
    api: Api, production: dict[str, Any]
) -> None:
    workflow = data(api.get("/automation/workflows/1"))
    steps = workflow["definition"]["steps"]
    body = {"workflow_id": 1, "cluster_name": "production", "target_nodes": ["node1"],
            "credential_id": 1, "parameters": {"global_param1": "value1"}}  # fmt: skip
    started = data(api.post("/automation/workflows/execute", json=body))
    assert re.match(TASK_ID.format("workflow"), started["task_id"])
    assert started["status"] in ("running", "pending")
    assert started["workflow_name"] == workflow["name"]
    assert started["current_step"] == steps[0]["id"]
    assert started["total_steps"] == len(steps) and is_time(started["start_time"])
    status = wait(api, f"/automation/workflows/status/{started['task_id']}")
    try:
        check_status_common(status, ["node1"])
        assert status["total_steps"] == len(steps) and "current_step" in status
        assert {s["id"] for s in status["steps"]} == {s["id"] for s in steps}
        for step in status["steps"]:
            for field in ("id", "name", "status", "start_time", "end_time", "duration", "result",
                          "progress"):  # fmt: skip
                assert field in step, field
            assert step["status"] in STEP_STATES
            if step["status"] == "completed":
                assert step["result"] == "success"
            if step["status"] == "failed":
                assert step["result"] == "failed"
        assert status["status"] == "completed", status
        assert {s["status"] for s in status["steps"]} == {"completed"}
        check_history(api, "workflows", started["task_id"], "workflow_name", workflow["name"])
    finally:
        _remove_collected_logs(api, status)


def _remove_collected_logs(api: Api, status: dict[str, Any]) -> None:
    """The diagnostics workflow's log bundle lands in the nodes' /tmp: here, this machine's."""
    for step in status.get("steps", []):
        if not step.get("task_id"):
            continue
        child = data(api.get(f"/tasks/{step['task_id']}"))
        for result in child["results"]:
            for line in (result.get("stdout") or "").splitlines():
                if line.startswith("tarball: /tmp/knm-logs-"):
                    path = line.removeprefix("tarball: ")
                    if os.path.isfile(path):
                        os.remove(path)


def test_a_finished_step_reads_completed_with_result_success(
    api: Api, production: dict[str, Any]
) -> None:
    body = {"name": "two steps", "definition": {"steps": [
        {"id": "step1", "name": "first", "type": "ssh", "command": "echo one"},
        {"id": "step2", "name": "second", "type": "ssh", "command": "exit 3",
         "depends_on": ["step1"]},
        {"id": "step3", "name": "third", "type": "ssh", "command": "echo never",
         "depends_on": ["step2"]},
    ]}}  # fmt: skip
    workflow = data(api.post("/automation/workflows", json=body), 201)
    request = {"workflow_id": workflow["id"], "cluster_name": CLUSTER, "target_nodes": ["node1"],
               "credential_id": 1}  # fmt: skip
    started = data(api.post("/automation/workflows/execute", json=request))
    assert started["current_step"] == "step1"
    status = wait(api, f"/automation/workflows/status/{started['task_id']}")
    steps = {s["id"]: s for s in status["steps"]}
    assert (steps["step1"]["status"], steps["step1"]["result"]) == ("completed", "success")
    assert (steps["step2"]["status"], steps["step2"]["result"]) == ("failed", "failed")
    assert steps["step3"]["status"] == "skipped"
    assert is_time(steps["step1"]["start_time"]) and isinstance(steps["step1"]["duration"], int)
    assert status["status"] == "failed"


# --- live progress -----------------------------------------------------------------------------


async def test_the_websocket_sends_progress_and_one_complete_with_the_terminal_status(
    api: Api, production: dict[str, Any]
) -> None:
    url = api.server.api.replace("http://", "ws://") + f"/progress/ws?token={api.token}"
    body = {"cluster_name": CLUSTER, "target_nodes": ["node1", "node2"], "credential_id": 1,
            "command": "echo one; echo two"}  # fmt: skip
    async with websockets.connect(url) as socket:
        await socket.send("{not json")
        assert json.loads(await socket.recv())["type"] == "error"
        await socket.send(json.dumps({"action": "dance"}))
        assert json.loads(await socket.recv())["type"] == "error"
        started = data(api.post("/automation/ssh/execute", json=body))
        task_id = started["task_id"]
        await socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        messages = []
        while True:
            message = json.loads(await socket.recv())
            if message.get("task_id") != task_id:
                continue
            messages.append(message)
            if message["type"] == "complete":
                break
        await socket.send(json.dumps({"action": "unsubscribe", "task_id": task_id}))
    for message in messages:
        assert {"task_id", "type", "progress", "message", "data"} <= message.keys()
        assert 0 <= message["progress"] <= 100 and isinstance(message["data"], dict)
    assert messages[-1]["data"]["status"] == "completed"
    assert [m["type"] for m in messages].count("complete") == 1


# --- lists, credentials, clusters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "noun"),
    [
        ("/users", "users"),
        ("/credentials", "credentials"),
        ("/clusters", "clusters"),
        (f"/clusters/{CLUSTER}/nodes", "nodes"),
        ("/automation/ssh/history", "executions"),
        ("/automation/ansible/playbooks", "playbooks"),
        ("/automation/scripts", "scripts"),
        ("/automation/workflows", "workflows"),
    ],
)
def test_every_list_is_total_and_its_plural_noun_paged_by_page_and_page_size(
    api: Api, production: dict[str, Any], path: str, noun: str
) -> None:
    page = data(api.get(path, params={"page": 1, "page_size": 1}))
    assert isinstance(page["total"], int) and isinstance(page[noun], list)
    assert len(page[noun]) <= 1
    envelope(api.get(path, params={"page_size": 101}), 400)
    envelope(api.get(path, params={"page": 0}), 400)


def test_a_tasks_event_log_is_a_list_of_entries(api: Api, production: dict[str, Any]) -> None:
    body = {"cluster_name": CLUSTER, "target_nodes": ["node1"], "credential_id": 1,
            "command": "true"}  # fmt: skip
    started = data(api.post("/automation/ssh/execute", json=body))
    wait(api, f"/automation/ssh/status/{started['task_id']}")
    events = data(api.get(f"/tasks/{started['task_id']}/events"))
    assert isinstance(events["entries"], list) and events["entries"]


def test_secrets_are_write_only(api: Api, production: dict[str, Any], ssh_fleet: SshFleet) -> None:
    shown = data(api.get("/credentials/1"))
    listed = json.dumps(data(api.get("/credentials")))
    assert ssh_fleet.password not in json.dumps(shown) and ssh_fleet.password not in listed
    assert "password" not in shown and shown["has_password"] is True
