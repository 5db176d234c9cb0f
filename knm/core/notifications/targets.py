"""What every target gives the delivery worker: one send, and how it went."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class Outcome(msgspec.Struct, frozen=True):
    ok: bool
    #: The receiver's HTTP status (SMTP reply code for mail); None when it never answered.
    status_code: int | None = None
    error: str | None = None


class Message(msgspec.Struct, frozen=True):
    """One delivery as a target sends it."""

    event: str
    idempotency_key: str
    payload: dict[str, Any]
    #: The payload's JSON, as sent and signed (the same bytes on every attempt).
    body: bytes


class Sender(Protocol):
    async def __call__(self, target: dict[str, Any], secret: str, message: Message) -> Outcome: ...


def summary(message: Message) -> str:
    """One readable line: what happened, to what, where (Slack's text, mail's subject)."""
    data = message.payload.get("data") or {}
    event = message.event
    task = data.get("task_id")
    where = f" on {data['cluster_name']}" if data.get("cluster_name") else ""
    if event.startswith("task."):
        line = f"knm: task {task} ({data.get('kind', '')}){where} {data.get('status', '')}"
        detail = data.get("error") or data.get("message")
        if detail and detail != data.get("status"):
            line += f": {detail}"
        return line
    if event == "node.failed":
        why = data.get("message") or data.get("reason") or "failed"
        return f"knm: node {data.get('node')} failed in task {task}{where}: {why}"
    if event == "approval.requested":
        asked = f": {data['message']}" if data.get("message") else ""
        return f"knm: task {task}{where} waits for approval at step {data.get('step_id')}{asked}"
    if event == "notification.test":
        return "knm: test notification"
    detail = data.get("message") or data.get("reason") or ""
    return f"knm: {event}{where}{': ' + detail if detail else ''}"
