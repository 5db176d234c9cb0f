"""How a workflow's steps read on the wire, and which step the execute answer names."""

from __future__ import annotations

from typing import Any

import pytest

from knm.plugins.workflows.definition import split
from knm.plugins.workflows.executor import first_step, step_on_wire


def _state(status: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "s", "name": "s", "type": "ssh", "batch": 0, "status": status,
            "result": result or {}, "progress": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("stored", "status", "result"),
    [
        ("pending", "pending", None),
        ("running", "running", None),
        ("success", "completed", "success"),
        ("failed", "failed", "failed"),
        ("cancelled", "cancelled", "failed"),
        ("skipped", "skipped", None),
    ],
)
def test_a_step_shows_the_contracts_status_and_a_string_result(
    stored: str, status: str, result: str | None
) -> None:
    shown = step_on_wire(_state(stored, {"stdout": "hi"}))
    assert (shown["status"], shown["result"]) == (status, result)
    assert shown["outputs"] == {"stdout": "hi"}


def test_the_first_step_to_start_is_the_first_without_dependencies_not_waiting_for_failure() -> (
    None
):
    steps = [
        split({"id": "alert", "type": "ssh", "when": "on_failure"}),
        split({"id": "later", "type": "ssh", "depends_on": ["work"]}),
        split({"id": "work", "type": "ssh"}),
    ]
    assert first_step(steps) == "work"
    assert first_step([]) is None
