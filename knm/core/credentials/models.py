"""What the credentials API takes and gives, and the decrypted credential executors use."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

AuthType = Literal["password", "private_key"]

#: A private key in OpenSSH or PEM format is a few KiB; 64 KiB leaves room for any of them.
MAX_KEY = 64 * 1024
Name = Annotated[str, msgspec.Meta(max_length=128)]
Description = Annotated[str, msgspec.Meta(max_length=1024)]
Username = Annotated[str, msgspec.Meta(max_length=256)]
Secret = Annotated[str, msgspec.Meta(max_length=4096, description="write-only: never returned")]
PrivateKey = Annotated[
    str,
    msgspec.Meta(max_length=MAX_KEY, description="OpenSSH or PEM; write-only: never returned"),
]
DEFAULT_PORT = 22
#: Roles a credential may be limited to (viewers cannot start tasks).
UseRole = Literal["operator", "admin"]
UserName = Annotated[str, msgspec.Meta(max_length=256)]
ClusterName = Annotated[str, msgspec.Meta(max_length=256)]
RoleList = Annotated[list[UseRole], msgspec.Meta(max_length=2)]
UserList = Annotated[list[UserName], msgspec.Meta(max_length=1000)]
ClusterList = Annotated[list[ClusterName], msgspec.Meta(max_length=1000)]


class CredentialCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    username: Username
    auth_type: AuthType
    description: Description = ""
    password: Secret | None = None
    private_key: PrivateKey | None = None
    passphrase: Secret | None = None
    port: int = DEFAULT_PORT
    #: Who may use it: null for both (the default) is every operator and admin; else admins
    #: and the listed roles and users (``knm.core.credentials.use``).
    allowed_roles: RoleList | None = None
    allowed_users: UserList | None = None
    #: Where it may be used: null (the default) is every cluster.
    allowed_clusters: ClusterList | None = None


class CredentialUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A partial update: absent fields keep their value; a secret sent as null or "" is removed."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    username: Username | msgspec.UnsetType = msgspec.UNSET
    auth_type: AuthType | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    password: Secret | msgspec.UnsetType | None = msgspec.UNSET
    private_key: PrivateKey | msgspec.UnsetType | None = msgspec.UNSET
    passphrase: Secret | msgspec.UnsetType | None = msgspec.UNSET
    port: int | msgspec.UnsetType = msgspec.UNSET
    #: null lifts the limit.
    allowed_roles: RoleList | msgspec.UnsetType | None = msgspec.UNSET
    allowed_users: UserList | msgspec.UnsetType | None = msgspec.UNSET
    allowed_clusters: ClusterList | msgspec.UnsetType | None = msgspec.UNSET


class Credential(msgspec.Struct, kw_only=True):
    """A credential as the API shows it: which secrets it holds, never the secrets."""

    id: int
    name: str
    description: str
    username: str
    auth_type: AuthType
    port: int
    has_password: bool
    has_private_key: bool
    has_passphrase: bool
    allowed_roles: list[str] | None
    allowed_users: list[str] | None
    allowed_clusters: list[str] | None
    created_at: datetime
    updated_at: datetime


class CredentialList(msgspec.Struct):
    total: int
    credentials: list[Credential]


class Secrets(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The sealed part of a row, encrypted as one JSON document."""

    password: str = ""
    private_key: str = ""
    passphrase: str = ""

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"

    def __rich_repr__(self) -> Iterator[Any]:
        yield "hidden", True


_SECRET_FIELDS = ("password", "private_key", "passphrase")


class DecryptedCredential(msgspec.Struct, kw_only=True, frozen=True):
    """A credential with its secrets, for an executor to log in with.

    Its repr (and rich's) never shows a secret, so it is safe in a log line or a traceback;
    ``secret_values()`` lists them for masking in task output.
    """

    id: int
    name: str
    username: str
    auth_type: str
    port: int
    password: str | None = None
    private_key: str | None = None
    passphrase: str | None = None
    allowed_roles: list[str] | None = None
    allowed_users: list[str] | None = None
    allowed_clusters: list[str] | None = None

    def secret_values(self) -> list[str]:
        return [v for v in (self.password, self.private_key, self.passphrase) if v]

    def _shown(self) -> Iterator[tuple[str, Any]]:
        yield "id", self.id
        yield "name", self.name
        yield "username", self.username
        yield "auth_type", self.auth_type
        yield "port", self.port
        for field in _SECRET_FIELDS:
            yield f"has_{field}", bool(getattr(self, field))

    def __repr__(self) -> str:
        return "DecryptedCredential(" + ", ".join(f"{k}={v!r}" for k, v in self._shown()) + ")"

    def __str__(self) -> str:
        return repr(self)

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield from self._shown()
