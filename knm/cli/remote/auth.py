"""``knm login`` and ``knm logout``. The password comes from a prompt or ``--password-stdin``
(never argv); only the server URL and the token are stored, in a file only the user can read."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from knm.cli.remote.session import (
    API_ERROR,
    OK,
    USAGE,
    Stored,
    UsageError,
    describe,
    emit_json,
    error,
    forget_stored,
    save_stored,
    split_url,
)
from knm.client import KnmError


def login(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("KNM_URL")
    if not url:
        error("give the server: --url http://host:8080 (or KNM_URL)")
        return USAGE
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password of {args.user} at {url}: ")
    else:
        error("no terminal to ask for the password: use --password-stdin")
        return USAGE
    from knm.client.sync import Client

    try:
        server, prefix = split_url(url)
        with Client(server, prefix=prefix) as client:
            answer = client.login(args.user, password)
    except UsageError as exc:
        error(str(exc))
        return USAGE
    except KnmError as exc:
        if args.json:
            emit_json({"code": exc.code, "message": exc.message, "error": exc.error})
        error(describe(exc))
        return API_ERROR
    path = save_stored(
        Stored(url=url, token=answer.token, username=answer.user.username,
               expires_at=answer.expires_at)
    )  # fmt: skip
    if args.json:
        emit_json({"url": url, "user": answer.user, "expires_at": answer.expires_at})
    else:
        print(f"logged in to {url} as {answer.user.username} ({answer.user.role}); token in {path}")
    return OK


def logout(args: argparse.Namespace) -> int:
    removed = forget_stored()
    if args.json:
        emit_json({"logged_out": removed})
    else:
        print("logged out" if removed else "not logged in")
    return OK


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "login", parents=[parent], help="log in to a knm server", allow_abbrev=False
    )
    p.add_argument("--user", "-u", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=login)
    p = subparsers.add_parser("logout", parents=[parent], help="forget the stored token")
    p.set_defaults(func=logout)
