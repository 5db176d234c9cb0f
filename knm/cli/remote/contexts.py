"""The contexts file: the servers and logins ``knm`` knows, by name, and the current one.

``<user config dir>/knm/credentials.json`` holds one context per name (a server URL, the user
logged in there, their token and its expiry) and the name of the current context. It holds
tokens, so it is only ever written 0600, through a private temporary file renamed over it.

A file written before contexts existed (one login: ``url``, ``token``, ``username``,
``expires_at``) reads as one context named after its server's host[:port], current; the next
change writes it in the new format.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import msgspec


class Context(msgspec.Struct, kw_only=True):
    """A server, and the user logged in there (no token: logged out, or never logged in)."""

    server: str
    user: str = ""
    token: str = ""
    expires_at: datetime | None = None


class Contexts(msgspec.Struct, kw_only=True):
    """The whole file. ``contexts`` has no default so that a file of the old format, which
    lacks it, fails to decode as this one and is read as that instead."""

    contexts: dict[str, Context]
    current_context: str = ""

    def unknown(self, name: str) -> str:
        """Why ``name`` cannot be used, in the user's words, with the names that can."""
        if not self.contexts:
            return f"no context {name!r}, and none at all yet: log in with `knm login URL`"
        return f"no context {name!r}; the contexts are: {', '.join(sorted(self.contexts))}"


class _SingleLogin(msgspec.Struct, kw_only=True):
    """The file as ``knm login`` wrote it before contexts."""

    url: str
    token: str
    username: str = ""
    expires_at: datetime | None = None


def path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("knm")) / "credentials.json"


def name_for(url: str) -> str:
    """The default name of a server's context: its host[:port] (``knm.example.com``,
    ``127.0.0.1:8080``), as kubectl users expect to see a cluster named."""
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[2].lower() or url


def same_server(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def load() -> Contexts:
    """What the file holds; no contexts when there is no file or it cannot be read."""
    try:
        raw = path().read_bytes()
    except OSError:
        return Contexts(contexts={})
    try:
        return msgspec.json.decode(raw, type=Contexts)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        old = msgspec.json.decode(raw, type=_SingleLogin)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Contexts(contexts={})
    name = name_for(old.url)
    context = Context(server=old.url, user=old.username, token=old.token,
                      expires_at=old.expires_at)  # fmt: skip
    return Contexts(contexts={name: context}, current_context=name)


def save(contexts: Contexts) -> Path:
    """Write the file atomically: readers see the old file or the new one, never half of one,
    and concurrent ``knm`` processes never share a temporary file."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600, so the tokens are never readable by others, not briefly.
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".credentials.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode(contexts)))
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return target
