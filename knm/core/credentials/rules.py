"""Value rules of a credential (each broken one is a 422), checked on the state a request leads to.

Messages name fields, never their values: a rejected secret must not come back in an error.
"""

from __future__ import annotations

import asyncio
import re

import asyncssh

from knm.core.errors import Invalid

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_line(field: str, value: str) -> None:
    """A one-line label: not blank, no control characters, no surrounding whitespace."""
    if not value.strip():
        raise Invalid(f"{field} must not be blank")
    if _CONTROL.search(value):
        raise Invalid(f"{field} must not contain control characters")
    if value != value.strip():
        raise Invalid(f"{field} must not start or end with whitespace")


def check_free_text(field: str, value: str) -> None:
    # PostgreSQL text cannot hold NUL; everything else is the user's business.
    if "\x00" in value:
        raise Invalid(f"{field} must not contain NUL characters")


def check_limits(limits: dict[str, list[str] | None]) -> dict[str, list[str] | None]:
    """Who may use a credential and where, as stored: each name a valid line, each once.
    ``allowed_clusters`` may not be empty (a credential no cluster may use is deleted, not
    limited); empty ``allowed_roles``/``allowed_users`` mean only admins."""
    cleaned: dict[str, list[str] | None] = {}
    for field, names in limits.items():
        if names is None:
            cleaned[field] = None
            continue
        for name in names:
            check_line(f"{field} entries", name)
        if field == "allowed_clusters" and not names:
            raise Invalid("allowed_clusters must name at least one cluster, or be null for any")
        cleaned[field] = list(dict.fromkeys(names))
    return cleaned


def check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise Invalid("port must be between 1 and 65535")


def check_secrets(
    auth_type: str, has_password: bool, has_private_key: bool, has_passphrase: bool
) -> None:
    """The secrets a credential ends up with (sent now or kept from before) fit its auth_type."""
    if auth_type == "password" and not has_password:
        raise Invalid("auth_type password needs a password")
    if auth_type == "private_key" and not has_private_key:
        raise Invalid("auth_type private_key needs a private_key")
    if has_passphrase and not has_private_key:
        raise Invalid("a passphrase is only meaningful with a private_key")


def _parse(private_key: str, passphrase: str) -> None:
    try:
        asyncssh.import_private_key(private_key, passphrase or None)
    except asyncssh.KeyEncryptionError as exc:
        if "bcrypt" in str(exc):
            raise Invalid(
                "private_key is a passphrase-protected OpenSSH key, which this server cannot "
                "open (the bcrypt package is missing); install it, or send the key in PEM format"
            ) from None
        raise Invalid("the passphrase does not decrypt private_key") from None
    except asyncssh.KeyImportError as exc:
        text = str(exc)
        if "Passphrase must be specified" in text:
            raise Invalid("private_key is encrypted: send its passphrase too") from None
        if "decrypt" in text.lower() or "passphrase" in text.lower():
            raise Invalid("the passphrase does not decrypt private_key") from None
        raise Invalid(
            "private_key is not a private key asyncssh can read (OpenSSH or PEM format)"
        ) from None
    except (ValueError, TypeError, UnicodeError):
        raise Invalid(
            "private_key is not a private key asyncssh can read (OpenSSH or PEM format)"
        ) from None


async def check_private_key(private_key: str, passphrase: str) -> None:
    """422 unless ``private_key`` parses (and opens with ``passphrase`` when it is encrypted)."""
    # Parsing an encrypted key runs a deliberately slow KDF; keep it off the event loop.
    await asyncio.to_thread(_parse, private_key, passphrase)
