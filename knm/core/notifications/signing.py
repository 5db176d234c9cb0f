"""Webhook signatures: HMAC-SHA256 over ``timestamp + "." + body``.

The timestamp (whole seconds since the epoch, ``X-Knm-Timestamp``) is signed with the body
so a receiver can refuse a replayed request whose timestamp is old; the signature is sent as
``X-Knm-Signature: sha256=<hex>``. docs/notifications.md shows how to verify it.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Knm-Timestamp"
SIGNATURE_HEADER = "X-Knm-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Knm-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is ``body``'s at ``timestamp`` under ``secret`` (constant time)."""
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(f"sha256={expected.hexdigest()}", signature)
