"""Scripts run on real sshd nodes: parameters as environment, values that stay data, secrets
that never show, big scripts, python, timeouts, cancel, sudo and unreachable nodes."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from knm.core.tasks import NodeResult
from knm.plugins.scripts.executor import outcome
from knm.plugins.scripts.preamble import MISSING_MARK, SH_FALLBACK_MARK
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import eventually, wait_for_task

from .conftest import SCRIPTS, Maker, Runner, by_node


@pytest.fixture(scope="module")
async def echo_script(make_script: Maker) -> dict[str, Any]:
    params = [
        {"name": "PORT", "required": True, "pattern": "[0-9]{1,5}"},
        {"name": "HOST", "default": "localhost"},
        {"name": "NOTE"},
    ]
    return await make_script('echo "port=$PORT host=$HOST note=${NOTE-unset}"\n', parameters=params)


async def _execute(
    client: ApiClient, headers: dict[str, str], fleet: FleetCluster, **body: Any
) -> Any:
    request = {"cluster_name": fleet.cluster_name, "credential_id": fleet.credential_id,
               "target_nodes": ["node1"], **body}  # fmt: skip
    return await client.post(f"{SCRIPTS}/execute", json=request, headers=headers)


async def test_a_script_runs_on_every_node_with_its_parameters_and_defaults(
    start_script: Runner,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    fleet: FleetCluster,
    echo_script: dict[str, Any],
) -> None:
    data = await start_script(script_id=echo_script["id"], parameters={"PORT": 8080})
    assert data["task_id"].startswith("script-exec-")
    assert data["status"] == "running"
    assert (data["script_id"], data["script_name"]) == (echo_script["id"], echo_script["name"])
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "completed"
    assert status["script_version"] == 1 and status["language"] == "shell"
    for result in status["results"]:
        assert (result["status"], result["exit_code"]) == ("success", 0)
        assert result["stdout"] == "port=8080 host=localhost note=unset\n"
        assert result["stderr"] == ""
    listed = await knm_client.get(f"{SCRIPTS}/history", headers=admin_headers)
    assert data["task_id"] in {
        e["task_id"] for e in assert_envelope(listed, 200)["data"]["executions"]
    }


async def test_a_script_can_be_named_instead_of_given_by_id(
    run_script: Runner, echo_script: dict[str, Any]
) -> None:
    status = await run_script(
        script=echo_script["name"].upper(),
        parameters={"PORT": "1", "NOTE": ""},
        target_nodes=["node2"],
    )
    assert status["results"][0]["stdout"] == "port=1 host=localhost note=\n"


@pytest.mark.parametrize(
    ("parameters", "said"),
    [
        ({}, "missing required parameters: PORT"),
        (
            {"PORT": "80", "OTHER": "x", "MORE": "y"},
            "undeclared parameters: MORE, OTHER (this script takes: PORT, HOST, NOTE)",
        ),
        ({"PORT": "80; id"}, "parameter PORT does not match [0-9]{1,5}"),
        ({"PORT": "123456"}, "parameter PORT does not match"),
    ],
)
async def test_bad_parameters_are_422_naming_them(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    fleet: FleetCluster,
    echo_script: dict[str, Any],
    parameters: dict[str, str],
    said: str,
) -> None:
    response = await _execute(
        knm_client, admin_headers, fleet, script_id=echo_script["id"], parameters=parameters
    )
    assert said in assert_envelope(response, 422)["error"]


@pytest.mark.timeout(60)
async def test_a_pathological_parameter_pattern_is_checked_in_linear_time(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster, make_script: Maker
) -> None:
    # With Python's re, (a|a)+ took 2 s at 24 characters and four times more per two more:
    # 48 characters would hold the event loop for days. RE2 answers at once.
    script = await make_script("echo $X\n", parameters=[{"name": "X", "pattern": "(a|a)+"}])
    response = await _execute(
        knm_client, admin_headers, fleet, script_id=script["id"], parameters={"X": "a" * 48 + "!"}
    )
    assert "parameter X does not match" in assert_envelope(response, 422)["error"]


async def test_a_parameter_pattern_re2_cannot_run_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.post(
        SCRIPTS,
        json={"name": f"backref-{uuid.uuid4().hex[:6]}", "content": "echo $X\n",
              "parameters": [{"name": "X", "pattern": "(a)\\1"}]},
        headers=admin_headers,
    )  # fmt: skip
    assert "pattern is not a usable regular expression" in assert_envelope(response, 422)["error"]


async def test_unknown_or_inactive_scripts_and_both_or_neither_reference(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster, make_script: Maker
) -> None:
    response = await _execute(knm_client, admin_headers, fleet, script_id=99999)
    assert assert_envelope(response, 404)["error"] == "Script ID 99999 not found"
    response = await _execute(knm_client, admin_headers, fleet, script="no such script")
    assert_envelope(response, 404)
    inactive = await make_script("true\n", is_active=False)
    assert_envelope(await _execute(knm_client, admin_headers, fleet, script_id=inactive["id"]), 409)
    both = await _execute(knm_client, admin_headers, fleet, script_id=1, script="x")
    assert "either script_id or script" in assert_envelope(both, 400)["error"]
    neither = await _execute(knm_client, admin_headers, fleet)
    assert "script_id: give either" in assert_envelope(neither, 400)["error"]


async def test_injection_attempts_in_values_run_nothing_on_the_nodes(
    run_script: Runner, make_script: Maker
) -> None:
    marker = Path(f"/tmp/knm-pwned-{uuid.uuid4().hex}")
    values = [f"$(touch {marker})", f"'; touch {marker}; '", f"`touch {marker}`",
              f"a\ntouch {marker}\n", f'"; touch {marker}; "']  # fmt: skip
    params = [{"name": f"V{i}"} for i in range(len(values))]
    shell = await make_script('printf "%s|" "$V0" "$V1" "$V2" "$V3" "$V4"\n', parameters=params)
    python = await make_script(
        "import os\nprint('|'.join(os.environ['V%d' % i] for i in range(5)))\n",
        language="python", parameters=params,
    )  # fmt: skip
    given = {f"V{i}": value for i, value in enumerate(values)}
    try:
        for script, end in ((shell, "|"), (python, "\n")):
            status = await run_script(
                script_id=script["id"], parameters=given, target_nodes=["node1"]
            )
            assert status["results"][0]["stdout"] == "|".join(values) + end
            assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)


async def test_a_secret_is_masked_never_stored_and_never_in_argv(
    start_script: Runner,
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    fleet: FleetCluster,
    make_script: Maker,
    knm_database_url: str,
) -> None:
    secret = f"hunter-{uuid.uuid4().hex}"
    script = await make_script(
        'echo "token is $TOKEN"; echo "again $TOKEN" >&2; sleep 3\n',
        parameters=[{"name": "TOKEN", "secret": True, "required": True}],
    )
    data = await start_script(script_id=script["id"], parameters={"TOKEN": secret},
                              target_nodes=["node1"])  # fmt: skip
    seen_running = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        args = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert secret not in args
        if "sleep 3" in args:
            seen_running = True
            break
        time.sleep(0.05)
    assert seen_running
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    (result,) = status["results"]
    assert result["stdout"] == "token is ********\n"
    assert result["stderr"] == "again ********\n"
    assert status["parameters"] == {"TOKEN": "********"}
    conn = await asyncpg.connect(knm_database_url)
    try:
        stored = await conn.fetchval(
            "SELECT request::text FROM tasks WHERE task_id = $1", data["task_id"]
        )
        output = await conn.fetchval("SELECT string_agg(data, '') FROM task_output")
        audit = await conn.fetchval("SELECT string_agg(detail::text, ' ') FROM audit_log")
    finally:
        await conn.close()
    for text in (stored, output, audit, str(status)):
        assert secret not in (text or "")
    rerun = await knm_client.post(
        f"{SCRIPTS}/rerun/{data['task_id']}", json={"only_failed": False}, headers=admin_headers
    )
    assert "TOKEN is secret and was not kept" in assert_envelope(rerun, 422)["error"]


async def test_a_200_kilobyte_script_runs(run_script: Runner, make_script: Maker) -> None:
    lines = [
        f"x{i}=$((RANDOM % 7))  # padding padding padding padding padding\n" for i in range(3500)
    ]
    content = "".join(lines) + 'echo "done $COUNT"\n'
    assert len(content) > 200_000
    script = await make_script(content, parameters=[{"name": "COUNT", "default": "3500"}])
    status = await run_script(script_id=script["id"])
    assert {r["stdout"] for r in status["results"]} == {"done 3500\n"}


async def test_a_python_script_gets_its_parameters(run_script: Runner, make_script: Maker) -> None:
    script = await make_script(
        "import os, sys\n"
        "print(int(os.environ['N']) * 2, os.environ['WHO'], sys.stdin.read() == '')\n"
        "sys.exit(int(os.environ['CODE']))\n",
        language="python",
        parameters=[{"name": "N", "pattern": "[0-9]+", "required": True},
                    {"name": "WHO", "default": "py"}, {"name": "CODE", "default": "0"}],
    )  # fmt: skip
    status = await run_script(script_id=script["id"], parameters={"N": 21})
    assert status["status"] == "completed"
    assert {r["stdout"] for r in status["results"]} == {"42 py True\n"}
    failed = await run_script(script_id=script["id"], parameters={"N": 1, "CODE": "4"},
                              target_nodes=["node1"])  # fmt: skip
    (result,) = failed["results"]
    assert (result["reason"], result["exit_code"], result["message"]) == (
        "exit_code",
        4,
        "exit code 4",
    )


async def test_exit_codes_and_signals_are_reported_like_ssh(
    run_script: Runner, make_script: Maker
) -> None:
    script = await make_script("echo before; kill -TERM $$\n")
    (result,) = (await run_script(script_id=script["id"], target_nodes=["node1"]))["results"]
    assert (result["reason"], result["message"]) == ("signal", "killed by signal TERM")
    assert result["stdout"] == "before\n"


def _leftovers(tag: str) -> list[str]:
    args = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in args.splitlines() if tag in line]


async def test_a_timeout_fails_the_node_and_stops_what_the_script_started(
    run_script: Runner, make_script: Maker
) -> None:
    tag = f"knm-timeout-{uuid.uuid4().hex[:8]}"
    script = await make_script(f"sleep 3600 &\nexec -a {tag} sleep 3600\n")
    status = await run_script(script_id=script["id"], target_nodes=["node1"], timeout=2)
    (result,) = status["results"]
    assert result["reason"] == "timeout"

    async def gone() -> bool:
        return not _leftovers(tag)

    await eventually(gone, deadline=20)


async def test_cancel_stops_the_script_on_every_node(
    start_script: Runner, knm_client: ApiClient, admin_headers: dict[str, str], make_script: Maker
) -> None:
    tag = f"knm-cancel-{uuid.uuid4().hex[:8]}"
    script = await make_script(f"echo going\nexec -a {tag} sleep 3600\n")
    data = await start_script(script_id=script["id"], timeout=600)

    async def running() -> bool:
        return len(_leftovers(tag)) == 3

    await eventually(running)
    response = await knm_client.post(f"{SCRIPTS}/cancel/{data['task_id']}", headers=admin_headers)
    assert_envelope(response, 200)
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "cancelled"
    assert {r["reason"] for r in status["results"]} == {"cancelled"}

    async def gone() -> bool:
        return not _leftovers(tag)

    await eventually(gone, deadline=20)


async def test_an_unreachable_node_fails_alone(
    run_script: Runner, fleet: FleetCluster, echo_script: dict[str, Any]
) -> None:
    status = await run_script(
        script_id=echo_script["id"], parameters={"PORT": "1"},
        target_nodes=["node1", fleet.refused],
    )  # fmt: skip
    results = by_node(status)
    assert results["node1"]["status"] == "success"
    assert (results[fleet.refused]["status"], results[fleet.refused]["reason"]) == (
        "failed",
        "unreachable",
    )
    assert (status["success_count"], status["failed_count"]) == (1, 1)


async def test_batch_size_and_max_failures_apply(
    run_script: Runner, fleet: FleetCluster, echo_script: dict[str, Any]
) -> None:
    status = await run_script(
        script_id=echo_script["id"], parameters={"PORT": "1"},
        target_nodes=[fleet.refused, "node1", "node2"], batch_size=1, max_failures=0,
    )  # fmt: skip
    results = by_node(status)
    assert results[fleet.refused]["reason"] == "unreachable"
    assert {results[n]["reason"] for n in ("node1", "node2")} == {"skipped"}


async def test_sudo_the_nodes_refuse_fails_clearly_and_never_shows_the_password(
    run_script: Runner, fleet: FleetCluster, make_script: Maker, knm_database_url: str
) -> None:
    # The fleet's sudoers allows only id, whoami and true: a shell as root is refused there.
    script = await make_script("id -u\n")
    status = await run_script(script_id=script["id"], sudo=True, target_nodes=["node1"])
    (result,) = status["results"]
    assert result["reason"] == "sudo_failed", result
    assert "not allowed to execute" in result["message"]
    assert status["sudo"] is True
    conn = await asyncpg.connect(knm_database_url)
    try:
        stored = await conn.fetchval("SELECT string_agg(data, '') FROM task_output")
        requests = await conn.fetchval("SELECT string_agg(request::text, ' ') FROM tasks")
    finally:
        await conn.close()
    for text in (stored, requests, str(status)):
        assert fleet.fleet.password not in (text or "")


async def test_the_policy_is_checked_again_at_execute(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster, make_script: Maker
) -> None:
    script = await make_script("echo forbidden-word\n")
    rules = {"deny_rules": [{"name": "no-forbidden", "pattern": "forbidden-word"}]}
    assert_envelope(
        await knm_client.put("/features/automation/ssh", json=rules, headers=admin_headers), 200
    )
    try:
        response = await _execute(knm_client, admin_headers, fleet, script_id=script["id"])
        assert "dangerous command blocked" in assert_envelope(response, 422)["error"]
    finally:
        await knm_client.put(
            "/features/automation/ssh", json={"deny_rules": []}, headers=admin_headers
        )


async def test_a_workflow_step_runs_a_builtin_script_by_name(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster
) -> None:
    node = fleet.fleet.nodes[0]
    steps = [{"id": "probe", "type": "script", "script": "port check",
              "parameters": {"PORT": str(node.port), "HOST": node.address}}]  # fmt: skip
    body = {"name": "probe ssh", "definition": {"steps": steps}}
    created = await knm_client.post("/automation/workflows", json=body, headers=admin_headers)
    workflow_id = assert_envelope(created, 201)["data"]["id"]
    started = await knm_client.post(
        "/automation/workflows/execute",
        json={"workflow_id": workflow_id, "cluster_name": fleet.cluster_name,
              "target_nodes": ["node1"], "credential_id": fleet.credential_id},
        headers=admin_headers,
    )  # fmt: skip
    data = assert_envelope(started, 200)["data"]
    status = await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)
    assert status["status"] == "completed", status
    (step,) = status["steps"]
    child = await wait_for_task(knm_client, admin_headers, step["task_id"])
    assert child["script_name"] == "port check"
    assert child["results"][0]["stdout"].endswith(
        f"open: {node.address}:{node.port} accepts connections\n"
    )


def test_the_wrappers_notes_make_the_result_more_precise() -> None:
    missing = outcome(
        NodeResult.failure("exit_code", "exit code 127", exit_code=127),
        f"{MISSING_MARK} python3 is not on this node\n",
        sudo=False,
    )
    assert (missing.reason, missing.exit_code) == ("interpreter_missing", 127)
    assert missing.message == "interpreter not installed: python3 is not on this node"
    plain_127 = outcome(
        NodeResult.failure("exit_code", "exit code 127", exit_code=127),
        "bash: line 1: nosuch: command not found\n",
        sudo=False,
    )
    assert plain_127.reason == "exit_code"
    with_sh = outcome(NodeResult.success("exit code 0"), f"{SH_FALLBACK_MARK}\n", sudo=False)
    assert with_sh.status == "success"
    assert with_sh.message == "exit code 0 (bash is not installed: the script ran with sh)"


async def test_a_script_declaring_no_parameters_takes_any_with_a_valid_name(
    run_script: Runner, make_script: Maker
) -> None:
    script = await make_script('echo "port=$PORT mode=$MODE_2"\n')
    status = await run_script(
        script_id=script["id"], parameters={"PORT": "8080", "MODE_2": "x y"},
        target_nodes=["node1"],
    )  # fmt: skip
    assert status["results"][0]["stdout"] == "port=8080 mode=x y\n"


@pytest.mark.parametrize(
    ("parameters", "said"),
    [
        ({"port": "1"}, "invalid parameter names: port"),
        ({"A-B": "1", "1X": "2"}, "invalid parameter names: 1X, A-B"),
        ({"PATH": "/tmp"}, "reserved parameter names: PATH"),
        (
            {"LD_PRELOAD": "/x.so", "BASH_ENV": "/x"},
            "reserved parameter names: BASH_ENV, LD_PRELOAD",
        ),
        ({"V": "a\x00b"}, "parameter V must not contain NUL characters"),
    ],
)
async def test_a_script_declaring_no_parameters_refuses_bad_or_reserved_names(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    fleet: FleetCluster,
    make_script: Maker,
    parameters: dict[str, str],
    said: str,
) -> None:
    script = await make_script("true\n")
    response = await _execute(
        knm_client, admin_headers, fleet, script_id=script["id"], parameters=parameters
    )
    assert said in assert_envelope(response, 422)["error"]
