"""``knm ansible run PLAYBOOK …`` against a real server and real sshd nodes: a builtin read-only
playbook by name, a stored one by id with extra vars and ``--follow``, check mode through
``--extra-args``, and an unreachable node that makes the exit code 1."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from knm.client import Client
from knm.testing.sshfleet import SshFleet

from .conftest import Knm

CLUSTER = "fleet"
GREET = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: echo "hello {{ greeting | default('nobody') }} from {{ inventory_hostname }}"
      changed_when: false
      register: said
    - ansible.builtin.debug:
        msg: "{{ said.stdout }}"
"""


@pytest.fixture(scope="module")
def runs_dir() -> Iterator[Path]:
    """Where ansible's run directories go: a place the unprivileged run user can pass through
    (pytest's own tmp dirs are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="knm-cli-ansible-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet(admin: Client, ssh_fleet: SshFleet, runs_dir: Path) -> list[str]:
    """The fleet's nodes (and one refusing connections) as cluster ``fleet``, with a credential
    ``fleet-password``; the healthy nodes' names."""
    admin.update_settings("ansible", temp_dir=str(runs_dir / "runs"), timeout=120)
    admin.create_credential("fleet-password", ssh_fleet.username, "password",
                            password=ssh_fleet.password)  # fmt: skip
    refused = ssh_fleet.refused_node()
    nodes = [{"name": n.name, "address": n.address, "port": n.port} for n in ssh_fleet.nodes]
    nodes.append({"name": refused.name, "address": refused.address, "port": refused.port})
    admin.create_cluster(CLUSTER, "static", nodes=nodes)
    return [n.name for n in ssh_fleet.nodes]


@pytest.fixture(scope="module")
def greet(admin: Client) -> int:
    return admin.playbooks.create("greet", GREET).id


def test_a_builtin_playbook_runs_by_name_on_every_node(knm: Knm, fleet: list[str]) -> None:
    result = knm("ansible", "run", "Node diagnostics", "-c", CLUSTER, "-n", ",".join(fleet),
                 "--credential", "fleet-password", "--json")  # fmt: skip
    assert result.code == 0, result.err
    status = result.json()
    assert status["status"] == "completed" and status["playbook_name"] == "Node diagnostics"
    assert status["success_count"] == len(fleet) and status["failed_count"] == 0
    assert sorted(r["node"] for r in status["results"]) == sorted(fleet)


def test_a_stored_playbook_takes_extra_vars_and_follow_prints_its_output(
    knm: Knm, fleet: list[str], greet: int
) -> None:
    node = fleet[0]
    result = knm("ansible", "run", str(greet), "-c", CLUSTER, "-n", node,
                 "--credential", "fleet-password", "-e", "greeting=world", "--follow")  # fmt: skip
    assert result.code == 0, result.err
    assert f"hello world from {node}" in result.out
    assert "completed" in result.out and "1 succeeded, 0 failed" in result.out

    checked = knm("ansible", "run", "greet", "-c", CLUSTER, "-n", node,
                  "--credential", "fleet-password", "--extra-args=--check", "--json")  # fmt: skip
    assert checked.code == 0, checked.err
    assert checked.json()["extra_args"] == "--check"


def test_an_unreachable_node_exits_1_with_a_per_node_table(
    knm: Knm, ssh_fleet: SshFleet, fleet: list[str], greet: int
) -> None:
    refused = ssh_fleet.refused_node().name
    result = knm("ansible", "run", "greet", "-c", CLUSTER, "-n", f"{fleet[1]},{refused}",
                 "--credential", "fleet-password")  # fmt: skip
    assert result.code == 1, result.err
    rows = {line.split()[0]: line for line in result.out.splitlines()[1:] if line.strip()}
    assert "success" in rows[fleet[1]] and "failed" in rows[refused]
    assert "1 succeeded, 1 failed" in result.out
    missing = knm("ansible", "run", "no-such-playbook", "-c", CLUSTER, "-n", fleet[0], "--json")
    assert missing.code == 4 and missing.json()["code"] == 404
