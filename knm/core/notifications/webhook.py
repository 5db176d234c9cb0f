"""The webhook and Slack-compatible targets: an HTTP POST, 2xx is delivered."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from knm.core.notifications import redact, signing
from knm.core.notifications.targets import Message, Outcome, summary

USER_AGENT = "knm-notifications"


def _headers(message: Message) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": message.idempotency_key,
        "X-Knm-Event": message.event,
        "X-Knm-Delivery": message.idempotency_key,
    }


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> Outcome:
    try:
        # Redirects are not followed: a signed body goes only where it was configured to go.
        response = await client.post(url, content=body, headers=headers, follow_redirects=False)
    except httpx.TimeoutException:
        return Outcome(ok=False, error="timed out waiting for the receiver")
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return Outcome(ok=True, status_code=response.status_code)
    return Outcome(
        ok=False,
        status_code=response.status_code,
        error=f"HTTP {response.status_code} {response.reason_phrase}".strip(),
    )


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, target: dict[str, Any], secret: str, message: Message) -> Outcome:
        headers = _headers(message)
        if secret:
            # The timestamp of this attempt: a receiver refusing old ones still takes a retry.
            timestamp = int(time.time())
            headers[signing.TIMESTAMP_HEADER] = str(timestamp)
            headers[signing.SIGNATURE_HEADER] = signing.sign(secret, timestamp, message.body)
        return await _post(self.client, target["url"], message.body, headers)


class SlackSender:
    """Slack's (and Mattermost's, Rocket.Chat's …) incoming webhooks: ``{"text": ...}``; the
    URL, the secret, is the credential."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, target: dict[str, Any], secret: str, message: Message) -> Outcome:
        body = msgspec.json.encode({"text": summary(message)})
        redact.register(secret)
        outcome = await _post(self.client, secret, body, _headers(message))
        if outcome.error:
            return Outcome(
                ok=False, status_code=outcome.status_code, error=redact.scrub(outcome.error)
            )
        return outcome
