"""Secret URLs (a Slack incoming webhook's URL is its credential) never reach the logs: httpx
logs every request's URL at INFO, so its loggers get a filter that replaces the URLs the
notification targets registered as secret."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

#: Loggers that may print a request's URL.
LOGGERS = ("httpx", "httpcore")
_secrets: set[str] = set()


def register(url: str) -> None:
    _secrets.add(url)


def shown(url: str) -> str:
    """What may be printed of a secret URL: its scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/[redacted]"


def scrub(text: str) -> str:
    # Longest first, so a URL that extends another is replaced whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, shown(secret))
    return text


class SecretUrlRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrubbed(arg) for arg in record.args)
        return True


def _scrubbed(arg: object) -> object:
    if isinstance(arg, int | float) or arg is None:
        return arg
    text = str(arg)
    cleaned = scrub(text)
    # An httpx.URL becomes its cleaned text only when it held a secret.
    return arg if cleaned == text else cleaned


_FILTER = SecretUrlRedactor()


def install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
