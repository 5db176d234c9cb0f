"""The errors knm raises; each carries the HTTP status of the envelope it becomes."""

from __future__ import annotations


class KnmError(Exception):
    """Base of every error that reaches a client as an envelope."""

    status_code: int = 500
    message: str = "internal error"

    def __init__(self, error: str = "", *, message: str | None = None) -> None:
        super().__init__(error or message or self.message)
        self.error = error
        if message is not None:
            self.message = message
        self.headers: dict[str, str] = {}


class BadRequest(KnmError):
    status_code = 400
    message = "bad request"


class Unauthorized(KnmError):
    status_code = 401
    message = "unauthorized"


class Forbidden(KnmError):
    status_code = 403
    message = "forbidden"


class FeatureDisabled(Forbidden):
    message = "feature disabled"


class NotFound(KnmError):
    status_code = 404
    message = "not found"


class Conflict(KnmError):
    status_code = 409
    message = "conflict"


class PayloadTooLarge(KnmError):
    status_code = 413
    message = "payload too large"


class Invalid(KnmError):
    """A well-formed request whose values break a rule (the spec's 422)."""

    status_code = 422
    message = "validation failed"


class RateLimited(KnmError):
    status_code = 429
    message = "too many requests"

    def __init__(self, error: str = "", *, retry_after: int, message: str | None = None) -> None:
        super().__init__(error, message=message)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class ServiceUnavailable(KnmError):
    status_code = 503
    message = "service unavailable"


class FeatureUnavailable(ServiceUnavailable):
    """A feature that is switched on but cannot work on this host; ``error`` says why and what
    to change (Ansible whose interpreter its run user cannot reach)."""

    message = "feature unavailable"
