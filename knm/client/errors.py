"""Errors the SDK raises: one class per error status of the contract, each carrying the
envelope's ``code``, ``message`` and ``error``."""

from __future__ import annotations


class KnmError(Exception):
    """An answer with status >= 400, or no answer at all (``code`` 0: a network error)."""

    def __init__(self, code: int, message: str, error: str = "") -> None:
        super().__init__(f"{message}: {error}" if error and error != message else message)
        self.code = code
        self.message = message
        self.error = error


class TransportError(KnmError):
    """The server could not be reached, or the connection broke (no HTTP status)."""

    def __init__(self, error: str) -> None:
        super().__init__(0, "connection failed", error)


class BadRequest(KnmError):
    """400: the body or the parameters have the wrong shape or types."""


class Unauthorized(KnmError):
    """401: the token is missing, malformed, expired or revoked (or the login failed)."""


class Forbidden(KnmError):
    """403: the role is too low."""


class FeatureDisabled(Forbidden):
    """403 with message "feature disabled": a feature switch is off; ``error`` names it."""


class NotFound(KnmError):
    """404: an id in the URL or the body does not exist."""


class Conflict(KnmError):
    """409: a duplicate name, builtin content, a finished task, a stale version, ..."""


class PayloadTooLarge(KnmError):
    """413: the body is too large."""


class ValidationFailed(KnmError):
    """422: well-formed values that break a rule (a dangerous command, an unknown node, ...)."""


class RateLimited(KnmError):
    """429: too many requests; ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(self, code: int, message: str, error: str = "", retry_after: int = 0) -> None:
        super().__init__(code, message, error)
        self.retry_after = retry_after


class ServerError(KnmError):
    """5xx: the server failed (details are in its log, never in the answer)."""


_BY_STATUS: dict[int, type[KnmError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
}


def error_for(status: int, message: str, error: str, retry_after: str | None = None) -> KnmError:
    """The exception for an error envelope of ``status``."""
    if status == 429:
        try:
            seconds = int(retry_after or 0)
        except ValueError:
            seconds = 0
        return RateLimited(status, message, error, retry_after=seconds)
    if status == 403 and message == "feature disabled":
        return FeatureDisabled(status, message, error)
    if status >= 500:
        return ServerError(status, message, error)
    return _BY_STATUS.get(status, KnmError)(status, message, error)
