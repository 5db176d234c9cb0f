"""Tokens in URLs never reach a log line, whichever logger prints the URL."""

from __future__ import annotations

import logging

import pytest

from knm.core.auth import logfilter

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/api/v1/progress/ws?token={TOKEN}", "/api/v1/progress/ws?token=[redacted]"),
        (f"/ws?since=3&token={TOKEN}&x=1", "/ws?since=3&token=[redacted]&x=1"),
        (f"/ws?TOKEN={TOKEN} HTTP/1.1", "/ws?TOKEN=[redacted] HTTP/1.1"),
        (f'"GET /x?access_token={TOKEN}"', '"GET /x?access_token=[redacted]"'),
        ("/api/v1/tasks?page=2", "/api/v1/tasks?page=2"),
        ("{'query_string': b'token=" + TOKEN + "'}", "{'query_string': b'token=[redacted]'}"),
        ("a mytoken=1 stays", "a mytoken=1 stays"),
    ],
)
def test_query_tokens_are_redacted(text: str, expected: str) -> None:
    assert logfilter.redact(text) == expected


@pytest.mark.parametrize(
    "name", ["uvicorn.access", "uvicorn.error", "uvicorn.asgi", "knm", "knm.progress"]
)
def test_the_servers_and_knms_loggers_redact_what_they_print(name: str) -> None:
    logging.getLogger(name)  # exists before install, as knm's module loggers do
    logfilter.install()
    logger = logging.getLogger(name)
    # A handler on the logger itself: uvicorn's logging config (applied by any earlier test
    # that served) stops its loggers from propagating to the root, where caplog listens.
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        # uvicorn's shapes: the access line, and the WebSocket handshake line.
        logger.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", f"/ws?token={TOKEN}", "1.1", 101)
        logger.info('%s - "WebSocket %s" [accepted]', "1.2.3.4:5", f"/ws?token={TOKEN}")
        logger.info(f"plain message /ws?token={TOKEN}")
        logger.info("ASGI [1] Started scope=%s", {"query_string": f"token={TOKEN}".encode()})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(seen) == 4
    assert not any(TOKEN in line for line in seen)
    assert sum(line.count("token=[redacted]") for line in seen) == 4


def test_uvicorns_access_formatter_still_formats_a_redacted_access_line() -> None:
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", f"/ws?token={TOKEN}", "1.1", 101), None,
    )  # fmt: skip
    assert logfilter.TokenRedactor().filter(record)
    line = AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s').format(record)
    assert line.startswith('1.2.3.4:5 "GET /ws?token=[redacted] HTTP/1.1" 101')
    assert TOKEN not in line
