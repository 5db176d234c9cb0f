"""One secret, many keys: HKDF derives a key per purpose; a fingerprint guards against a wrong secret.

The fingerprint is stored in the database on first start. A process started later with another
secret would sign tokens nobody accepts and fail to decrypt every stored secret, so it refuses to
start instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from knm.core.errors import KnmError

SECRET_FILE = "secret_key"


class WrongSecret(KnmError):
    message = "wrong secret key"


class Keys(msgspec.Struct, frozen=True):
    """Keys derived from the one secret, each for one purpose."""

    jwt: bytes
    fingerprint: str

    @classmethod
    def from_secret(cls, secret: str) -> Keys:
        return cls(jwt=derive_key(secret, "jwt-signing"), fingerprint=fingerprint(secret))


def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"knm", info=purpose.encode()
    ).derive(secret.encode())


def fingerprint(secret: str) -> str:
    return derive_key(secret, "fingerprint", 16).hex()


def load_or_create_secret(data_dir: Path) -> str:
    """The secret kept in the data dir (mode 0600), created on first use."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


async def check_fingerprint(
    conn: asyncpg.Connection, secret: str, previous: Sequence[str] = ()
) -> None:
    """Record the secret's fingerprint on first start; refuse a different secret later.

    During a key rotation the stored fingerprint may still be an earlier secret's: a process
    that holds that secret in ``previous`` is accepted and records its current one instead.
    """
    mine = fingerprint(secret)
    stored = await conn.fetchval(
        "INSERT INTO knm_settings (key, value) VALUES ('secret_fingerprint', to_jsonb($1::text)) "
        "ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING value #>> '{}'",
        mine,
    )
    if stored == mine:
        return
    if stored in {fingerprint(old) for old in previous if old}:
        await conn.execute(
            "UPDATE knm_settings SET value = to_jsonb($1::text), updated_at = now() "
            "WHERE key = 'secret_fingerprint' AND value #>> '{}' = $2",
            mine,
            stored,
        )
        return
    raise WrongSecret(
        "this database was set up with a different KNM_SECRET_KEY "
        f"(fingerprint {stored}, this process has {mine}); start knm with the original secret, "
        "or, when rotating it, with the old one in KNM_PREVIOUS_SECRET_KEYS"
    )
