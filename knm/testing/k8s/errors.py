"""Kubernetes ``Status`` objects and the exception that carries them.

The shapes mirror ``k8s.io/apimachinery/pkg/api/errors`` so that clients which
inspect ``reason``/``details`` (``kubectl drain``, the official Python client,
knm itself) see exactly what a real API server would send.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed request; ``status`` is the JSON ``Status`` body to send."""

    def __init__(self, status: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers = headers or {}

    @property
    def code(self) -> int:
        return int(self.status["code"])


def status_failure(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    # The real server omits ``details`` entirely when there is nothing to say.
    if details is not None:
        status["details"] = details
    return status


def status_success(code: int = 200, details: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    }
    if details is not None:
        status["details"] = details
    return status


def _qualified(resource: str, group: str) -> str:
    # Error messages name core resources bare ("pods") and others with their group
    # ("poddisruptionbudgets.policy"), as apimachinery's GroupResource.String() does.
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        status_failure(
            404,
            "NotFound",
            f'{_qualified(resource, group)} "{name}" not found',
            _details(name, resource, group),
        )
    )


def path_not_found() -> ApiError:
    return ApiError(
        status_failure(404, "NotFound", "the server could not find the requested resource", {})
    )


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        status_failure(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": '
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
            _details(name, resource, group),
        )
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        status_failure(
            409,
            "AlreadyExists",
            f'{_qualified(resource, group)} "{name}" already exists',
            _details(name, resource, group),
        )
    )


def bad_request(message: str) -> ApiError:
    return ApiError(status_failure(400, "BadRequest", message))


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> ApiError:
    summary = "; ".join(f"{c['field']}: {c['message']}" for c in causes)
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [
        {
            "reason": c.get("reason", "FieldValueInvalid"),
            "message": c["message"],
            "field": c["field"],
        }
        for c in causes
    ]
    return ApiError(
        status_failure(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)
    )


def too_many_requests(message: str, causes: list[dict[str, str]]) -> ApiError:
    # retryAfterSeconds is 0 for disruption-budget refusals, and the server then
    # omits both the details field and the Retry-After header.
    return ApiError(status_failure(429, "TooManyRequests", message, {"causes": causes}))


def internal_error(message: str) -> ApiError:
    return ApiError(
        status_failure(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            {"causes": [{"message": message}]},
        )
    )


def unauthorized() -> ApiError:
    return ApiError(status_failure(401, "Unauthorized", "Unauthorized"))


def method_not_allowed() -> ApiError:
    return ApiError(
        status_failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            {},
        )
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        status_failure(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json-patch+json, application/merge-patch+json, "
            f"application/strategic-merge-patch+json (got {content_type!r})",
        )
    )
