"""The playbook library: validation with Ansible's own syntax check, and the builtins — each
passes the check, the read-only one runs for real, the upgrades run in check mode only."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from knm.plugins.ansible import library
from knm.plugins.ansible.schemas import AnsibleSettings
from knm.plugins.ansible.toolchain import Toolchain
from knm.testing.client import ApiClient, assert_envelope

from .conftest import Fleet, Runner

PLAYBOOKS = "/automation/ansible/playbooks"


async def _create(client: ApiClient, headers: dict[str, str], content: str) -> Any:
    body = {"name": f"p-{hashlib.sha1(content.encode()).hexdigest()[:8]}", "content": content}
    return await client.post(PLAYBOOKS, json=body, headers=headers)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("- hosts: all\n  tasks: [", "content is not valid YAML"),
        ("hosts: all\ntasks: []\n", "content must be a YAML list of plays"),
        ("- tasks:\n  - debug: msg=hi\n", "play 1 has no hosts"),
        ("- hosts: all\n", "play 1 has no tasks or roles"),
    ],
)
async def test_content_that_is_not_a_list_of_plays_is_422(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, content: str, said: str
) -> None:
    response = await _create(knm_client, admin_headers, content)
    assert said in assert_envelope(response, 422)["error"]


async def test_ansibles_syntax_check_refuses_with_its_own_message(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    content = "- hosts: all\n  tasks:\n    - no_such_module_knm: a=1\n"
    response = await _create(knm_client, admin_headers, content)
    error = assert_envelope(response, 422)["error"]
    assert "ansible-playbook --syntax-check" in error
    assert "no_such_module_knm" in error
    assert "/runs/syntax-" not in error  # the scratch directory is not shown


async def test_the_syntax_check_is_cached_by_content(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    async def counting(settings: AnsibleSettings, content: str, tools: Any = None) -> str:
        calls.append(content)
        return ""

    monkeypatch.setattr(library.runner, "syntax_check", counting)
    settings = AnsibleSettings()
    content = "- hosts: all\n  tasks:\n    - debug: msg=cached-once\n"
    assert await library.syntax_problem(settings, content) == ""
    assert await library.syntax_problem(settings, content) == ""
    assert calls == [content]


async def test_an_update_is_validated_too(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    response = await _create(knm_client, admin_headers, "- hosts: all\n  tasks: []\n")
    playbook = assert_envelope(response, 201)["data"]
    response = await knm_client.put(
        f"{PLAYBOOKS}/{playbook['id']}", json={"content": "- hosts: all\n"}, headers=admin_headers
    )
    assert "no tasks or roles" in assert_envelope(response, 422)["error"]


@pytest.mark.parametrize("shipped", library.BUILTINS, ids=lambda s: s.file)
async def test_every_builtin_passes_the_syntax_check(
    shipped: Any, outside_tmp: Path, tools: Toolchain
) -> None:
    settings = AnsibleSettings(temp_dir=str(outside_tmp / "syntax"))
    content = library.builtin_text(shipped.file)
    assert library.structure_problems(content) == []
    assert await library.runner.syntax_check(settings, content, tools) == ""


async def test_builtins_are_listed_and_protected(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    response = await knm_client.get(
        f"{PLAYBOOKS}?is_builtin=true&page_size=100", headers=admin_headers
    )
    data = assert_envelope(response, 200)["data"]
    names = {p["name"] for p in data["playbooks"]}
    assert names == {s.name for s in library.BUILTINS}
    diagnostics = next(p for p in data["playbooks"] if p["name"] == "Node diagnostics")
    response = await knm_client.delete(f"{PLAYBOOKS}/{diagnostics['id']}", headers=admin_headers)
    assert response.status_code == 409


async def _builtin_id(client: ApiClient, headers: dict[str, str], name: str) -> int:
    response = await client.get(f"{PLAYBOOKS}?is_builtin=true&page_size=100", headers=headers)
    playbooks = assert_envelope(response, 200)["data"]["playbooks"]
    return next(p["id"] for p in playbooks if p["name"] == name)


async def test_node_diagnostics_runs_for_real_with_a_passphrase_protected_key(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, run_playbook: Runner
) -> None:
    playbook = await _builtin_id(knm_client, admin_headers, "Node diagnostics")
    status = await run_playbook(playbook_id=playbook, credential_id=fleet.key_credential_id)
    assert status["status"] == "completed", status["output"]
    assert all(r["changed"] == 0 and r["ok"] >= 5 for r in status["results"])
    assert "kernel" in status["output"] and "uptime" in status["output"]
    assert fleet.sshd.key_passphrase not in status["output"]


def _packages_state() -> str:
    # What an upgrade would change on this machine (the fleet's nodes are this machine).
    status = Path("/var/lib/dpkg/status")
    return status.read_text() if status.exists() else ""


@pytest.mark.parametrize("name", ["System upgrade", "Security patches", "Kernel upgrade"])
async def test_upgrades_in_check_mode_finish_with_results_and_change_nothing(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet, run_playbook: Runner,
    name: str,
) -> None:  # fmt: skip
    """The fleet's user may not become root (its sudoers allow only id, whoami and true), so
    these runs fail at the first privileged step: the honest claim is that they finish with a
    result per node saying why, and that nothing changed."""
    before = _packages_state()
    playbook = await _builtin_id(knm_client, admin_headers, name)
    status = await run_playbook(
        playbook_id=playbook, target_nodes=["node1", "node2"], extra_args="--check"
    )
    assert status["status"] in ("completed", "failed")
    assert [r["node"] for r in status["results"]] == ["node1", "node2"]
    for result in status["results"]:
        assert result["changed"] == 0
        if result["status"] == "failed" and result["reason"] == "unreachable":
            # With pipelining, sudo may refuse and exit before ansible has written the module to
            # its stdin; ansible then reports "Data could not be sent to remote host" as
            # unreachable. Still a result per node saying why.
            assert result["message"], result
        elif result["status"] == "failed":
            assert result["reason"] == "task_failed", result["message"]
            # The first privileged step: fact gathering as root.
            assert result["message"].startswith("task 'Gathering Facts' failed")
    assert _packages_state() == before


@pytest.mark.parametrize(
    ("content", "places"),
    [
        ("- hosts: [unclosed\n", [(2, 1)]),
        ("- hosts: all\n  tasks: []\n- name: no hosts\n  tasks: []\n- 3\n", [(3, 3), (5, 3)]),
        ("just: a mapping\n", [(1, 1)]),
    ],
)
def test_structure_problems_say_the_line_and_column_of_each_play(
    content: str, places: list[tuple[int, int]]
) -> None:
    found = library.located_structure_problems(content)
    assert [(p.field, p.line, p.column) for p in found] == [("content", *at) for at in places]
    assert library.structure_problems(content) == [p.message for p in found]


def test_a_syntax_check_complaint_is_placed_where_ansible_says() -> None:
    message = (
        "ansible-playbook --syntax-check: ERROR! conflicting action statements\n"
        "The error appears to be in '/x/playbook.yml': line 4, column 7, but may be elsewhere"
    )
    detail = library.syntax_detail(message)
    assert (detail.field, detail.line, detail.column, detail.message) == (
        "content", 4, 7, message,
    )  # fmt: skip
    assert library.syntax_detail("no place given").line is None
