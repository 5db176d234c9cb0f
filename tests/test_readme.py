"""The README's first session, pasted into bash as written, against a real ``knm serve`` and
two sshd nodes: only the addresses, the port and the SSH user change, as the README says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.sshfleet import SshFleet

README = Path(__file__).parents[1] / "README.md"


def first_session() -> str:
    section = README.read_text().split("## A first session", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    # The plugins and switches a plain `knm serve` has.
    proc = KnmProcess(tmp_path_factory.mktemp("readme"), knm_database_url, ["serve"], {})
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.timeout(180)
def test_the_first_session_runs_as_written(ssh_fleet: SshFleet, server: KnmProcess) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/test.sh installs it)")
    script = first_session()
    first, second = ssh_fleet.nodes[0].address, ssh_fleet.nodes[1].address
    for old, new in {
        "http://127.0.0.1:8080/api/v1": server.api,
        '"username": "ops"': json.dumps({"username": ssh_fleet.username})[1:-1],
        '"password": "s3cret"': json.dumps({"password": ssh_fleet.password})[1:-1],
        '"port": 22': f'"port": {ssh_fleet.port}',
        '"10.0.0.5"': json.dumps(first),
        '"10.0.0.6"': json.dumps(second),
    }.items():
        assert old in script, f"the README no longer says {old}"
        script = script.replace(old, new)
    env = {"PATH": os.environ["PATH"], "HOME": str(server.workdir)}
    done = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script],
        env={**env, "ADMIN_PASSWORD": TEST_ADMIN_PASSWORD},
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The status, pretty-printed by json.tool; curl's one-line answers end without a newline.
    status, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index('{\n    "code"') :])
    data = status["data"]
    assert data["status"] == "completed", data
    assert sorted(r["node"] for r in data["results"]) == ["node1", "node2"]
    assert all(r["exit_code"] == 0 and "load average" in r["stdout"] for r in data["results"])
    assert '"dangerous command blocked: rm -rf /"' in done.stdout
