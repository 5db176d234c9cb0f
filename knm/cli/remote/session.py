"""Where remote commands find their server and token, and how they end.

The server and token come from ``KNM_URL``/``KNM_TOKEN`` (automation), else from what
``knm login`` stored in ``<user config dir>/knm/credentials.json`` (mode 0600; url and token,
never the password). A URL with a path (``https://host/knm``) means knm is mounted there: the
API is then under ``/knm/api/v1``.

Exit codes: 0 done (a task: every node succeeded), 1 the task failed or some node failed,
2 usage error (bad arguments, not logged in), 3 the task was cancelled, 4 an API or network
error (any error answer: 401, 403, 404, 409, 422, 429, 5xx — or no answer).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from knm.client import KnmError, RateLimited

if TYPE_CHECKING:
    from knm.client.sync import Client

OK, FAILED, USAGE, CANCELLED, API_ERROR = 0, 1, 2, 3, 4
#: A stored JWT closer than this to expiring is exchanged for a fresh one before use.
REFRESH_BEFORE = timedelta(minutes=10)


class UsageError(Exception):
    """A command used wrongly (exit code 2)."""


class Stored(msgspec.Struct, kw_only=True):
    url: str
    token: str
    username: str = ""
    expires_at: datetime | None = None


def credentials_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("knm")) / "credentials.json"


def load_stored() -> Stored | None:
    try:
        return msgspec.json.decode(credentials_path().read_bytes(), type=Stored)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def save_stored(stored: Stored) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_suffix(".tmp")
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msgspec.json.format(msgspec.json.encode(stored)))
    os.chmod(temp, 0o600)
    os.replace(temp, path)
    return path


def forget_stored() -> bool:
    try:
        credentials_path().unlink()
        return True
    except FileNotFoundError:
        return False


def split_url(url: str) -> tuple[str, str]:
    """``(server, api prefix)`` of a URL that may carry the mount path."""
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    prefix = path if path.endswith("/api/v1") else f"{path}/api/v1"
    return f"{parts.scheme}://{parts.netloc}", prefix


def client_for(args: argparse.Namespace, *, timeout: float = 30) -> Client:
    """A client for the server and token of this invocation (see the module docstring);
    ``timeout`` bounds the connection and each answer (seconds)."""
    stored = load_stored()
    url = getattr(args, "url", None) or os.environ.get("KNM_URL") or (stored and stored.url)
    if not url:
        raise UsageError("no server: run `knm login --url URL --user NAME`, or set KNM_URL")
    token = os.environ.get("KNM_TOKEN")
    refreshable = False
    if not token and stored is not None and stored.url.rstrip("/") == url.rstrip("/"):
        token = stored.token
        refreshable = True
    server, prefix = split_url(url)
    from knm.client.sync import Client

    client = Client(server, token, prefix=prefix, timeout=timeout)
    if refreshable and stored is not None and stored.expires_at is not None:
        left = stored.expires_at - datetime.now(UTC)
        if timedelta(0) < left < REFRESH_BEFORE:
            try:
                fresh = client.refresh()
                save_stored(
                    Stored(url=stored.url, token=fresh.token, username=stored.username,
                           expires_at=fresh.expires_at)
                )  # fmt: skip
            except KnmError:
                pass  # the old token still works for a while; the command says so if not
    return client


def as_sent(value: Any) -> Any:
    """``value`` with each struct's ``extra`` (the fields an executor or a cluster provider adds,
    gathered by the SDK) back beside the struct's own fields, as the API sent them."""
    if isinstance(value, msgspec.Struct):
        fields = {
            name: as_sent(getattr(value, name))
            for name in value.__struct_fields__
            if getattr(value, name) is not msgspec.UNSET
        }
        extra = fields.pop("extra", None) if "extra" in value.__struct_fields__ else None
        return {**fields, **extra} if isinstance(extra, dict) else fields
    if isinstance(value, dict):
        return {key: as_sent(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_sent(item) for item in value]
    return value


def emit_json(value: Any) -> None:
    """One JSON document on stdout, shaped as the API answered."""
    sys.stdout.write(msgspec.json.encode(msgspec.to_builtins(as_sent(value))).decode() + "\n")
    sys.stdout.flush()


def error(text: str) -> None:
    print(f"knm: {text}", file=sys.stderr)


def describe(exc: KnmError) -> str:
    text = exc.message
    if exc.error and exc.error != exc.message:
        text = f"{exc.message}: {exc.error}"
    if isinstance(exc, RateLimited) and exc.retry_after:
        text += f" (retry in {exc.retry_after} s)"
    return text


Handler = Callable[[argparse.Namespace, "Client"], int]


def command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a remote command: make its client, and turn errors into messages and exit codes."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            with client_for(args) as client:
                return fn(args, client)
        except UsageError as exc:
            error(str(exc))
            return USAGE
        except KnmError as exc:
            if getattr(args, "json", False):
                emit_json({"code": exc.code, "message": exc.message, "error": exc.error})
            error(describe(exc))
            if exc.code == 401:
                error("log in again with `knm login`")
            return API_ERROR
        except KeyboardInterrupt:
            error("interrupted")
            return 130
        except OSError as exc:
            if exc.filename is None:
                raise
            # A file named in the arguments (-f, --password-file) that cannot be read.
            error(f"{exc.filename}: {exc.strerror}")
            return USAGE

    return run


def key_values(pairs: list[str] | None, *, typed: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` arguments as a dict; ``typed`` reads JSON values (``true``, ``3``)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected KEY=VALUE, got {pair!r}")
        if typed:
            try:
                out[key] = json.loads(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


class Parser(argparse.ArgumentParser):
    """A parser that takes options only by their full names: with abbreviations, a mistyped
    ``--password SECRET`` would be taken for ``--password-file`` and the secret for a path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def common_parent() -> argparse.ArgumentParser:
    """Options every remote command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parent.add_argument("--url", default=None, help="server URL (default: KNM_URL, or the login)")
    return parent
