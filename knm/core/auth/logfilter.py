"""Tokens never reach the logs: ``?token=`` (the WebSocket's query token) is redacted from every
record of the servers' and knm's loggers — uvicorn's access log and its WebSocket handshake
lines (``"WebSocket /api/v1/progress/ws?token=…" [accepted]``) above all."""

from __future__ import annotations

import logging
import re

#: Query parameters whose values are credentials.
_SECRET_QUERY = re.compile(r"([?&;](?:token|access_token|api_key)=)[^&;#\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"
#: Loggers that may print a request's URL.
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "litestar", "knm")


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)


class TokenRedactor(logging.Filter):
    """Rewrites a record's message and string arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


_FILTER = TokenRedactor()


def install() -> None:
    """Add the filter to the servers' loggers and to every ``knm`` logger (filters sit on
    loggers, not on their children, so each is named). Idempotent; logging configuration done
    later (uvicorn's, Litestar's ``dictConfig``) keeps logger filters."""
    names = set(LOGGERS) | {
        name for name in logging.root.manager.loggerDict if name.startswith("knm.")
    }
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
