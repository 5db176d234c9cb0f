"""Strict decoding of request bodies.

Litestar converts bodies leniently (``"60"`` becomes ``60``); the contract wants a string where
a number belongs to be a 400 naming the field. This ``before_request`` hook decodes the body
once more, strictly, against the handler's ``data`` type, before Litestar's own conversion.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar import Request

from knm.core.errors import BadRequest
from knm.wire.errors import field_message


@cache
def _decoder(annotation: Any) -> msgspec.json.Decoder[Any] | None:
    try:
        return msgspec.json.Decoder(annotation, strict=True)
    except TypeError:
        return None


def _optional(handler: Any) -> bool:
    parameter = handler.parsed_fn_signature.parameters["data"]
    return bool(parameter.is_optional or parameter.has_default)


def _body_type(handler: Any) -> Any:
    parameter = handler.parsed_fn_signature.parameters.get("data")
    return None if parameter is None else parameter.annotation


async def check_body(request: Request[Any, Any, Any]) -> None:
    annotation = _body_type(request.route_handler)
    if annotation is None:
        return
    decoder = _decoder(annotation)
    if decoder is None:
        return
    body = await request.body()
    if not body.strip():
        if _optional(request.route_handler):
            return
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(field_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
