"""One error hierarchy: the classes the server raises are the ones the SDK raises."""

from __future__ import annotations

from knm.client import errors as client_errors
from knm.core import errors as server_errors
from knm.wire import errors as wire_errors


def test_the_sdk_and_the_server_share_their_error_classes() -> None:
    for name in ("KnmError", "BadRequest", "NotFound", "Conflict", "Invalid", "RateLimited"):
        assert getattr(client_errors, name) is getattr(server_errors, name)
        assert getattr(server_errors, name) is getattr(wire_errors, name)
    assert client_errors.ValidationFailed is server_errors.Invalid


def test_an_error_envelope_becomes_the_class_of_its_status() -> None:
    error = client_errors.error_for(422, "command validation failed", "dangerous command")
    assert isinstance(error, server_errors.Invalid)
    assert (error.code, error.message, error.error) == (
        422,
        "command validation failed",
        "dangerous command",
    )
    limited = client_errors.error_for(429, "too many requests", "slow down", "7")
    assert isinstance(limited, server_errors.RateLimited) and limited.retry_after == 7
    off = client_errors.error_for(403, "feature disabled", "ssh is off")
    assert isinstance(off, server_errors.FeatureDisabled)
    down = client_errors.error_for(502, "bad gateway", "")
    assert isinstance(down, server_errors.ServerError) and down.code == 502


def test_a_raised_error_carries_its_status_and_default_message() -> None:
    error = server_errors.NotFound("Playbook ID 999 not found")
    assert (error.code, error.message, str(error)) == (
        404,
        "not found",
        "Playbook ID 999 not found",
    )
    assert client_errors.TransportError("refused").code == 0
