"""The library commands past create and show: ``edit`` in an editor that reopens with the
server's errors on top, ``diff`` between versions and ``rollback`` to one, against a real
server (``knm`` runs each command in-process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

PLAYBOOK = "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"

#: An editor that replaces the file with the next of its answers and records what it was shown.
EDITOR = """
import json, sys
from pathlib import Path
state = Path(sys.argv[1])
answers = json.loads(state.read_text())
shown = Path(sys.argv[2]).read_text()
answer = answers["answers"].pop(0)
answers["shown"].append(shown)
state.write_text(json.dumps(answers))
if answer is not None:  # None: save the file as it was shown
    Path(sys.argv[2]).write_text(answer)
"""


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``editor(*answers)`` makes ``$EDITOR`` give those answers in turn; it returns the
    state file, whose ``shown`` lists what the editor was opened with each time."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    state = tmp_path / "editor.json"

    def answering(*answers: str | None) -> Path:
        state.write_text(json.dumps({"answers": list(answers), "shown": []}))
        monkeypatch.setenv("EDITOR", f"{sys.executable} {script} {state}")
        monkeypatch.delenv("VISUAL", raising=False)
        return state

    return answering


def shown(state: Path) -> list[str]:
    return json.loads(state.read_text())["shown"]


def playbook(knm: Any, tmp_path: Path, name: str) -> None:
    book = tmp_path / f"{name}.yml"
    book.write_text(PLAYBOOK)
    assert knm("playbook", "create", "-f", str(book), "--name", name).code == 0


def test_an_edit_the_server_refuses_reopens_with_the_error_on_top_then_saves_the_fix(
    knm: Any, tmp_path: Path, editor: Any
) -> None:
    playbook(knm, tmp_path, "reopened")
    broken = "- hosts: all\n  tasks: {not a list\n"
    fixed = PLAYBOOK.replace("hosts: all", "hosts: web")
    state = editor(broken, fixed)
    edited = knm("playbook", "edit", "reopened", "--json")
    assert edited.code == 0, edited.err
    assert edited.json()["content"] == fixed and edited.json()["version"] == 2
    first, second = shown(state)
    assert first == PLAYBOOK
    assert second.startswith("# knm: the server refused this edit")
    assert second.endswith("#\n" + broken)  # what the user wrote, under the note
    assert "line 3, column 1: content is not valid YAML" in second  # where the server says


def test_saving_the_refused_edit_unchanged_gives_up_and_keeps_it_in_a_file(
    knm: Any, tmp_path: Path, editor: Any
) -> None:
    playbook(knm, tmp_path, "given-up")
    broken = "- hosts: all\n  tasks: {not a list\n"
    editor(broken, None)
    edited = knm("playbook", "edit", "given-up")
    assert edited.code == 2
    kept = Path(edited.err.rsplit(" is in ", 1)[1].strip())
    assert kept.read_text() == broken
    kept.unlink()
    assert knm("playbook", "show", "given-up", "--json").json()["version"] == 1


def test_a_workflow_edited_into_bad_yaml_reopens_before_anything_is_sent(
    knm: Any, tmp_path: Path, editor: Any
) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(json.dumps({"steps": [{"id": "a", "type": "test"}]}))
    assert knm("workflow", "create", "-f", str(flow), "--name", "yaml-typo").code == 0
    good = "steps:\n- id: b\n  type: test\n"
    state = editor("steps: [unclosed\n", good)
    edited = knm("workflow", "edit", "yaml-typo", "--json")
    assert edited.code == 0, edited.err
    assert edited.json()["definition"]["steps"][0]["id"] == "b"
    assert "not valid YAML" in shown(state)[1]


def test_diff_shows_what_changed_between_versions_and_rollback_brings_one_back(
    knm: Any, tmp_path: Path, editor: Any
) -> None:
    playbook(knm, tmp_path, "rolled")
    editor(PLAYBOOK.replace("hosts: all", "hosts: web"))
    assert knm("playbook", "edit", "rolled").code == 0
    diff = knm("playbook", "diff", "rolled", "1", "2")
    assert diff.code == 0, diff.err
    assert "-- hosts: all\n+- hosts: web\n" in diff.out
    assert "version 1" in diff.out and "version 2" in diff.out
    assert knm("playbook", "diff", "rolled", "1").out == diff.out  # V2 defaults to the current
    back = knm("playbook", "rollback", "rolled", "1")
    assert back.code == 0, back.err
    assert "back to version 1's body, as version 3" in back.out
    now = knm("playbook", "show", "rolled", "--json").json()
    assert now["content"] == PLAYBOOK and now["version"] == 3
    again = knm("playbook", "rollback", "rolled", "1")
    assert "already has version 1's body" in again.out
    assert knm("playbook", "diff", "rolled", "1", "3").out == ""
    missing = knm("playbook", "rollback", "rolled", "9")
    assert missing.code == 4 and "not found" in missing.err.lower()
