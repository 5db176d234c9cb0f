"""Secrets at rest: AES-256-GCM under keys derived from the app secret, with key rotation.

Every ciphertext is stored beside the id of the key that sealed it (the fingerprint of the secret
it derives from), so a process can hold the current secret plus earlier ones
(``KNM_PREVIOUS_SECRET_KEYS``) and decrypt rows sealed under any of them. The associated data
names the table, the purpose and the row, so a ciphertext copied into another row or column
fails to decrypt instead of handing one credential's secret to another.

Rotating the secret, the documented procedure:

1. restart every process with ``KNM_SECRET_KEY=<new>`` and ``KNM_PREVIOUS_SECRET_KEYS=<old>``:
   each of them decrypts rows sealed under either secret, and seals new ones under the new;
2. run ``knm admin rotate-key`` (new secret from ``--new-secret-file`` or stdin): it re-seals
   every row of every column in ``ENCRYPTED_COLUMNS`` under the new key, one short transaction
   per row, so the service keeps running meanwhile;
3. drop the old secret from ``KNM_PREVIOUS_SECRET_KEYS`` and restart.

A module that stores a secret registers its column with ``register_encrypted_column`` when it is
imported, so the rotation covers it without knowing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import asyncpg
import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from knm.core import keys
from knm.core.errors import KnmError

if TYPE_CHECKING:
    from knm.core.state import Knm

#: The HKDF purpose of the keys that seal secrets at rest.
PURPOSE = "secrets-at-rest"
_NONCE_BYTES = 12


class DecryptionError(KnmError):
    """A stored secret cannot be opened: its key is not configured, or it was tampered with."""

    message = "cannot decrypt a stored secret"


class Sealed(msgspec.Struct, frozen=True):
    """One ciphertext and what it takes to open it (besides the key and the associated data)."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


def key_id_of(secret: str) -> str:
    return keys.fingerprint(secret)


class Keyring:
    """The current key, which seals, and earlier ones, which only open what they sealed."""

    def __init__(self, current: str, previous: Sequence[str] = ()) -> None:
        if not current:
            raise ValueError("the current secret is empty")
        self.current_id = key_id_of(current)
        self._ciphers: dict[str, AESGCM] = {}
        for secret in (current, *previous):
            if secret:
                self._ciphers.setdefault(
                    key_id_of(secret), AESGCM(keys.derive_key(secret, PURPOSE))
                )

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def __repr__(self) -> str:
        return f"Keyring(current={self.current_id!r}, keys={len(self._ciphers)})"

    def encrypt(self, plaintext: str, aad: bytes) -> Sealed:
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._ciphers[self.current_id].encrypt(nonce, plaintext.encode(), aad)
        return Sealed(key_id=self.current_id, nonce=nonce, ciphertext=ciphertext)

    def decrypt(self, sealed: Sealed, aad: bytes) -> str:
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise DecryptionError(
                f"a stored secret was encrypted with key {sealed.key_id}, which this process does "
                f"not have (it has {', '.join(self._ciphers)}); add the old secret that key "
                "derives from to KNM_PREVIOUS_SECRET_KEYS (then `knm admin rotate-key` "
                "re-encrypts it under the current key)"
            )
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext, aad).decode()
        except InvalidTag:
            raise DecryptionError(
                f"a stored secret (key {sealed.key_id}) failed authentication: it was altered "
                "or copied from another row"
            ) from None


def keyring_of(knm: Knm) -> Keyring:
    """The keyring of a running ``Knm``, built once from its secret and the previous ones."""
    previous = tuple(knm.config.previous_secret_keys)
    source = (knm._secret, previous)
    cached = knm.__dict__.get("_keyring")
    if cached is None or cached[0] != source:
        cached = (source, Keyring(knm._secret, previous))
        knm.__dict__["_keyring"] = cached
    return cached[1]


# --- the registry of encrypted columns ---------------------------------------------------------


class EncryptedColumn(msgspec.Struct, frozen=True):
    """A sealed value per row: ``key_id``/``nonce``/``ciphertext`` columns of ``table``.

    ``purpose`` names what is sealed; with the table and the row's id it forms the associated
    data, so the value opens only in the row and column it was written for. Rows whose
    ciphertext is NULL hold no secret and are skipped.
    """

    table: str
    purpose: str
    id_column: str = "id"
    key_id_column: str = "key_id"
    nonce_column: str = "nonce"
    ciphertext_column: str = "ciphertext"

    def aad(self, row_id: object) -> bytes:
        return f"knm:{self.table}:{self.purpose}:{row_id}".encode()

    def seal(self, keyring: Keyring, plaintext: str, row_id: object) -> Sealed:
        return keyring.encrypt(plaintext, self.aad(row_id))

    def open(self, keyring: Keyring, sealed: Sealed, row_id: object) -> str:
        from knm.core.counters import decrypted

        decrypted(f"{self.table}:{self.purpose}:{row_id}")
        return keyring.decrypt(sealed, self.aad(row_id))


#: Every column holding sealed secrets; ``knm admin rotate-key`` re-seals all of them.
ENCRYPTED_COLUMNS: list[EncryptedColumn] = []


def register_encrypted_column(column: EncryptedColumn) -> EncryptedColumn:
    if column not in ENCRYPTED_COLUMNS:
        ENCRYPTED_COLUMNS.append(column)
    return column


class RotationReport(msgspec.Struct):
    rotated: int = 0
    already_current: int = 0
    #: ``table id: reason`` for each row that could not be re-sealed.
    failed: list[str] = msgspec.field(default_factory=list)


async def rotate(
    pool: asyncpg.Pool,
    keyring: Keyring,
    columns: Sequence[EncryptedColumn] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RotationReport:
    """Re-seal every registered secret under ``keyring``'s current key, one row per transaction.

    Rows that cannot be opened are reported, not fatal: the others are still rotated, and a
    second run after adding the missing secret finishes the job.
    """
    report = RotationReport()
    for column in ENCRYPTED_COLUMNS if columns is None else columns:
        if not await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", column.table):
            continue
        t, i, k, n, c = (
            _ident(column.table),
            _ident(column.id_column),
            _ident(column.key_id_column),
            _ident(column.nonce_column),
            _ident(column.ciphertext_column),
        )
        report.already_current += await pool.fetchval(
            f"SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {k} = $1", keyring.current_id
        )
        ids = [
            r[0]
            for r in await pool.fetch(
                f"SELECT {i} FROM {t} WHERE {c} IS NOT NULL AND {k} IS DISTINCT FROM $1 "
                f"ORDER BY {i}",
                keyring.current_id,
            )
        ]
        for row_id in ids:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    f"SELECT {k}, {n}, {c} FROM {t} WHERE {i} = $1 FOR UPDATE", row_id
                )
                if row is None or row[2] is None or row[0] == keyring.current_id:
                    continue
                try:
                    plaintext = column.open(keyring, Sealed(row[0], row[1], row[2]), row_id)
                except DecryptionError as exc:
                    report.failed.append(f"{column.table} {row_id}: {exc.error}")
                    continue
                sealed = column.seal(keyring, plaintext, row_id)
                await conn.execute(
                    f"UPDATE {t} SET {k} = $2, {n} = $3, {c} = $4 WHERE {i} = $1",
                    row_id,
                    sealed.key_id,
                    sealed.nonce,
                    sealed.ciphertext,
                )
                report.rotated += 1
            if progress is not None:
                progress(f"{column.table} {row_id}: re-encrypted")
    return report


def _ident(name: str) -> str:
    # Names come from code, never from requests; quoting still keeps odd ones from breaking SQL.
    return '"' + name.replace('"', '""') + '"'
