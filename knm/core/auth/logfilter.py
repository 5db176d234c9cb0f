"""Tokens never reach the logs: ``?token=`` (the WebSocket's query token) is redacted from every
record of the servers' and knm's loggers — uvicorn's access log and its WebSocket handshake
lines (``"WebSocket /api/v1/progress/ws?token=…" [accepted]``) above all."""

from __future__ import annotations

import logging
import re

#: Query parameters whose values are credentials, wherever the query shows: in a URL
#: (``?token=…``), or as the bare query string of an ASGI scope (``b'token=…'``).
_SECRET_QUERY = re.compile(
    r"((?<![A-Za-z0-9_-])(?:token|access_token|api_key)=)[^&;#\s\"']*", re.IGNORECASE
)
REDACTED = "[redacted]"
#: Loggers that may print a request's URL.
LOGGERS = (
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "uvicorn.asgi",
    "websockets",
    "websockets.server",
    "litestar",
    "knm",
)


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)


class TokenRedactor(logging.Filter):
    """Rewrites a record's message and string arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            # Argument by argument, keeping the tuple's shape: uvicorn's access formatter unpacks
            # exactly five (client, method, path, version, status).
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif record.args:
            # One mapping argument (an ASGI scope logged with ``%s``): formatted here, once.
            try:
                message = record.getMessage()
            except (TypeError, ValueError, KeyError):
                return True  # logging reports the bad format itself
            record.msg, record.args = redact(message), ()
        return True


def _redacted(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, bytes):
        return redact(arg.decode("latin-1")).encode("latin-1")
    if isinstance(arg, int | float) or arg is None:
        return arg  # ``%d`` needs a number, and a number holds no token
    # Anything else (an ASGI scope, headers) is replaced by its text only when it held one.
    text = str(arg)
    cleaned = redact(text)
    return arg if cleaned == text else cleaned


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
