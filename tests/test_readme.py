"""The README's first session, pasted into bash as written, against a real ``knm serve``, two
sshd nodes and a webhook receiver on loopback: only the addresses, the port, the SSH user and
the webhook's URL change, as the README says. ``knm`` is this tree's."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.receivers import WebhookReceiver, verify
from knm.testing.sshfleet import SshFleet

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"


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


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    # It answers 200 to anything; the test checks each signature itself, once it knows the
    # secret the session made.
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    """A ``knm`` on PATH that is this tree's (the installed one may be another checkout's)."""
    knm = tmp_path / "knm"
    knm.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)}"
        ' -m knm.cli.main "$@"\n'
    )
    knm.chmod(0o755)
    return tmp_path


@pytest.mark.timeout(180)
def test_the_first_session_runs_as_written(
    ssh_fleet: SshFleet, server: KnmProcess, hooks: WebhookReceiver, shim: Path
) -> None:
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
        "https://hooks.example.com/knm": hooks.url,
    }.items():
        assert old in script, f"the README no longer says {old}"
        script = script.replace(old, new)
    env = {"PATH": f"{shim}:{os.environ['PATH']}", "HOME": str(server.workdir)}
    done = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script],
        env={**env, "ADMIN_PASSWORD": TEST_ADMIN_PASSWORD},
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
        cwd=server.workdir,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The status, pretty-printed by json.tool; curl's one-line answers end without a newline.
    status, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index('{\n    "code"') :])
    data = status["data"]
    assert data["status"] == "completed", data
    assert sorted(r["node"] for r in data["results"]) == ["node1", "node2"]
    assert all(r["exit_code"] == 0 and "load average" in r["stdout"] for r in data["results"])
    assert '"dangerous command blocked: rm -rf /"' in done.stdout
    # The task the knm command ran reached the webhook, signed with the secret the session made.
    secret = (server.workdir / ".knm-hook-secret").read_text().strip()
    assert len(secret) == 64
    end = time.monotonic() + 60
    while not (ended := [r for r in hooks.snapshot() if r.json()["data"].get("kind") == "ssh"]):
        assert time.monotonic() < end, "no task.completed delivery arrived"
        time.sleep(0.1)
    seen = ended[0]
    assert seen.json()["event"] == "task.completed" and seen.path == "/hook"
    assert verify(secret, seen.headers, seen.body)
    assert seen.headers["idempotency-key"] == seen.json()["id"]
    assert sorted(seen.json()["data"]["target_nodes"]) == ["node1", "node2"]
    assert "created subscription" in done.stdout and "ops-hook" in done.stdout
    assert secret not in done.stdout + done.stderr
