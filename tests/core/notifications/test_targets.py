"""The one readable line a Slack message and a mail subject carry, per event."""

from __future__ import annotations

from typing import Any

import pytest

from knm.core.notifications.email import build
from knm.core.notifications.targets import Message, summary


def message(event: str, **data: Any) -> Message:
    payload = {"event": event, "id": "k.1", "data": data}
    return Message(event=event, idempotency_key="k.1", payload=payload, body=b"{}")


@pytest.mark.parametrize(
    ("event", "data", "line"),
    [
        (
            "task.failed",
            {
                "task_id": "t1",
                "kind": "ssh",
                "cluster_name": "prod",
                "status": "failed",
                "error": "boom",
            },
            "knm: task t1 (ssh) on prod failed: boom",
        ),
        (
            "task.completed",
            {
                "task_id": "t2",
                "kind": "ssh",
                "cluster_name": "",
                "status": "completed",
                "message": "completed",
            },
            "knm: task t2 (ssh) completed",
        ),
        (
            "node.failed",
            {"task_id": "t3", "node": "n2", "cluster_name": "lab", "message": "exit 3"},
            "knm: node n2 failed in task t3 on lab: exit 3",
        ),
        (
            "approval.requested",
            {"task_id": "wf", "cluster_name": "lab", "step_id": "gate", "message": "go?"},
            "knm: task wf on lab waits for approval at step gate: go?",
        ),
        (
            "schedule.misfired",
            {"reason": "credential deleted"},
            "knm: schedule.misfired: credential deleted",
        ),
        ("notification.test", {}, "knm: test notification"),
    ],
)
def test_each_event_reads_as_one_line(event: str, data: dict[str, Any], line: str) -> None:
    assert summary(message(event, **data)) == line


def test_a_mail_carries_the_line_as_subject_and_a_message_id_from_the_key() -> None:
    target = {"from_addr": "knm@example.com", "to": ["a@example.com", "b@example.com"]}
    mail = build(target, message("notification.test"))
    assert mail["Subject"] == "knm: test notification"
    assert mail["To"] == "a@example.com, b@example.com"
    assert mail["Message-ID"] == "<k.1@knm>"
