"""The errors knm raises; each carries the HTTP status of the envelope it becomes.

They are the wire's (``knm.wire.errors``): the SDK raises the same classes from the envelopes
it receives."""

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

__all__ = [
    "BadRequest",
    "Conflict",
    "ErrorDetail",
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
    "Unauthorized",
]
