"""How the CLI prints: tables (plain columns into a pipe, rich ones on a terminal), the ``-o``
formats of lists and objects, and a task (its live view is ``test_live.py``'s)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import yaml

from knm.cli.remote import render
from knm.wire.tasks import NodeResult, TaskStatus

#: Box-drawing characters (U+2500-U+257F) and the escape that starts a colour code.
DECORATION = re.compile("[\u2500-\u257f\x1b]")


class Item(msgspec.Struct, kw_only=True):
    id: int
    name: str
    size: int | None = None
    labels: dict[str, str] = {}
    at: datetime | None = None


ITEMS = [
    Item(
        id=7,
        name="ping",
        size=3,
        labels={"rack": "a"},
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    Item(id=12, name="a much longer name " + "x" * 200, labels={"rack": "b", "zone": "z1"}),
]
KIND = render.Kind("thing", "id", ("id", "name"), wide=("size", "labels"))


def asked(output: str | None = None, json: bool = False) -> argparse.Namespace:
    return argparse.Namespace(output=output, json=json)


def split(line: str) -> list[str]:
    return re.split(r" {3,}", line.rstrip())


def test_a_table_into_a_pipe_is_plain_columns_with_upper_case_headers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render.print_table(ITEMS, ["id", "name", "labels"], total=40)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert not DECORATION.search(captured.out)
    assert split(lines[0]) == ["ID", "NAME", "LABELS"]
    assert split(lines[1]) == ["7", "ping", "rack=a"]
    # Nothing cut or wrapped, and every column starts where its header does.
    assert split(lines[2]) == ["12", ITEMS[1].name, "rack=b,zone=z1"]
    assert lines[1].index("ping") == lines[0].index("NAME") == lines[2].index("a much")
    assert lines[2].index("rack=b") == lines[0].index("LABELS")
    assert len(lines) == 3
    # The count would read as one more row: it goes to stderr.
    assert captured.err == "2 of 40\n"


def test_every_row_has_as_many_fields_as_the_header_has_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [{"id": 1, "note": "two\nlines", "tags": ["a", "b"]}, {"id": 2, "tags": []}]
    render.print_table(rows, ["id", "note", "tags"])
    lines = capsys.readouterr().out.splitlines()
    # Nothing blank (<none>), lists joined without spaces, and a newline kept inside its row.
    assert lines[1].split() == ["1", "two", "lines", "a,b"]
    assert lines[2].split() == ["2", "<none>", "<none>"]


def test_a_table_on_a_terminal_stays_a_rich_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "terminal", lambda: True)
    render.print_table(ITEMS[:1], ["id", "name"], total=1)
    printed = capsys.readouterr().out
    assert DECORATION.search(printed) and "1 of 1" in printed


def test_yaml_is_the_data_json_prints_in_the_apis_key_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = {"total": 2, "things": ITEMS}
    render.print_list(asked(json=True), KIND, ITEMS, document)
    as_json = json.loads(capsys.readouterr().out)
    render.print_list(asked("yaml"), KIND, ITEMS, document)
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed) == as_json
    assert printed.startswith("total: 2\nthings:\n- id: 7\n  name: ping\n")
    assert "{" not in printed  # block style, not flow style


def test_o_json_prints_the_same_bytes_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    document = {"total": 2, "things": ITEMS}
    render.print_list(asked(json=True), KIND, ITEMS, document)
    with_flag = capsys.readouterr().out
    render.print_list(asked("json"), KIND, ITEMS, document)
    assert capsys.readouterr().out == with_flag


def test_name_prints_one_kind_slash_key_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_list(asked("name"), KIND, ITEMS, {"things": ITEMS}, total=2)
    captured = capsys.readouterr()
    assert captured.out == "thing/7\nthing/12\n"
    assert captured.err == ""


def test_wide_adds_the_kinds_extra_columns_to_its_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render.print_list(asked(), KIND, ITEMS, {})
    assert split(capsys.readouterr().out.splitlines()[0]) == ["ID", "NAME"]
    render.print_list(asked("wide"), KIND, ITEMS, {})
    lines = capsys.readouterr().out.splitlines()
    assert split(lines[0]) == ["ID", "NAME", "SIZE", "LABELS"]
    assert split(lines[1]) == ["7", "ping", "3", "rack=a"]


def test_an_object_prints_its_own_view_unless_a_format_is_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    views: list[bool] = []
    item = ITEMS[0]
    for output in (None, "wide"):
        render.print_object(asked(output), KIND, item, views.append)
    assert views == [False, True] and capsys.readouterr().out == ""
    render.print_object(asked("name"), KIND, item, views.append)
    assert capsys.readouterr().out == "thing/7\n"
    render.print_object(asked("yaml"), KIND, item, views.append)
    loaded: Any = yaml.safe_load(capsys.readouterr().out)
    assert loaded["at"] == "2026-01-02T03:04:05Z"  # a string, as in the JSON, not a timestamp
    assert views == [False, True]


def test_a_task_into_a_pipe_has_no_box_drawing_and_wide_adds_node_times(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = TaskStatus(
        task_id="ssh-exec-1-abcdef",
        status="completed",
        success_count=1,
        results=[NodeResult(node="node1", status="success", address="10.0.0.1", stdout="hi\n")],
    )
    render.print_task(status, with_output=True, wide=True)
    printed = capsys.readouterr().out
    assert not DECORATION.search(printed)
    assert "ADDRESS" in printed and "10.0.0.1" in printed
    assert "--- node1 stdout ---\nhi\n" in printed


def test_a_task_with_a_skipped_node_says_how_many_were_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = TaskStatus(
        task_id="workflow-exec-1-abcdef",
        status="completed",
        success_count=2,
        failed_count=1,
        results=[
            NodeResult(node="node1", status="success"),
            NodeResult(node="node2", status="failed", reason="skipped",
                       message="node node2 was cordoned by hand"),
            NodeResult(node="node3", status="success"),
        ],
    )  # fmt: skip
    render.print_task(status)
    printed = capsys.readouterr().out
    assert "2 succeeded, 1 failed (1 skipped)" in printed
    assert "cordoned by hand" in printed
