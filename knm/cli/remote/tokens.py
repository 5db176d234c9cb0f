"""``knm token list|create|revoke``: API tokens for scripts and CI (your own; admins see and
revoke everyone's). ``create`` prints the token once, alone on stdout, so that
``TOKEN=$(knm token create ci)`` captures it; the server never shows it again."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from knm.cli.remote import render
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    done,
    emit_json,
    output_parent,
    reference,
)
from knm.cli.remote.users import ROLES
from knm.client import NotFound
from knm.client.models import ApiToken

if TYPE_CHECKING:
    from knm.client.sync import Client

# Names are not unique (they outlive revocations): ``-o name`` gives ids.
TOKEN = render.Kind(
    "token",
    "id",
    ("id", "name", "role", "user_id", "prefix", "expires_at", "last_used_at", "revoked_at"),
    wide=("created_at",),
)


def _all_tokens(client: Client) -> list[ApiToken]:
    found, page = [], 1
    while True:
        batch = client.tokens(page=page, page_size=100)
        found.extend(batch.items)
        if page * 100 >= batch.total:
            return found
        page += 1


def resolve_token(client: Client, ref: str) -> int:
    """The id of a token given by id or by name (a live one first: names outlive revocations)."""
    if ref.isdigit():
        return int(ref)
    named = [t for t in _all_tokens(client) if t.name == ref]
    live = [t for t in named if t.revoked_at is None] or named
    if not live:
        raise NotFound(f"API token {ref!r} not found")
    if len(live) > 1:
        ids = ", ".join(str(t.id) for t in live)
        raise UsageError(f"several tokens are named {ref!r} (ids {ids}): give the id")
    return live[0].id


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@command
def list_tokens(args: argparse.Namespace, client: Client) -> int:
    render.print_page(
        args, TOKEN, client.tokens(page=args.page, page_size=args.page_size), "tokens"
    )
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    expires_at = args.expires_at
    if args.expires_in is not None:
        if args.expires_in <= 0:
            raise UsageError("--expires-in must be at least 1 day")
        expires_at = datetime.now(UTC) + timedelta(days=args.expires_in)
    new = client.create_token(args.name, role=args.role, expires_at=expires_at)
    if args.json:
        emit_json(new)
        return OK
    until = f", expires {render.cell(new.expires_at)} UTC" if new.expires_at else ""
    print(
        f"created API token {new.id} ({new.name}, {new.role}{until}); it is shown only this once:",
        file=sys.stderr,
    )
    print(new.token)
    return OK


@command
def revoke(args: argparse.Namespace, client: Client) -> int:
    token_id = resolve_token(client, args.token)
    client.revoke_token(token_id)
    return done(args, {"revoked": token_id}, f"revoked API token {token_id}")


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["token"]
    p = sub.add_parser(
        "list", parents=[parent, output_parent()], help="your API tokens (admins: everyone's)"
    )
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_tokens)

    p = sub.add_parser("create", parents=[parent], help="create an API token (shown once)")
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, help="at most yours (default: yours)")
    expiry = p.add_mutually_exclusive_group()
    expiry.add_argument("--expires-at", type=_timestamp, help="ISO date or time (UTC if bare)")
    expiry.add_argument("--expires-in", type=int, metavar="DAYS", help="days from now")
    p.set_defaults(func=create)

    p = sub.add_parser("revoke", parents=[parent], help="revoke an API token")
    p.add_argument("token", type=reference("token"), help="id or name")
    p.set_defaults(func=revoke)
