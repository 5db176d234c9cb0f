"""How the CLI prints a task."""

from __future__ import annotations

import pytest

from knm.cli.remote import render
from knm.wire.tasks import NodeResult, TaskStatus


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
