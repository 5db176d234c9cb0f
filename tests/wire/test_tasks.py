"""Status answers, start answers and history pages keep the contract's shapes both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from knm.wire import (
    TASK_STATES,
    TERMINAL,
    NodeResult,
    TaskStarted,
    TaskStatus,
    TaskSummary,
    field_message,
    flatten,
    page_of,
)

SSH_STATUS = {
    "task_id": "ssh-exec-1698550000-abc123",
    "kind": "ssh",
    "status": "completed",
    "cluster_name": "production",
    "target_nodes": ["node1", "node2"],
    "success_count": 1,
    "failed_count": 1,
    "progress": 100,
    "message": "1 of 2 nodes failed",
    "start_time": "2025-10-29T14:30:00Z",
    "end_time": "2025-10-29T14:30:05Z",
    "duration": 5,
    "created_at": "2025-10-29T14:30:00Z",
    "user_id": 1,
    "username": "admin",
    "parent_task_id": None,
    "rerun_of": None,
    "error": None,
    "results": [
        {"node": "node1", "status": "success", "exit_code": 0, "stdout": "up\n", "stderr": ""},
        {
            "node": "node2",
            "status": "failed",
            "reason": "exit_code",
            "message": "exit code 1",
            "exit_code": 1,
            "stdout": "",
            "stderr": "boom\n",
            "changed": 2,
        },
    ],
    "command": "uptime",
}


def test_terminal_states_are_the_finished_ones_of_the_task_states() -> None:
    assert sorted(TERMINAL) == ["cancelled", "completed", "failed"]
    assert TERMINAL.issubset(TASK_STATES)


def test_a_status_answer_round_trips_with_the_executors_fields_at_the_top_level() -> None:
    status = TaskStatus.from_wire(SSH_STATUS)
    assert status.extra == {"command": "uptime"}
    assert status.results[1].extra == {"changed": 2}
    assert status.start_time == datetime(2025, 10, 29, 14, 30, tzinfo=UTC)
    assert status.finished
    assert status.to_wire() == SSH_STATUS


def test_kind_specific_contract_fields_are_typed_and_absent_when_unset() -> None:
    status = TaskStatus(task_id="workflow-exec-1-abcdef", status="running")
    status.extend({"current_step": None, "total_steps": 3, "steps": [], "workflow_name": "w"})
    sent = status.to_wire()
    assert (sent["current_step"], sent["total_steps"], sent["steps"]) == (None, 3, [])
    assert sent["workflow_name"] == "w" and "extra" not in sent
    assert "output" not in sent
    assert "output" not in TaskStatus(task_id="t", status="pending").to_wire()


def test_node_results_leave_out_what_they_do_not_carry() -> None:
    sent = msgspec.to_builtins(NodeResult(node="n1", status="success"))
    assert sent == {"node": "n1", "status": "success"}


def test_a_start_answer_carries_the_summary_and_no_empty_rerun_fields() -> None:
    started = TaskStarted(task_id="ssh-exec-1-abcdef", status="running", cluster_name="c")
    started.extend({"command": "df -h"})
    sent = flatten(msgspec.to_builtins(started))
    assert sent == {
        "task_id": "ssh-exec-1-abcdef",
        "status": "running",
        "cluster_name": "c",
        "command": "df -h",
    }


def test_a_history_page_names_its_items_executions() -> None:
    page_type = page_of("executions", TaskSummary)
    row = TaskSummary(id=1, task_id="ssh-exec-1-abcdef", status="completed", kind="ssh")
    encoded = msgspec.json.encode(page_type(1, [row]))
    assert msgspec.json.decode(encoded)["executions"][0]["task_id"] == "ssh-exec-1-abcdef"
    assert msgspec.json.decode(encoded, type=page_type).items == [row]


def test_a_history_row_sends_its_display_fields_at_the_top_level() -> None:
    row = TaskSummary(id=1, task_id="ssh-exec-1-abcdef", status="completed", kind="ssh")
    row.extra = {"command": "uptime"}
    sent = row.to_wire()
    assert sent["command"] == "uptime" and "summary" not in sent
    assert "extra" not in sent
    assert TaskSummary.from_wire(sent).extra == {"command": "uptime"}


def test_validation_messages_name_the_field_first() -> None:
    message = "Expected `int`, got `str` - at `$.nodes[0].port`"
    assert field_message(message) == "nodes[0].port: Expected `int`, got `str`"
    assert field_message("Object missing required field `name`") == (
        "Object missing required field `name`"
    )
    assert field_message("Expected `object`, got `array` - at `$`") == (
        "Expected `object`, got `array`"
    )


def test_a_node_that_ended_without_an_exit_code_shows_exit_code_null() -> None:
    status = TaskStatus.from_wire(SSH_STATUS)
    status.results.append(
        NodeResult(node="node3", status="failed", reason="timeout", message="timed out")
    )
    sent = status.to_wire()["results"][2]
    assert "exit_code" in sent and sent["exit_code"] is None
    assert sent["reason"] == "timeout"
