"""The response envelope of the contract: ``{code, message, data}`` and ``{code, message, error}``.

Every answer under knm's routes, including ones Litestar produces itself (unknown route, wrong
method, a body that does not decode), goes out in this shape; ``code`` always equals the HTTP
status.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
import msgspec
from asyncpg.exceptions._base import DataError as ArgumentOutOfRange
from litestar import Request, Response
from litestar.enums import MediaType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.params import Parameter
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Receive, Scope, Send

from knm.core.errors import KnmError
from knm.wire.errors import ErrorDetail

T = TypeVar("T")
log = logging.getLogger("knm")


class Envelope(msgspec.Struct, Generic[T], omit_defaults=True):
    """A successful answer."""

    code: int
    message: str
    data: T | msgspec.UnsetType = msgspec.UNSET


class Done(msgspec.Struct):
    """A successful answer without data (a delete): ``{code, message}``."""

    code: int
    message: str


class ErrorEnvelope(msgspec.Struct):
    """A failed answer; ``error`` says what exactly went wrong, and ``details`` (content
    validation only) where each problem is."""

    code: int
    message: str
    error: str
    details: list[ErrorDetail] | msgspec.UnsetType = msgspec.UNSET


#: Query parameters every list takes: ``page`` from 1, ``page_size`` 1–100 (default 20).
PageNo = Annotated[int, Parameter(ge=1, le=1_000_000, description="page number, from 1")]
PageSize = Annotated[int, Parameter(ge=1, le=100, description="items per page, at most 100")]


def offset(page: int, page_size: int) -> int:
    return (page - 1) * page_size


def ok(data: Any = msgspec.UNSET, message: str = "ok") -> Envelope[Any]:
    return Envelope(code=200, message=message, data=data)


def created(data: Any, message: str = "created") -> Envelope[Any]:
    return Envelope(code=201, message=message, data=data)


_encoder = msgspec.json.Encoder()


def ok_bytes(data: bytes, message: str = "ok") -> bytes:
    """``ok(data)`` encoded, byte for byte as Litestar sends it, around ``data`` already
    encoded."""
    return _encoder.encode(Envelope(code=200, message=message, data=msgspec.Raw(data)))


class AnswerResponse(Response[bytes]):
    """A 200 whose envelope is already encoded (:func:`ok_bytes`), sent straight through ASGI.

    Litestar's pipeline would build a second response object, copy and encode its headers and
    run the envelope through its serializer again: a sizeable share of an answer kept in memory
    (a task's status, the API's most polled request). What goes out is the same: status 200,
    ``content-type: application/json`` and ``content-length``, in that order. When a layer adds
    anything (headers, cookies, a background task, a HEAD), Litestar's own path sends it.
    """

    def __init__(self, body: bytes) -> None:
        super().__init__(body, media_type=MediaType.JSON, status_code=200)

    def to_asgi_response(  # type: ignore[override]
        self, app: Any, request: Request[Any, Any, Any], **kwargs: Any
    ) -> Any:
        if any(kwargs.get(key) for key in _ADDED) or self.headers or self.cookies:
            return super().to_asgi_response(app, request, **kwargs)
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.content
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


#: What a layer may add to a response (``Response.to_asgi_response``'s arguments).
_ADDED = ("background", "cookies", "encoded_headers", "headers", "is_head_response")


def error_response(
    status: int,
    message: str,
    error: str,
    headers: dict[str, str] | None = None,
    details: list[ErrorDetail] | None = None,
) -> Response[Any]:
    envelope = ErrorEnvelope(code=status, message=message, error=error)
    if details:
        envelope.details = details
    return Response(
        content=envelope,
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _validation_detail(exc: ValidationException) -> str:
    extra = exc.extra
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra:
            if isinstance(item, dict):
                key = item.get("key")
                msg = item.get("message", "")
                parts.append(f"{key}: {msg}" if key else str(msg))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    detail = str(exc.detail or "invalid request")
    return detail


def handle_knm_error(_: Request[Any, Any, Any], exc: KnmError) -> Response[Any]:
    return error_response(
        exc.status_code, exc.message, exc.error or exc.message, exc.headers or None, exc.details
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return error_response(400, "invalid request", _validation_detail(exc))
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, "unauthorized", str(exc.detail))
    if isinstance(exc, PermissionDeniedException):
        return error_response(403, "forbidden", str(exc.detail))
    if status == 404:
        return error_response(404, "not found", f"no route for {request.method} {request.url.path}")
    if status == 405:
        return error_response(
            405, "method not allowed", f"{request.method} is not allowed on {request.url.path}"
        )
    if status >= 500:
        log.error(
            "http error %s on %s %s: %s", status, request.method, request.url.path, exc.detail
        )
        return error_response(status, "internal error", "internal server error")
    return error_response(
        status, str(exc.detail) or "error", str(exc.detail) or "error", exc.headers
    )


def handle_bad_text(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # PostgreSQL text cannot hold NUL characters; such input is the client's fault, not the
    # server's. In the URL (a query parameter) it is a bad parameter, 400; in a body it is a
    # well-formed value that breaks a rule, 422 — as the checks that catch it earlier say.
    if "\x00" in request.url.path or "%00" in request.url.query.lower():
        return error_response(
            400, "bad request", "query parameters must not contain NUL (\\u0000) characters"
        )
    return error_response(
        422, "validation failed", "text must not contain NUL (\\u0000) characters"
    )


def handle_too_deep(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # msgspec and anything walking the decoded value stop at Python's recursion limit: input
    # nested that deep is malformed, not a server fault.
    return error_response(400, "invalid request", "the JSON is nested too deeply")


def handle_out_of_range(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # A number or date beyond what Python's dates or PostgreSQL's types hold (class 22 errors,
    # and query arguments asyncpg cannot encode). Ids are answered 404 before this
    # (``knm.core.bounds``); whatever else gets here is input out of range.
    return error_response(400, "invalid request", "a number or date in the request is out of range")


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error", "internal server error")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    KnmError: handle_knm_error,
    asyncpg.CharacterNotInRepertoireError: handle_bad_text,
    asyncpg.UntranslatableCharacterError: handle_bad_text,
    HTTPException: handle_http_exception,
    RecursionError: handle_too_deep,
    OverflowError: handle_out_of_range,
    asyncpg.DataError: handle_out_of_range,
    ArgumentOutOfRange: handle_out_of_range,
    Exception: handle_unexpected,
}
