"""What the remote commands share (``knm.cli.remote.session``): errors in the user's words."""

from __future__ import annotations

import argparse

from knm.cli.remote.session import describe, in_options
from knm.client import BadRequest, TransportError


def run_args(**options: object) -> argparse.Namespace:
    return argparse.Namespace(**options)


def test_a_request_field_the_command_has_an_option_for_is_named_as_that_option() -> None:
    args = run_args(credential=None, cluster="lab", nodes=["n1"], param=None)
    text = "credential_id: required (cluster lab has no default_credential_id)"
    assert in_options(text, args) == (
        "--credential: required (cluster lab has no default_credential_id)"
    )
    assert in_options("params.grace: Expected `int`", args) == "--param (-p) grace: Expected `int`"


def test_every_part_of_a_joined_error_is_renamed_and_other_text_is_left_alone() -> None:
    args = run_args(cluster="lab", timeout=None, batch_size=None)
    text = "timeout: must be positive; batch_size: must be positive; drain takes: force"
    assert in_options(text, args) == (
        "--timeout: must be positive; --batch-size: must be positive; drain takes: force"
    )


def test_a_field_the_command_has_no_option_for_keeps_its_api_name() -> None:
    # ``knm task start -f credential_id=…`` sets fields by their API names.
    args = run_args(cluster="lab", field=["credential_id=9"])
    assert in_options("credential_id: not found", args) == "credential_id: not found"
    assert in_options("credential_id: not found", None) == "credential_id: not found"


def test_a_described_error_names_the_option_and_a_connection_error_the_server() -> None:
    args = run_args(credential=None)
    refused = BadRequest("credential_id: required", message="bad request", code=400)
    assert describe(refused, args) == "bad request: --credential: required"
    down = TransportError("no answer from http://127.0.0.1:9: [Errno 111] Connection refused")
    assert "http://127.0.0.1:9" in describe(down)
