"""Webhook signatures, checked with the recipe docs/notifications.md gives receivers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from knm.core.notifications import signing

DOC = Path(__file__).parents[3] / "docs" / "notifications.md"


@pytest.fixture(scope="module")
def documented_verify() -> Callable[..., bool]:
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    return namespace["verify"]


def signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.SIGNATURE_HEADER: signing.sign(secret, timestamp, body),
    }


def test_the_documented_recipe_accepts_what_knm_signs(
    documented_verify: Callable[..., bool],
) -> None:
    body = b'{"event":"task.failed","id":"k.1"}'
    assert documented_verify("s3cret", signed("s3cret", body), body)


def test_the_documented_recipe_refuses_another_body_secret_or_an_old_timestamp(
    documented_verify: Callable[..., bool],
) -> None:
    body = b'{"event":"task.failed"}'
    headers = signed("s3cret", body)
    assert not documented_verify("s3cret", headers, body + b" ")
    assert not documented_verify("other", headers, body)
    stale = signed("s3cret", body, int(time.time()) - 3600)
    assert not documented_verify("s3cret", stale, body)


def test_the_signature_covers_the_timestamp() -> None:
    body = b"{}"
    assert signing.sign("k", 1, body) != signing.sign("k", 2, body)
    assert signing.verify("k", "1", body, signing.sign("k", 1, body))
    assert not signing.verify("k", "2", body, signing.sign("k", 1, body))
