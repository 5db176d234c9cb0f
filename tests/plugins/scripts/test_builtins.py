"""Every builtin script runs for real on a fleet node (as an unprivileged user, where
kubelet and container runtimes are absent) with its expected outcome."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from knm.plugins.scripts.library import builtin_scripts
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster

from .conftest import SCRIPTS, Runner


@pytest.fixture(scope="module")
async def builtin_ids(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, int]:
    response = await knm_client.get(
        SCRIPTS, params={"is_builtin": True, "page_size": 100}, headers=admin_headers
    )
    return {s["name"]: s["id"] for s in assert_envelope(response, 200)["data"]["scripts"]}


@pytest.fixture(scope="module")
def run_builtin(run_script: Runner, builtin_ids: dict[str, int]) -> Runner:
    async def run(name: str, **parameters: Any) -> dict[str, Any]:
        status = await run_script(
            script_id=builtin_ids[name], parameters=parameters, target_nodes=["node1"], timeout=60
        )
        (result,) = status["results"]
        return result

    return run


def test_every_builtin_declares_parameters_with_defaults_that_fit_their_patterns() -> None:
    shipped = builtin_scripts()
    assert len(shipped) == 8
    for item in shipped:
        assert item.extras["parameters"], item.name
        for param in item.extras["parameters"]:
            if param["default"] is not None and param["pattern"]:
                assert re.fullmatch(param["pattern"], param["default"]), (item.name, param)


async def test_system_info(run_builtin: Runner) -> None:
    result = await run_builtin("system info")
    assert result["status"] == "success", result
    for heading in ("== os ==", "kernel:", "== cpu ==", "== memory ==", "== disk =="):
        assert heading in result["stdout"]
    only = await run_builtin("system info", SECTIONS="cpu")
    assert "== cpu ==" in only["stdout"] and "== memory ==" not in only["stdout"]


async def test_disk_usage(run_builtin: Runner) -> None:
    result = await run_builtin("disk usage", TARGET="/usr/share", TOP="5")
    assert result["status"] == "success", result
    assert "== filesystems ==" in result["stdout"] and "== inodes ==" in result["stdout"]
    assert "/usr/share/" in result["stdout"]


async def test_disk_cleanup_is_a_dry_run_by_default_and_never_prunes_volumes(
    run_builtin: Runner, builtin_ids: dict[str, int], knm_client: ApiClient,
    admin_headers: dict[str, str], tmp_path: Path,
) -> None:  # fmt: skip
    old_log = Path("/tmp") / f"knm-cleanup-{tmp_path.name}"
    old_log.mkdir(mode=0o755)
    rotated = old_log / "app.log.1"
    rotated.write_text("old\n")
    rotated.chmod(0o666)
    try:
        import os

        os.utime(rotated, (0, 0))
        result = await run_builtin("disk cleanup", LOG_DIR=str(old_log), MAX_AGE_DAYS="1")
        assert result["status"] == "success", result
        assert "dry run: nothing is removed" in result["stdout"]
        assert f"would run: rm -f -- {rotated}" in result["stdout"]
        assert rotated.exists()
    finally:
        shutil.rmtree(old_log, ignore_errors=True)
    script = await knm_client.get(f"{SCRIPTS}/{builtin_ids['disk cleanup']}", headers=admin_headers)
    content = assert_envelope(script, 200)["data"]["content"]
    assert "volume prune" not in content and "--volumes" not in content


async def test_collect_logs_skips_unreadable_files_and_prints_the_tarball(
    run_builtin: Runner, tmp_path: Path
) -> None:
    logs = Path("/tmp") / f"knm-logs-src-{tmp_path.name}"
    logs.mkdir(mode=0o755)
    (logs / "readable.log").write_text("hello\n")
    (logs / "readable.log").chmod(0o644)
    (logs / "secret.log").write_text("root only\n")
    (logs / "secret.log").chmod(0o600)
    tarball: Path | None = None
    try:
        result = await run_builtin("collect logs", LOG_DIR=str(logs))
        assert result["status"] == "success", result
        assert "skipped 1 unreadable" in result["stderr"]
        found = re.search(r"^tarball: (/tmp/knm-logs-\S+\.tar\.gz)$", result["stdout"], re.M)
        assert found, result["stdout"]
        tarball = Path(found.group(1))
        assert tarball.exists()
        import tarfile

        with tarfile.open(tarball) as archive:
            names = archive.getnames()
        assert any(n.endswith("readable.log") for n in names)
        assert not any(n.endswith("secret.log") for n in names)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
        if tarball is not None:
            tarball.unlink(missing_ok=True)


async def test_collect_logs_of_var_log_by_default(run_builtin: Runner) -> None:
    result = await run_builtin("collect logs")
    assert result["status"] == "success", result
    found = re.search(r"^tarball: (\S+)$", result["stdout"], re.M)
    assert found
    Path(found.group(1)).unlink(missing_ok=True)


async def test_performance_snapshot_notes_missing_tools(run_builtin: Runner) -> None:
    result = await run_builtin("performance snapshot", SAMPLES="1", INTERVAL="1")
    assert result["status"] == "success", result
    assert "loadavg:" in result["stdout"]
    for tool in ("vmstat", "iostat", "mpstat"):
        assert f"== {tool}" in result["stdout"]
        if shutil.which(tool) is None:
            assert f"note: {tool} is not installed; skipped" in result["stdout"]


async def test_port_check_open_and_closed(run_builtin: Runner, fleet: FleetCluster) -> None:
    node = fleet.fleet.nodes[0]
    result = await run_builtin("port check", PORT=str(node.port), HOST=node.address)
    assert result["status"] == "success", result
    assert f"open: {node.address}:{node.port}" in result["stdout"]
    closed = await run_builtin("port check", PORT="1", HOST=node.address, TIMEOUT="2")
    assert (closed["status"], closed["exit_code"]) == ("failed", 1)
    assert "closed:" in closed["stdout"]


@pytest.mark.skipif(
    shutil.which("kubelet") is not None or Path("/usr/bin/kubelet").exists(),
    reason="kubelet is installed here",
)
async def test_kubelet_health_says_not_installed_with_exit_code_3(run_builtin: Runner) -> None:
    result = await run_builtin("kubelet health")
    assert (result["status"], result["exit_code"]) == ("failed", 3)
    assert result["stdout"] == "kubelet is not installed on this node\n"


@pytest.mark.skipif(
    any(shutil.which(t) for t in ("containerd", "crio", "dockerd"))
    or Path("/run/containerd/containerd.sock").exists()
    or Path("/var/run/docker.sock").exists(),
    reason="a container runtime is installed here",
)
async def test_container_runtime_health_says_not_installed_with_exit_code_3(
    run_builtin: Runner,
) -> None:
    result = await run_builtin("container runtime health")
    assert (result["status"], result["exit_code"]) == ("failed", 3)
    assert "no container runtime is installed on this node" in result["stdout"]
    one = await run_builtin("container runtime health", RUNTIME="containerd")
    assert one["exit_code"] == 3 and "looked for: containerd" in one["stdout"]
