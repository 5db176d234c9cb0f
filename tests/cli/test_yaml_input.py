"""YAML the user gives (``-f FILE``, ``--kubeconfig FILE``, an edited workflow), refused at the
line and column where it goes wrong, in words a user reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from knm.cli.remote import yaml_input
from knm.cli.remote.session import UsageError


def test_a_file_that_does_not_parse_is_refused_at_its_line_and_column_naming_the_file() -> None:
    with pytest.raises(UsageError) as refused:
        yaml_input.load("steps:\n  - id: a\n    type: [ssh\n", "flow.yaml")
    assert str(refused.value) == (
        "flow.yaml, line 4, column 1: not valid YAML or JSON: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence at line 3, column 11)"
    )


def test_the_note_for_an_editor_says_where_without_the_source() -> None:
    with pytest.raises(yaml_input.NotYaml) as refused:
        yaml_input.load("a: b\n\tc: d\n", "the definition")
    assert refused.value.note == (
        "line 2, column 1: not valid YAML: found character '\\t' that cannot start any token "
        "(while scanning for the next token)"
    )


def test_a_character_yaml_does_not_allow_is_placed_by_its_offset() -> None:
    with pytest.raises(yaml_input.NotYaml) as refused:
        yaml_input.load("a: b\nc: d\x07\n", "-")
    assert refused.value.at == "line 2, column 5"
    assert "#x0007" in refused.value.problem


def test_every_document_of_a_stream_is_read_and_one_bad_one_refuses_them_all() -> None:
    assert yaml_input.load_all("a: 1\n---\n[1, 2]\n", "x.yaml") == [{"a": 1}, [1, 2]]
    with pytest.raises(yaml_input.NotYaml) as refused:
        yaml_input.load_all("a: 1\n---\nb: {\n", "x.yaml")
    assert refused.value.at.startswith("line 4")


def test_json_is_read_as_the_yaml_it_is(tmp_path: Path) -> None:
    given = tmp_path / "cluster.json"
    given.write_text('{"name": "lab", "kind": "static", "nodes": []}')
    text = yaml_input.read_text(str(given))
    assert yaml_input.load(text, str(given)) == {"name": "lab", "kind": "static", "nodes": []}
