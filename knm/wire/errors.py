"""Errors as the API sends them (``{code, message, error}``), and how a wrong body is named
in one: ``"<field>: <what is wrong>"``."""

from __future__ import annotations

import msgspec


class ErrorDetail(msgspec.Struct, kw_only=True):
    """Where one problem is, beside the envelope's ``error`` (``details: [...]``), so an editor
    can show it at its place: ``field`` is the body field (``content``,
    ``definition.steps[2]``), ``line`` and ``column`` count from 1 inside that field's text
    (null when the problem has no place there), ``message`` is the problem as ``error`` says
    it."""

    field: str
    line: int | None = None
    column: int | None = None
    message: str


def field_message(message: str, under: str = "") -> str:
    """A msgspec validation message as the API says it: the field first.

    ``"Expected `int`, got `str` - at `$.nodes[0].port`"`` → ``"nodes[0].port: Expected `int`,
    got `str`"``; a message without a location is returned as it is. ``under`` names the
    field the validated value sits in (``params`` → ``"params.grace_period: …"``)."""
    text, sep, where = message.rpartition(" - at `")
    if not sep:
        return f"{under}: {message}" if under else message
    path = where.rstrip("`").removeprefix("$")
    path = under + path if under else path.lstrip(".")
    return f"{path}: {text}" if path else text


class KnmError(Exception):
    """An error answer of the API, ``{code, message, error}``: ``code`` is the HTTP status,
    ``message`` the short text of the status, ``error`` the detail.

    One hierarchy for both ends: the server raises these and turns them into the envelope; the
    SDK raises the same classes from an envelope it received (``knm.client.errors.error_for``).
    ``str()`` is the detail (or the message when there is none)."""

    status_code: int = 500
    message: str = "internal error"

    def __init__(
        self,
        error: str = "",
        *,
        message: str | None = None,
        code: int | None = None,
        details: list[ErrorDetail] | None = None,
    ) -> None:
        super().__init__(error or message or self.message)
        self.error = error
        if message is not None:
            self.message = message
        if code is not None:
            self.status_code = code
        self.headers: dict[str, str] = {}
        #: Where each problem is (content validation), sent as the envelope's ``details``.
        self.details = details

    @property
    def code(self) -> int:
        """The HTTP status (0 when no answer came: ``knm.client.TransportError``)."""
        return self.status_code


class BadRequest(KnmError):
    """400: the body or the parameters have the wrong shape or types."""

    status_code = 400
    message = "bad request"


class Unauthorized(KnmError):
    """401: the token is missing, malformed, expired or revoked (or the login failed)."""

    status_code = 401
    message = "unauthorized"


class Forbidden(KnmError):
    """403: the role is too low."""

    status_code = 403
    message = "forbidden"


class FeatureDisabled(Forbidden):
    """403 "feature disabled": a feature switch is off; ``error`` names it."""

    message = "feature disabled"


class NotFound(KnmError):
    """404: an id in the URL or the body does not exist."""

    status_code = 404
    message = "not found"


class Conflict(KnmError):
    """409: a duplicate name, builtin content, a finished task, a stale version, ..."""

    status_code = 409
    message = "conflict"


class PayloadTooLarge(KnmError):
    """413: the body is too large."""

    status_code = 413
    message = "payload too large"


class Invalid(KnmError):
    """422: well-formed values that break a rule (a dangerous command, an unknown node, ...)."""

    status_code = 422
    message = "validation failed"


class RateLimited(KnmError):
    """429: too many requests; ``retry_after`` is seconds (the ``Retry-After`` header)."""

    status_code = 429
    message = "too many requests"

    def __init__(
        self,
        error: str = "",
        *,
        retry_after: int = 0,
        message: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(error, message=message, code=code)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class ServerError(KnmError):
    """5xx: the server failed (details are in its log, never in the answer)."""


class ServiceUnavailable(ServerError):
    """503: a dependency (the database) is unavailable for now."""

    status_code = 503
    message = "service unavailable"


class FeatureUnavailable(ServiceUnavailable):
    """A feature that is switched on but cannot work on this host; ``error`` says why and what
    to change (Ansible whose interpreter its run user cannot reach)."""

    message = "feature unavailable"
