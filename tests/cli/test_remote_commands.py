"""The remote commands against a real server: login and logout in a subprocess (the password
from stdin, the token stored 0600), and every library, cluster, credential and task command's
happy path in-process through ``knm.cli.main.main`` (the same code, without paying a Python
start per command), with ``--json`` output parsed and errors mapped to exit codes."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from knm.cli.main import main
from knm.client import Client
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

PLAYBOOK = "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"


@pytest.fixture(scope="module")
def token(server: KnmProcess) -> str:
    with Client(server.base_url) as client:
        return client.login("admin", TEST_ADMIN_PASSWORD).token


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def knm(
    server: KnmProcess,
    token: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Any:
    monkeypatch.setenv("KNM_URL", server.base_url)
    monkeypatch.setenv("KNM_TOKEN", token)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def subprocess_knm(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")} | env
    return subprocess.run(
        [sys.executable, "-m", "knm.cli.main", *args],
        input=stdin,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_login_stores_a_private_token_that_later_commands_use(
    server: KnmProcess, tmp_path: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    login = subprocess_knm(
        env, "login", "--url", server.base_url, "--user", "admin", "--password-stdin",
        stdin=TEST_ADMIN_PASSWORD + "\n",
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    stored = tmp_path / "knm" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    saved = json.loads(stored.read_text())
    context = saved["contexts"][saved["current_context"]]
    assert context["server"] == server.base_url and context["token"]
    assert TEST_ADMIN_PASSWORD not in stored.read_text()
    listed = subprocess_knm(env, "task", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "executions" in json.loads(listed.stdout)
    missing = subprocess_knm(env, "task", "show", "test-exec-1-zzzzzz")
    assert missing.returncode == 4
    assert "not found" in missing.stderr and "Traceback" not in missing.stderr
    assert subprocess_knm(env, "logout").returncode == 0
    assert context["token"] not in stored.read_text()
    after = subprocess_knm(env, "task", "list")
    assert after.returncode == 2 and "knm login" in after.stderr


def test_a_wrong_password_exits_4_and_stores_nothing(server: KnmProcess, tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    login = subprocess_knm(
        env, "login", "--url", server.base_url, "--user", "admin", "--password-stdin",
        stdin="wrong\n",
    )  # fmt: skip
    assert login.returncode == 4 and "login failed" in login.stderr
    assert not (tmp_path / "knm" / "credentials.json").exists()


def test_clusters(knm: Any, tmp_path: Path) -> None:
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        "name: lab\nkind: static\nnodes:\n"
        "  - {name: n1, address: 127.0.0.2, labels: {rack: a}}\n"
        "  - {name: n2, address: 127.0.0.3, labels: {rack: b}}\n"
    )
    created = knm("cluster", "create", "-f", str(spec), "--json")
    assert created.code == 0, created.err
    assert created.json()["name"] == "lab" and len(created.json()["nodes"]) == 2
    assert "lab" in knm("cluster", "list").out
    assert [c["name"] for c in knm("cluster", "list", "--json").json()["clusters"]] == ["lab"]
    assert "127.0.0.3" in knm("cluster", "show", "lab").out
    nodes = knm("cluster", "nodes", "lab", "--selector", "rack=b", "--json").json()
    assert [n["name"] for n in nodes["nodes"]] == ["n2"]
    spec.write_text("name: spare\nkind: static\nnodes: [{name: s1, address: 127.0.0.9}]\n")
    assert knm("cluster", "create", "-f", str(spec)).code == 0
    assert knm("cluster", "delete", "spare", "--yes").code == 0
    gone = knm("cluster", "show", "spare", "--json")
    assert gone.code == 4 and gone.json()["code"] == 404


def test_credentials_read_secrets_from_files_only(knm: Any, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("very-secret-pw\n")
    created = knm("credential", "create", "--name", "lab-root", "--username", "root",
                  "--password-file", str(secret), "--json")  # fmt: skip
    assert created.code == 0, created.err
    assert created.json()["has_password"] is True and "very-secret" not in created.out
    assert "lab-root" in knm("credential", "list").out
    assert knm("credential", "show", "lab-root", "--json").json()["username"] == "root"
    assert knm("credential", "delete", "lab-root").code == 0
    assert knm("credential", "show", "lab-root").code == 4
    no_secret = knm("credential", "create", "--name", "x", "--username", "root")
    assert no_secret.code == 2 and "--password-file" in no_secret.err


def test_playbooks_create_show_edit_version_and_delete(knm: Any, tmp_path: Path) -> None:
    book = tmp_path / "ping.yml"
    book.write_text(PLAYBOOK)
    created = knm("playbook", "create", "-f", str(book), "--name", "ping", "--tag", "net", "--json")
    assert created.code == 0, created.err
    item = created.json()
    assert item["content"] == PLAYBOOK and item["tags"] == ["net"]
    assert "ping" in knm("playbook", "list").out
    shown = knm("playbook", "show", "ping")
    assert "ansible.builtin.ping" in shown.out
    doc = tmp_path / "doc.yaml"
    doc.write_text(
        json.dumps({"description": "pings", "content": PLAYBOOK.replace("ping:", "ping: {}")})
    )
    edited = knm("playbook", "edit", "ping", "-f", str(doc), "--json")
    assert edited.code == 0, edited.err
    assert edited.json()["version"] == 2 and edited.json()["description"] == "pings"
    versions = knm("playbook", "versions", "ping", "--json").json()
    assert [v["version"] for v in versions["versions"]] == [2, 1]
    assert knm("playbook", "versions", "ping", "--show", "1").out == PLAYBOOK
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: all\n  tasks: {not a list\n")
    refused = knm("playbook", "create", "-f", str(bad), "--name", "bad")
    assert refused.code == 4 and "validation failed" in refused.err
    assert knm("playbook", "delete", "ping", "--yes").code == 0
    assert knm("playbook", "show", "ping").code == 4


def test_edit_opens_the_editor_and_saves_only_changes(
    knm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = tmp_path / "b.yml"
    book.write_text(PLAYBOOK)
    assert knm("playbook", "create", "-f", str(book), "--name", "edited").code == 0
    monkeypatch.setenv("EDITOR", "true")
    assert knm("playbook", "edit", "edited").out.strip() == "no changes"
    monkeypatch.setenv("EDITOR", "sed -i s/hosts:.all/hosts:\\ web/")
    changed = knm("playbook", "edit", "edited", "--json")
    assert changed.code == 0, changed.err
    assert "hosts: web" in changed.json()["content"] and changed.json()["version"] == 2


def test_workflows_and_scripts_share_the_library_commands(knm: Any, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "steps:\n  - {id: one, type: test}\n  - {id: two, type: test, depends_on: [one]}\n"
    )
    created = knm("workflow", "create", "-f", str(flow), "--name", "two-steps", "--json")
    assert created.code == 0, created.err
    assert created.json()["definition"]["steps"][1]["depends_on"] == ["one"]
    listed = knm("workflow", "list", "--json").json()
    assert any(w["name"] == "two-steps" and w["step_count"] == 2 for w in listed["workflows"])
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"name": "hello", "content": "echo hello", "language": "shell"}))
    made = knm("script", "create", "-f", str(script), "--json")
    assert made.code == 0, made.err
    assert knm("script", "show", "hello", "--json").json()["content"] == "echo hello"


def test_task_commands(knm: Any, tmp_path: Path) -> None:
    started = knm("task", "start", "test", "-c", "lab", "-n", "n1,n2", "-f", "echo=hi {node}",
                  "-f", 'fail_nodes=["n2"]', "--json")  # fmt: skip
    assert started.code == 1, started.err
    status = started.json()
    assert status["status"] == "failed" and status["failed_count"] == 1
    task_id = status["task_id"]
    assert task_id in knm("task", "list").out
    shown = knm("task", "show", task_id, "--with-output")
    assert "n2" in shown.out and "exit_code" in shown.out and "hi n1" in shown.out
    assert knm("task", "output", task_id, "--node", "n1").out == "hi n1\n"
    both = knm("task", "output", task_id).out
    assert "==> n1 <==" in both and "==> n2 <==" in both
    saved = tmp_path / "n1.txt"
    assert knm("task", "output", task_id, "--node", "n1", "-o", str(saved)).code == 0
    assert saved.read_text() == "hi n1\n"
    rerun = knm("task", "rerun", task_id, "--json")
    assert rerun.code == 1 and rerun.json()["target_nodes"] == ["n2"]
    detached = knm("task", "start", "test", "-c", "lab", "-n", "n1", "-f", "sleep=30", "--detach")
    long_id = detached.out.strip()
    assert detached.code == 5 and long_id.startswith("test-exec-")  # still running
    assert knm("task", "cancel", long_id).code == 0
    watched = knm("task", "watch", long_id, "--json")
    assert watched.code == 3 and watched.json()["status"] == "cancelled"
    again = knm("task", "cancel", long_id)
    assert again.code == 4 and "conflict" in again.err


def test_usage_errors_exit_2(knm: Any) -> None:
    assert knm("task", "start", "test", "-c", "lab").code == 2
    assert knm("ssh", "run", "-c", "lab").code == 2
    assert knm("task", "start", "test", "-c", "lab", "-n", "n1", "-f", "novalue").code == 2


def test_too_many_failed_logins_are_refused_with_429_and_exit_4(
    knm: Any, server: KnmProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io

    answers = []
    for _ in range(8):  # the server allows login_max_failures (5) per user and client
        monkeypatch.setattr("sys.stdin", io.StringIO("wrong-password\n"))
        answers.append(
            knm("login", "--url", server.base_url, "--user", "throttled", "--password-stdin")
        )
    assert all(a.code == 4 for a in answers)
    assert "login failed" in answers[0].err
    limited = answers[-1]
    assert "too many failed logins" in limited.err, limited.err
    assert re.search(r"retry in \d+ s", limited.err), limited.err
    assert not (tmp_path / "config" / "knm" / "credentials.json").exists()
