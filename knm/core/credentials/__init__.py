"""SSH credentials: a user name plus a password or a private key, encrypted at rest.

Routes (``ROUTES``, mounted by the core under ``/api/v1``):

- ``POST /credentials`` (admin) → 201, ``GET /credentials`` and ``GET /credentials/{id}``,
  ``PUT /credentials/{id}`` (admin, partial), ``DELETE /credentials/{id}`` (admin).
- Every role may read: operators start tasks naming a ``credential_id`` and need to see which
  exist, and nothing secret is ever shown (only ``has_password``/``has_private_key``/
  ``has_passphrase``), so viewers may list them too. Only admins change them.

Secrets are write-only. They are sealed with AES-256-GCM (``knm.core.crypto``) and never
appear in a response, a log line, an error message or the audit log. A ``PUT`` changes the
fields it carries and keeps the others; a secret sent as ``null`` or ``""`` is removed, one not
sent is kept. ``auth_type`` ``password`` needs a password and ``private_key`` a private key
that asyncssh can read (OpenSSH or PEM, opened with ``passphrase`` when encrypted), whether
sent in this request or kept from before; else 422. Names are unique regardless of case (409)
and free again once their credential is deleted. A credential used by a pending or running
task cannot be deleted (409).

Executors get the secrets through ``load_credential``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from knm.core.credentials import store
from knm.core.credentials.models import Credential, DecryptedCredential
from knm.core.credentials.routes import ROUTES
from knm.core.crypto import keyring_of

if TYPE_CHECKING:
    from knm.core.state import Knm

__all__ = ["ROUTES", "Credential", "DecryptedCredential", "load_credential"]


async def load_credential(
    knm: Knm, credential_id: int, *, conn: asyncpg.Connection | None = None
) -> DecryptedCredential:
    """The credential with its secrets decrypted; ``NotFound`` ("Credential ID N not found").

    Given ``conn`` inside a transaction (the one that writes a task naming the credential), the
    row is share-locked until it commits, so the credential cannot be deleted in between.
    """
    if conn is None:
        return await store.load(knm.pool, keyring_of(knm), credential_id)
    return await store.load(conn, keyring_of(knm), credential_id, lock=True)
