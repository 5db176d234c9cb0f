"""Who is calling, and what their role allows."""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[str, ...] = ("viewer", "operator", "admin")


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller: a user through a login token or an API token."""

    user_id: int
    username: str
    role: str
    #: ``jwt`` for login tokens, ``api`` for API tokens.
    via: str = "jwt"
    token_id: int | None = None
    #: Login tokens: the session (``sid``) and when its login happened (``auth_time``, Unix
    #: seconds); every JWT a refresh issues carries them on, so they bound its lifetime.
    session: str | None = None
    auth_time: int | None = None
