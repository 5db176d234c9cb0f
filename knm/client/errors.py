"""Errors the SDK raises: the API's own (``knm.wire.errors``, one class per error status of the
contract, each carrying the envelope's ``code``, ``message`` and ``error``), made from the
envelope received, and ``TransportError`` when no answer came."""

from __future__ import annotations

from knm.wire.errors import (
    BadRequest,
    Conflict,
    ErrorDetail,
    FeatureDisabled,
    FeatureUnavailable,
    Forbidden,
    Invalid,
    KnmError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
)

#: The SDK's name for 422 (the server's ``Invalid``).
ValidationFailed = Invalid


class TransportError(KnmError):
    """The server could not be reached, or the connection broke (no HTTP status: ``code`` 0)."""

    status_code = 0
    message = "connection failed"


_BY_STATUS: dict[int, type[KnmError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Invalid,
    503: ServiceUnavailable,
}


def error_for(
    status: int,
    message: str,
    error: str,
    retry_after: str | None = None,
    details: list[ErrorDetail] | None = None,
) -> KnmError:
    """The exception for an error envelope of ``status`` (with its ``details``, if any)."""
    found = _error_for(status, message, error, retry_after)
    found.details = details
    return found


def _error_for(status: int, message: str, error: str, retry_after: str | None) -> KnmError:
    if status == 429:
        try:
            seconds = int(retry_after or 0)
        except ValueError:
            seconds = 0
        return RateLimited(error, retry_after=seconds, message=message, code=status)
    if status == 403 and message == "feature disabled":
        return FeatureDisabled(error, message=message, code=status)
    if status == 503 and message == "feature unavailable":
        return FeatureUnavailable(error, message=message, code=status)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else KnmError)
    return cls(error, message=message, code=status)


__all__ = [
    "BadRequest",
    "Conflict",
    "FeatureDisabled",
    "FeatureUnavailable",
    "Forbidden",
    "Invalid",
    "KnmError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "ValidationFailed",
    "error_for",
]
