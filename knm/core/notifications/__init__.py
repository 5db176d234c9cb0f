"""Notifications: subscriptions to events, an outbox written with the event, and a worker
that delivers it (webhook, Slack-compatible, email) with retries, a log and a dead letter.

``emit(conn, event, data, kind=, cluster=, status=)`` queues an event from any code, in the
caller's transaction; task and node events come from triggers (migration 0017).
"""

from knm.core.notifications.outbox import emit

__all__ = ["emit"]
