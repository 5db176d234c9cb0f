"""Each benchmark's ``--smoke`` mode runs end to end and prints its table (no timing asserts)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each smoke starts real servers and peers: minutes together, left out of a quick local run.
pytestmark = pytest.mark.slow


def run_smoke(module: str, *more: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KNM_") or k == "KNM_TEST_DATABASE_URL"
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", module, "--smoke", *more],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_the_progress_benchmark_checks_every_event_and_prints_its_table() -> None:
    done = run_smoke("bench.progress")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| setup | mode" in done.stdout
    lines = done.stdout.splitlines()
    assert any(line.startswith("| one ") and "| yes " in line for line in lines), done.stdout
    assert any(line.startswith("| split ") and "| yes " in line for line in lines), done.stdout


@pytest.mark.timeout(300)
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_the_api_benchmark_measures_knm_beside_a_bare_route_and_prints_its_table() -> None:
    done = run_smoke("bench.api")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| route" in done.stdout
    assert "bare Litestar+asyncpg" in done.stdout
    assert "knm status of a running task (one version check)" in done.stdout
    assert "knm GET /tasks, page 1 of" in done.stdout


@pytest.mark.timeout(300)
def test_the_workflow_engine_benchmark_runs_and_prints_its_table() -> None:
    done = run_smoke("bench.workflow_engine")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| chain of 200 " in done.stdout and "| fan-out of 200 " in done.stdout


@pytest.mark.timeout(300)
def test_the_ansible_overhead_benchmark_runs_and_prints_its_table() -> None:
    if os.geteuid() != 0:
        pytest.skip("the benchmark's sshd fleet needs root")
    done = run_smoke("bench.ansible_overhead")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| bare " in done.stdout and "| knm " in done.stdout


@pytest.mark.timeout(300)
def test_the_ssh_fanout_benchmark_runs_knm_beside_the_floor_and_prints_its_table() -> None:
    done = run_smoke("bench.ssh_fanout")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # Peers (parallel-ssh, ansible) appear only when installed: not asserted.
    for runner in ("knm cold", "knm warm", "floor"):
        assert any(line.startswith("| 50 ") and f"| {runner} " in line for line in lines), (
            done.stdout
        )


def test_the_ssh_path_floor_benchmark_runs_every_variant_and_prints_its_table() -> None:
    done = run_smoke("bench.ssh_path_floor")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert {row.split("|")[1].strip() for row in rows[1:]} >= {"floor", "knm-path"}, done.stdout


@pytest.mark.timeout(300)
def test_the_channels_benchmark_delivers_every_announcement_and_prints_its_table() -> None:
    done = run_smoke("bench.channels")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| litestar", "| knm"))]
    assert len(rows) == 3 and all(row.rstrip(" |").endswith("yes") for row in rows), done.stdout


@pytest.mark.timeout(300)
def test_the_startup_benchmark_times_the_client_and_the_cli_beside_a_bare_python() -> None:
    done = run_smoke("bench.startup")
    assert done.returncode == 0, done.stdout + done.stderr
    cases = ("python -c pass", "import knm.client", "knm --help", "knm task list")
    for case in (*cases, "knm task list (nothing listens)"):
        assert f"| {case} |" in done.stdout


@pytest.mark.timeout(300)
def test_the_policy_benchmark_prints_every_class_the_everyday_share_and_the_timing() -> None:
    done = run_smoke("bench.policy")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("system-paths", "block-devices", "fork-bombs", "kill-all", "sysrq", "remote-code"):
        assert f"| {name} |" in done.stdout
    assert "| admin commands |" in done.stdout
    assert "| fork-bomb shape |" in done.stdout


@pytest.mark.timeout(300)
def test_the_maintenance_soak_runs_its_labs_side_by_side_and_prints_their_table() -> None:
    if os.geteuid() != 0:
        pytest.skip("the SSH fleet needs root")
    done = run_smoke("bench.maintenance_soak", "--labs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| lab | examples | runs | steps" in done.stdout
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if "|" in line}
    assert {"1", "2", "all"} <= set(rows), done.stdout
    # Each lab ran the smoke's two examples, and the total counts both labs.
    assert [rows[lab].split("|")[2].strip() for lab in ("1", "2", "all")] == ["2", "2", "4"]
    # The result column is padded to its header's width: "| ok     |".
    assert re.search(r"\|\s*ok\s*\|\s*$", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.timeout(600)
def test_the_client_size_benchmark_installs_the_client_and_prints_what_each_part_costs() -> None:
    done = run_smoke("bench.client_size")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| kube_node_manager_client 0.1.0 |" in done.stdout
    assert "| **the venv grew by** |" in done.stdout
    assert "litestar" not in done.stdout


@pytest.mark.timeout(300)
def test_the_notifications_benchmark_loses_nothing_across_a_killed_worker() -> None:
    done = run_smoke("bench.notifications")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| processes | rate/s" in done.stdout
    assert "killed one worker" in done.stderr


@pytest.mark.timeout(300)
def test_the_schedules_benchmark_fires_each_time_once_across_a_kill_and_prints_its_table() -> None:
    done = run_smoke("bench.schedules")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| schedules | processes" in done.stdout
    assert "| pass " in done.stdout
