"""A secret URL (a Slack webhook's) never reaches a log line of httpx's."""

from __future__ import annotations

import logging

import httpx
import pytest

from knm.core.notifications import redact


def test_a_registered_url_is_replaced_in_httpx_log_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "https://hooks.example.com/services/T0/B0/s3cr3tT0k3n"
    redact.register(secret)
    redact.install()
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s %d %s"', "POST", httpx.URL(secret), "HTTP/1.1", 200, "OK"
        )
    assert "s3cr3tT0k3n" not in caplog.text
    assert "https://hooks.example.com/[redacted]" in caplog.text
    assert "200" in caplog.text


def test_other_urls_are_left_as_they_are(caplog: pytest.LogCaptureFixture) -> None:
    redact.install()
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info("HTTP Request: %s", httpx.URL("https://example.org/x"))
    assert "https://example.org/x" in caplog.text
