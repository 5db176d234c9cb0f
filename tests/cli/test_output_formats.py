"""``-o json|yaml|wide|name`` on every command that prints a list or an object, against a real
server: ``-o json`` is ``--json`` byte for byte, ``-o yaml`` the same data, ``-o name`` one
``kind/key`` per line, ``-o wide`` the table with more columns; the default output into a pipe
(stdout is captured here, not a terminal) is plain columns; a bogus format is a usage error."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from knm.client import Client

from .conftest import Knm

BOX_OR_COLOUR = re.compile("[\u2500-\u257f\x1b]")
VALID = ("json", "yaml", "wide", "name")


@pytest.fixture(scope="module")
def made(admin: Client) -> dict[str, str]:
    """One of everything the list commands list, made once for the module."""
    admin.create_cluster(
        "fmt-lab",
        "static",
        nodes=[
            {"name": "n1", "address": "127.0.0.2", "labels": {"rack": "a"}},
            {"name": "n2", "address": "127.0.0.3", "labels": {"rack": "b"}},
        ],
    )
    task = admin.executor("test").start(
        {"cluster_name": "fmt-lab", "target_nodes": ["n1", "n2"], "echo": "hi {node}"}
    )
    admin.wait(task.task_id)
    playbook = admin.playbooks.create("fmt-ping", "- hosts: all\n  tasks: []\n")
    admin.playbooks.update(playbook.id, version=1, description="pings")
    admin.scripts.create("fmt-hello", "echo hello", language="shell")
    admin.workflows.create("fmt-flow", {"steps": [{"id": "one", "type": "test"}]})
    credential = admin.create_credential("fmt-root", "root", "password", password="pw-secret")
    user = admin.create_user("fmt-alice", "correct-horse-battery", "operator")
    admin.create_token("fmt-ci", role="viewer")
    return {
        "task": task.task_id,
        "playbook": str(playbook.id),
        "credential": str(credential.id),
        "user": str(user.id),
    }


#: Each list command, the kind of its ``-o name`` lines, the key of its JSON list, and the field
#: each line names.
LISTS = {
    "task list": ("task", "executions", "task_id"),
    "playbook list": ("playbook", "playbooks", "id"),
    "script list": ("script", "scripts", "id"),
    "workflow list": ("workflow", "workflows", "id"),
    "playbook versions fmt-ping": ("version", "versions", "version"),
    "cluster list": ("cluster", "clusters", "name"),
    "cluster nodes fmt-lab": ("node", "nodes", "name"),
    "credential list": ("credential", "credentials", "id"),
    "user list": ("user", "users", "id"),
    "token list": ("token", "tokens", "id"),
    "audit list": ("audit", "entries", "id"),
}
#: Each show command (``{task}``: an id from ``made``), the kind and the field its line names.
SHOWS = {
    "task show {task}": ("task", "task_id"),
    "playbook show fmt-ping": ("playbook", "id"),
    "script show fmt-hello": ("script", "id"),
    "workflow show fmt-flow": ("workflow", "id"),
    "playbook versions fmt-ping --show 1": ("version", "version"),
    "cluster show fmt-lab": ("cluster", "name"),
    "credential show {credential}": ("credential", "id"),
    "user show {user}": ("user", "id"),
    "user me": ("user", "id"),
}


def argv(command: str, made: dict[str, str]) -> list[str]:
    return command.format(**made).split()


def run(knm: Knm, *args: str) -> str:
    result = knm(*args)
    assert result.code == 0, result.err
    return result.out


def headers(table: str) -> list[str]:
    return re.split(r" {3,}", table.splitlines()[0].rstrip())


@pytest.mark.parametrize("command", [*LISTS, *SHOWS])
def test_o_json_prints_what_json_prints_and_o_yaml_the_same_data(
    knm: Knm, made: dict[str, str], command: str
) -> None:
    args = argv(command, made)
    with_flag = run(knm, *args, "--json")
    assert run(knm, *args, "-o", "json") == with_flag
    assert run(knm, *args, "--output", "json") == with_flag
    assert yaml.safe_load(run(knm, *args, "-o", "yaml")) == json.loads(with_flag)


@pytest.mark.parametrize("command", LISTS)
def test_o_name_prints_one_kind_slash_key_per_listed_item(
    knm: Knm, made: dict[str, str], command: str
) -> None:
    kind, key, field = LISTS[command]
    args = argv(command, made)
    items = json.loads(run(knm, *args, "--json"))[key]
    lines = run(knm, *args, "-o", "name").splitlines()
    assert items and lines == [f"{kind}/{item[field]}" for item in items]
    assert all(re.fullmatch(rf"{kind}/[^/\s]+", line) for line in lines)


@pytest.mark.parametrize(
    "noun", ["task", "playbook", "script", "workflow", "cluster", "credential", "user"]
)
def test_each_o_name_line_is_taken_by_the_show_command_as_xargs_would_pass_it(
    knm: Knm, made: dict[str, str], noun: str
) -> None:
    lines = run(knm, noun, "list", "-o", "name").split()
    assert lines
    for line in lines:
        shown = knm(noun, "show", line, "-o", "name")
        assert shown.code == 0 and shown.out == f"{line}\n", shown.err


@pytest.mark.parametrize("command", SHOWS)
def test_o_name_of_a_show_command_is_its_one_line(
    knm: Knm, made: dict[str, str], command: str
) -> None:
    kind, field = SHOWS[command]
    args = argv(command, made)
    shown = json.loads(run(knm, *args, "--json"))
    assert run(knm, *args, "-o", "name") == f"{kind}/{shown[field]}\n"


@pytest.mark.parametrize("command", [*LISTS, *SHOWS])
def test_the_default_output_into_a_pipe_has_no_box_drawing_nor_colour(
    knm: Knm, made: dict[str, str], command: str
) -> None:
    printed = run(knm, *argv(command, made))
    assert printed.strip() and not BOX_OR_COLOUR.search(printed)


@pytest.mark.parametrize("command", LISTS)
def test_a_list_prints_plain_columns_under_upper_case_headers(
    knm: Knm, made: dict[str, str], command: str
) -> None:
    result = knm(*argv(command, made))
    names = headers(result.out)
    assert names == [name.upper() for name in names]
    rows = result.out.splitlines()[1:]
    assert rows and re.fullmatch(r"\d+ of \d+\n", result.err)


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("task list", ["KIND", "CREATED AT", "END TIME", "PARENT TASK ID", "TARGET NODES"]),
        ("playbook list", ["TAGS", "IS ACTIVE", "UPDATED BY", "CREATED AT"]),
        ("script list", ["TAGS", "IS ACTIVE", "UPDATED BY", "CREATED AT", "LANGUAGE"]),
        ("workflow list", ["TAGS", "IS ACTIVE", "UPDATED BY", "CREATED AT", "STEP COUNT"]),
        ("cluster list", ["ID", "CREATED AT", "BASTION"]),
        ("cluster nodes fmt-lab", ["INFO"]),
        ("credential list", ["HAS PASSPHRASE", "DESCRIPTION", "ALLOWED ROLES"]),
        ("token list", ["CREATED AT"]),
    ],
)
def test_o_wide_adds_columns_to_the_default_table(
    knm: Knm, made: dict[str, str], command: str, extra: list[str]
) -> None:
    args = argv(command, made)
    default, wide = headers(run(knm, *args)), headers(run(knm, *args, "-o", "wide"))
    assert wide[: len(default)] == default
    assert set(extra) <= set(wide[len(default) :])


def test_o_wide_of_a_task_shows_its_nodes_addresses(knm: Knm, made: dict[str, str]) -> None:
    shown = run(knm, "task", "show", made["task"], "-o", "wide")
    assert "ADDRESS" in shown and "START TIME" in shown
    assert "ADDRESS" not in run(knm, "task", "show", made["task"])


def test_the_last_of_json_and_o_wins(knm: Knm, made: dict[str, str]) -> None:
    as_yaml = run(knm, "task", "list", "--json", "-o", "yaml")
    assert yaml.safe_load(as_yaml) == json.loads(run(knm, "task", "list", "-o", "yaml", "--json"))
    assert not as_yaml.startswith("{")


def test_an_error_answer_under_o_json_is_json_too(knm: Knm) -> None:
    missing = knm("cluster", "show", "fmt-nowhere", "-o", "json")
    assert missing.code == 4 and missing.json()["code"] == 404


@pytest.mark.parametrize("command", [*LISTS, *SHOWS])
def test_a_bogus_format_is_a_usage_error_naming_the_valid_ones(
    knm: Knm, made: dict[str, str], command: str
) -> None:
    refused = knm(*argv(command, made), "-o", "bogus")
    assert refused.code == 2 and refused.out == ""
    assert "bogus" in refused.err and all(f"'{name}'" in refused.err for name in VALID)


def test_task_show_with_output_prints_each_nodes_output(knm: Knm, made: dict[str, str]) -> None:
    shown = run(knm, "task", "show", made["task"], "--with-output")
    assert "--- n1 stdout ---\nhi n1\n" in shown


@pytest.mark.parametrize(
    ("argv", "dest", "value"),
    [
        (["ansible", "run", "playbook/7", "-c", "lab", "-n", "n1"], "playbook", "7"),
        (["script", "run", "script/ports", "-c", "lab", "-n", "n1"], "script", "ports"),
        (["workflow", "run", "workflow/3", "-c", "lab", "-n", "n1"], "workflow", "3"),
        (
            ["workflow", "approve", "task/workflow-exec-9-ab", "gate"],
            "task_id",
            "workflow-exec-9-ab",
        ),
        (["workflow", "resume", "task/workflow-exec-9-ab"], "task_id", "workflow-exec-9-ab"),
    ],
)
def test_the_run_commands_take_o_name_lines_too(argv: list[str], dest: str, value: str) -> None:
    from knm.cli.main import build_parser

    assert getattr(build_parser().parse_args(argv), dest) == value
