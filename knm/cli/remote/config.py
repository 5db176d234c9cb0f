"""``knm config get-contexts|current-context|use-context|set-context|delete-context|
rename-context``: the contexts ``knm login`` fills, edited as kubectl edits its own.

They read and write only the contexts file (no server is asked). No output of theirs ever
shows a token: a context is printed as its name, server and user, and whether it holds a login.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from typing import Any

from knm.cli.remote import contexts, render
from knm.cli.remote.session import OK, USAGE, UsageError, done, emit_json, error, split_url

Handler = Callable[[argparse.Namespace, contexts.Contexts], int]


def edits(fn: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a config command: give it the contexts, and turn its errors into messages."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args, contexts.load())
        except UsageError as exc:
            error(str(exc))
            return USAGE
        except OSError as exc:
            # The contexts file cannot be written (a read-only config dir, a full disk).
            error(f"{exc.filename or contexts.path()}: {exc.strerror}")
            return USAGE

    return run


def existing(saved: contexts.Contexts, name: str) -> contexts.Context:
    if name not in saved.contexts:
        raise UsageError(saved.unknown(name))
    return saved.contexts[name]


def overridden_note(saved: contexts.Contexts) -> None:
    # Said on stderr, so scripts reading stdout get the file's answer alone.
    named = os.environ.get("KNM_CONTEXT")
    if named and named != saved.current_context:
        error(f"KNM_CONTEXT={named} overrides the current context for remote commands")


@edits
def get_contexts(args: argparse.Namespace, saved: contexts.Contexts) -> int:
    rows = [
        {
            "current": name == saved.current_context,
            "name": name,
            "server": context.server,
            "user": context.user,
            "logged_in": bool(context.token),
            "expires_at": context.expires_at,
        }
        for name, context in sorted(saved.contexts.items())
    ]
    if args.json:
        emit_json({"current_context": saved.current_context or None, "contexts": rows})
        return OK
    if not rows:
        error("no contexts yet: log in with `knm login URL --user NAME`")
        return OK
    marked = [{**row, "current": "*" if row["current"] else ""} for row in rows]
    render.print_table(marked, ["current", "name", "server", "user"])
    return OK


@edits
def current_context(args: argparse.Namespace, saved: contexts.Contexts) -> int:
    if not saved.current_context:
        raise UsageError("no current context: pick one with `knm config use-context NAME`")
    if args.json:
        emit_json({"current_context": saved.current_context})
    else:
        print(saved.current_context)
    overridden_note(saved)
    return OK


@edits
def use_context(args: argparse.Namespace, saved: contexts.Contexts) -> int:
    context = existing(saved, args.name)
    saved.current_context = args.name
    contexts.save(saved)
    if args.json:
        emit_json({"current_context": args.name})
    else:
        who = f"{context.user} at " if context.user else ""
        print(f"switched to context {args.name} ({who}{context.server})")
    overridden_note(saved)
    return OK


@edits
def set_context(args: argparse.Namespace, saved: contexts.Contexts) -> int:
    if not args.name.strip():
        raise UsageError("a context needs a name")
    if args.server is not None:
        split_url(args.server)
    context = saved.contexts.get(args.name)
    if context is None:
        if args.server is None:
            raise UsageError(f"a new context needs its server: --server URL (context {args.name})")
        context = contexts.Context(server=args.server, user=args.user or "")
        saved.contexts[args.name] = context
        verb = "created"
    else:
        verb = "changed"
        server = context.server if args.server is None else args.server
        user = context.user if args.user is None else args.user
        if not contexts.same_server(server, context.server) or user != context.user:
            # The token was issued by the old server to the old user: it is not this login's.
            context.token, context.expires_at = "", None
        context.server, context.user = server, user
    contexts.save(saved)
    document = {"context": args.name, "server": context.server, "user": context.user,
                "logged_in": bool(context.token)}  # fmt: skip
    login = "" if context.token else f"; log in with `knm login --context {args.name}`"
    return done(args, document, f"{verb} context {args.name} ({context.server}){login}")


@edits
def delete_context(args: argparse.Namespace, saved: contexts.Contexts) -> int:
    existing(saved, args.name)
    del saved.contexts[args.name]
    was_current = saved.current_context == args.name
    if was_current:
        saved.current_context = ""
    contexts.save(saved)
    if args.json:
        emit_json({"deleted": args.name, "was_current": was_current})
    else:
        print(f"deleted context {args.name}")
        if was_current:
            error("it was the current context: pick another with `knm config use-context NAME`")
    return OK


@edits
def rename_context(args: argparse.Namespace, saved: contexts.Contexts) -> int:
    existing(saved, args.old)
    if not args.new.strip():
        raise UsageError("a context needs a name")
    if args.new in saved.contexts:
        raise UsageError(f"there is already a context {args.new!r}: delete or rename it first")
    # Rebuilt rather than popped and added, so the context keeps its place in the file.
    saved.contexts = {
        (args.new if name == args.old else name): value for name, value in saved.contexts.items()
    }
    if saved.current_context == args.old:
        saved.current_context = args.new
    contexts.save(saved)
    return done(
        args, {"renamed": args.old, "to": args.new}, f"renamed context {args.old} to {args.new}"
    )


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    # Not the remote commands' parent: --url and --context mean nothing to these.
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    sub = nouns["config"]

    p = sub.add_parser("get-contexts", parents=[own], help="list the contexts")
    p.set_defaults(func=get_contexts)

    p = sub.add_parser("current-context", parents=[own], help="the current context's name")
    p.set_defaults(func=current_context)

    p = sub.add_parser("use-context", parents=[own], help="make a context the current one")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=use_context)

    p = sub.add_parser(
        "set-context", parents=[own], help="create a context, or change one (does not log in)"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--server", metavar="URL", help="the server (required for a new context)")
    p.add_argument("--user", metavar="NAME", help="who `knm login` logs in as")
    p.set_defaults(func=set_context)

    p = sub.add_parser("delete-context", parents=[own], help="forget a context and its login")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=delete_context)

    p = sub.add_parser("rename-context", parents=[own], help="give a context another name")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.set_defaults(func=rename_context)
