"""``knm login`` and ``knm logout``. The password comes from a prompt or ``--password-stdin``
(never argv); only the server URL, the user and the token are stored, in the context logged
into (``knm.cli.remote.contexts``), in a file only the user can read."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from knm.cli.remote import contexts
from knm.cli.remote.session import (
    API_ERROR,
    USAGE,
    UsageError,
    chosen_context,
    describe,
    done,
    emit_json,
    error,
    split_url,
)
from knm.client import KnmError


def target(args: argparse.Namespace, saved: contexts.Contexts) -> tuple[str, str, str]:
    """``(context name, server URL, user)`` to log into.

    A server given (``URL``, ``--url``, ``KNM_URL``) goes into ``--context NAME``, else into the
    context named after its host[:port]. Without one, ``knm login`` logs into a context that has
    it again: ``--context``'s, ``KNM_CONTEXT``'s or the current one.
    """
    given = args.server or args.url or os.environ.get("KNM_URL")
    if given:
        split_url(given)  # a bad URL is refused before its name becomes a context's
        name = args.context or contexts.name_for(given)
        context = saved.contexts.get(name)
        url = given
    else:
        name, context = chosen_context(args, saved)
        if context is None:
            raise UsageError("give the server: knm login URL --user NAME")
        url = context.server
    user = args.user or (context.user if context else "")
    if not user:
        raise UsageError(f"give the user: knm login {url} --user NAME")
    return name, url, user


def login(args: argparse.Namespace) -> int:
    try:
        name, url, user = target(args, contexts.load())
        server, prefix = split_url(url)
    except UsageError as exc:
        error(str(exc))
        return USAGE
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password of {user} at {url}: ")
    else:
        error("no terminal to ask for the password: use --password-stdin")
        return USAGE
    from knm.client.sync import Client

    try:
        with Client(server, prefix=prefix) as client:
            answer = client.login(user, password)
    except KnmError as exc:
        if args.json:
            emit_json({"code": exc.code, "message": exc.message, "error": exc.error})
        error(describe(exc))
        return API_ERROR
    # Read again: the prompt may have waited while another knm changed the file.
    saved = contexts.load()
    saved.contexts[name] = contexts.Context(
        server=url, user=answer.user.username, token=answer.token, expires_at=answer.expires_at
    )
    saved.current_context = name
    path = contexts.save(saved)
    return done(
        args,
        {"context": name, "url": url, "user": answer.user, "expires_at": answer.expires_at},
        f"logged in to {url} as {answer.user.username} ({answer.user.role}); "
        f"context {name} is current, its token in {path}",
    )


def logout(args: argparse.Namespace) -> int:
    saved = contexts.load()
    try:
        name, context = chosen_context(args, saved)
    except UsageError as exc:
        error(str(exc))
        return USAGE
    removed = context is not None and bool(context.token)
    if context is not None and removed:
        # The context stays (server, user): `knm login` alone logs into it again.
        context.token, context.expires_at = "", None
        contexts.save(saved)
    left = f"logged out of {context.server} (context {name})" if context and removed else ""
    return done(args, {"logged_out": removed, "context": name or None}, left or "not logged in")


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "login",
        parents=[parent],
        help="log in to a knm server, into a context that becomes the current one",
        description="Log in and keep the token in a context, which becomes the current one: "
        "--context NAME, else the context named after URL's host[:port]. Without a URL, log "
        "into the context --context, KNM_CONTEXT or the current context names, again.",
        allow_abbrev=False,
    )
    p.add_argument(
        "server",
        nargs="?",
        metavar="URL",
        help="the server (default: --url, KNM_URL, or the context's server)",
    )
    p.add_argument("--user", "-u", help="who to log in as (default: the context's user)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=login)
    p = subparsers.add_parser(
        "logout", parents=[parent], help="forget the token of the current context (or --context)"
    )
    p.set_defaults(func=logout)
