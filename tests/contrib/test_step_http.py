"""A third-party step plugin, installed as a user would, is discovered through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD, TEST_SECRET
from knm.testing.process import clean_environ, hold_port

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib" / "knm-step-http"


@pytest.mark.timeout(300)
def test_a_pip_installed_step_plugin_runs_in_a_workflow(
    tmp_path: Path, knm_database_url: str
) -> None:
    venv = tmp_path / "venv"
    # The system site packages hold knm, its dependencies, pip and setuptools: nothing is
    # downloaded again.
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            str(CONTRIB),
        ],
        check=True,
        timeout=240,
    )
    # Held until the server is up (it binds it too, with SO_REUSEADDR): no one else takes it.
    held = hold_port()
    port = held.getsockname()[1]
    env = clean_environ()
    env.update(
        KNM_DATABASE_URL=knm_database_url,
        KNM_SECRET_KEY=TEST_SECRET,
        KNM_PORT=str(port),
        KNM_ADMIN_PASSWORD=TEST_ADMIN_PASSWORD,
        KNM_ARGON2_TIME_COST="1",
        KNM_ARGON2_MEMORY_COST="8",
        KNM_ARGON2_PARALLELISM="1",
        # The plugin is tested against this tree's knm, not whichever one is installed.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    )
    log = (tmp_path / "knm.log").open("wb")
    server = subprocess.Popen(
        [str(python), "-m", "knm.cli.main", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "knm.log").read_text()
            try:
                if httpx.get(f"{api}/features", timeout=2).status_code == 200:
                    held.close()
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        token = httpx.post(
            f"{api}/auth/login",
            json={"username": "admin", "password": TEST_ADMIN_PASSWORD},
            timeout=30,  # a password hash on a loaded machine takes more than httpx's 5 s
        ).json()
        headers = {"Authorization": f"Bearer {token['data']['token']}"}
        plugins = httpx.get(f"{api}/plugins", headers=headers).json()["data"]["plugins"]
        assert any(p["name"] == "http" and p["version"] == "0.1.0" for p in plugins)
        httpx.post(
            f"{api}/clusters",
            headers=headers,
            json={
                "name": "web",
                "kind": "static",
                "nodes": [{"name": "w1", "address": "127.0.0.2"}],
            },
        ).raise_for_status()
        created = httpx.post(
            f"{api}/automation/workflows",
            headers=headers,
            json={
                "name": "gated",
                "definition": {
                    "steps": [
                        {
                            "id": "health",
                            "type": "http",
                            "url": f"{api}/features",
                            "expect_status": 200,
                        },
                        {
                            "id": "wrong",
                            "type": "http",
                            "url": f"{api}/features",
                            "expect_status": 204,
                            "depends_on": ["health"],
                        },
                    ]
                },
            },
        )
        assert created.status_code == 201, created.text
        bad = httpx.post(
            f"{api}/automation/workflows",
            headers=headers,
            json={
                "name": "bad",
                "definition": {"steps": [{"id": "x", "type": "http", "url": "ftp://nope"}]},
            },
        )
        assert bad.status_code == 422 and "http:// or https://" in bad.json()["error"]
        task = httpx.post(
            f"{api}/automation/workflows/execute",
            headers=headers,
            json={
                "workflow_id": created.json()["data"]["id"],
                "cluster_name": "web",
                "target_nodes": ["w1"],
            },
        ).json()["data"]
        deadline = time.monotonic() + 60
        while (
            status := httpx.get(f"{api}/tasks/{task['task_id']}", headers=headers).json()["data"]
        )["status"] in ("pending", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        steps = {s["id"]: s for s in status["steps"]}
        assert steps["health"]["status"] == "completed"
        assert steps["wrong"]["status"] == "failed" and "expected 204" in steps["wrong"]["error"]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        held.close()
