"""What the run user runs: knm's own install when it can reach it, else a mirror under the data
dir; and when neither works, a reason in the log, in ``GET /plugins`` and in 503 answers."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from knm.core import reach
from knm.plugins.ansible import runner, toolchain
from knm.plugins.ansible.schemas import AnsibleSettings, default_binary
from knm.plugins.ansible.toolchain import Toolchain
from knm.testing.client import ApiClient, assert_envelope

from .conftest import Fleet, Runner

SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
GOOD = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def require_private_root() -> None:
    """The case of the issue: root, and knm's Python under a 0700 /root."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root switches to the run user")
    if _mode("/root") != 0o700:
        pytest.skip(f"/root is {_mode('/root'):04o}, not 0700 (chmod 700 /root to test this)")
    if not os.path.realpath(sys.executable).startswith("/root/"):
        pytest.skip(f"knm's Python ({sys.executable}) is not under /root")


@pytest.fixture(scope="module")
def private_binary(outside_tmp: Path) -> Path:
    """An ansible-playbook root can execute and the run user cannot reach (a 0700 dir)."""
    private = outside_tmp / "private"
    private.mkdir(mode=0o700)
    binary = private / "ansible-playbook"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return binary


def test_knms_python_under_a_0700_root_is_mirrored_for_the_run_user(
    tools: Toolchain, data_dir: Path
) -> None:
    require_private_root()
    assert tools.mirror.startswith(str(data_dir / "runtime" / "python-"))
    assert tools.python.startswith(tools.mirror) and tools.playbook.startswith(tools.mirror)
    site = Path(tools.mirror) / SITE
    assert (site / "ansible").is_dir() and (site / "ansible_runner").is_dir()
    # Only Ansible's distributions: not knm, not its web stack.
    assert not (site / "knm").exists() and not (site / "litestar").exists()
    assert tools.user is not None and tools.user.switched
    assert reach.user_can(tools.user.uid, tools.user.gid, tools.playbook)
    assert _mode("/root") == 0o700  # reached without opening anything


def test_a_matching_mirror_is_reused_and_older_ones_are_removed(
    tools: Toolchain, data_dir: Path
) -> None:
    require_private_root()
    stale = data_dir / "runtime" / "python-000000000000"
    stale.mkdir()
    inode = os.stat(tools.mirror).st_ino
    again = toolchain.resolve(AnsibleSettings(), data_dir)
    assert again.mirror == tools.mirror and os.stat(again.mirror).st_ino == inode
    assert not stale.exists()


def test_the_import_check_keeps_its_scratch_home_in_the_runs_dir_and_clears_a_killed_ones(
    tools: Toolchain, data_dir: Path
) -> None:
    require_private_root()
    runs = Path(tools.runs)
    killed = runs / f"{toolchain.PROBE_PREFIX}killed"
    (killed / ".ansible" / "tmp").mkdir(parents=True)
    long_ago = time.time() - toolchain.PROBE_STALE - 60
    os.utime(killed, (long_ago, long_ago))
    live = runs / f"{toolchain.PROBE_PREFIX}another-process"  # a check still going elsewhere
    live.mkdir()
    before = set(Path(tempfile.gettempdir()).iterdir())
    toolchain.resolve(AnsibleSettings(), data_dir)
    assert not killed.exists()
    assert [p.name for p in runs.iterdir() if p.name.startswith(toolchain.PROBE_PREFIX)] == [
        live.name
    ]
    made = set(Path(tempfile.gettempdir()).iterdir()) - before
    assert not [p for p in made if p.name.startswith("knm-ansible-probe-")]
    live.rmdir()


def test_without_switching_users_knms_own_install_runs_as_it_is(
    monkeypatch: pytest.MonkeyPatch, outside_tmp: Path
) -> None:
    me = pwd.getpwuid(os.geteuid())
    own = runner.RunUser(name=me.pw_name, uid=me.pw_uid, gid=me.pw_gid, switched=False)
    monkeypatch.setattr(runner, "ensure_run_user", lambda name: own)
    chain = toolchain.resolve(AnsibleSettings(), outside_tmp / "not-root-data")
    assert (chain.python, chain.playbook, chain.mirror) == (sys.executable, default_binary(), "")


def test_a_binary_path_the_run_user_cannot_execute_is_unavailable_naming_what_is_in_the_way(
    private_binary: Path, data_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: only root switches to the run user")
    with pytest.raises(toolchain.Unavailable) as caught:
        toolchain.resolve(AnsibleSettings(binary_path=str(private_binary)), data_dir)
    said = str(caught.value)
    assert said.startswith("ansible unavailable: knm-ansible cannot execute")
    assert f"{private_binary.parent} (mode 0700, owner root) is in the way" in said
    assert "clear binary_path" in said


def test_without_useradd_the_run_user_is_added_with_adduser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to add users")
    creators = runner._creators
    monkeypatch.setattr(
        runner, "_creators", lambda n: [c for c in creators(n) if c[0] != "useradd"]
    )
    if not any(runner.shutil.which(c[0]) for c in runner._creators("x")):
        pytest.skip("adduser is not installed")
    name = "knm-test-adduser"
    try:
        user = runner.ensure_run_user(name)
        assert user.switched and user.uid != 0
        assert pwd.getpwnam(name).pw_shell.endswith(("nologin", "false"))
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


def test_with_no_way_to_add_the_run_user_ansible_is_unavailable_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root adds the run user")
    monkeypatch.setattr(runner, "_creators", lambda name: [["knm-no-such-useradd", name]])
    with pytest.raises(toolchain.Unavailable) as caught:
        toolchain.resolve(AnsibleSettings(run_user="knm-test-nouser"), data_dir)
    said = str(caught.value)
    assert "cannot create the run user knm-test-nouser" in said
    assert "knm-no-such-useradd: not installed" in said
    assert "create a system user named knm-test-nouser" in said


async def _plugins(client: ApiClient, headers: dict[str, str]) -> dict[str, Any]:
    body = assert_envelope(await client.get("/plugins", headers=headers), 200)
    return {p["name"]: p for p in body["data"]["plugins"]}


async def test_plugins_show_ansible_available_when_it_can_run(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    plugins = await _plugins(knm_client, admin_headers)
    assert (plugins["ansible"]["available"], plugins["ansible"]["reason"]) == (True, None)
    assert plugins["ssh"]["available"] is True  # plugins with no check are available


async def test_a_playbook_saved_and_run_through_the_api_runs_from_the_mirror_as_the_run_user(
    add_playbook: Any, run_playbook: Runner, data_dir: Path, fleet: Fleet, local_plays_allowed: None
) -> None:
    require_private_root()
    playbook = await add_playbook("where-from", """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.command: id -un
      changed_when: false
    - ansible.builtin.debug:
        msg: "python={{ ansible_playbook_python }}"
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
""")  # fmt: skip
    status = await run_playbook(playbook_id=playbook, target_nodes=fleet.nodes)
    assert status["status"] == "completed", status
    assert [r["status"] for r in status["results"]] == ["success"] * len(fleet.nodes)
    assert "knm-ansible" in status["output"]
    assert f"python={data_dir}/runtime/python-" in status["output"]
    assert _mode("/root") == 0o700
    assert _mode(data_dir) == 0o711


async def test_a_run_whose_ansible_cannot_start_fails_every_node_naming_the_cause(
    add_playbook: Any, run_playbook: Runner, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = await add_playbook("cannot-start", GOOD)

    def refuse(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", argv[0])

    fake = SimpleNamespace(**{name: getattr(subprocess, name) for name in dir(subprocess)})
    fake.Popen = refuse
    monkeypatch.setattr(runner, "subprocess", fake)
    status = await run_playbook(playbook_id=playbook, target_nodes=fleet.nodes[:2])
    assert status["status"] == "failed"
    for result in status["results"]:
        assert result["reason"] == "error"
        assert result["message"].startswith("ansible unavailable: knm-ansible cannot start")
        assert "Permission denied" in result["message"]
        assert "internal error" not in result["message"]


async def test_an_unreachable_binary_path_makes_ansible_unavailable_and_its_routes_503(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, private_binary: Path,
    add_playbook: Any,
) -> None:  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("needs root: only root switches to the run user")
    saved = await add_playbook("saved-while-available", GOOD)
    features = "/features/automation/ansible"
    body = {"binary_path": str(private_binary)}
    assert_envelope(await knm_client.put(features, json=body, headers=admin_headers), 200)
    try:
        ansible = (await _plugins(knm_client, admin_headers))["ansible"]
        assert ansible["available"] is False
        reason = ansible["reason"]
        assert f"knm-ansible cannot execute {private_binary}" in reason
        assert "(mode 0700, owner root) is in the way" in reason
        playbook = {"name": "while-unavailable", "content": GOOD, "category": "test"}
        created = await knm_client.post(
            "/automation/ansible/playbooks", json=playbook, headers=admin_headers
        )
        assert assert_envelope(created, 503)["error"] == reason
        updated = await knm_client.put(
            f"/automation/ansible/playbooks/{saved}", json={"content": GOOD + "\n"},
            headers=admin_headers,
        )  # fmt: skip
        assert assert_envelope(updated, 503)["error"] == reason
        run = {"playbook_id": saved, "cluster_name": fleet.cluster_name,
               "credential_id": fleet.credential_id, "target_nodes": fleet.nodes[:1]}  # fmt: skip
        started = await knm_client.post("/automation/ansible/run", json=run, headers=admin_headers)
        assert assert_envelope(started, 503)["error"] == reason
    finally:
        body = {"binary_path": default_binary()}
        assert_envelope(await knm_client.put(features, json=body, headers=admin_headers), 200)
    ansible = (await _plugins(knm_client, admin_headers))["ansible"]
    assert (ansible["available"], ansible["reason"]) == (True, None)
