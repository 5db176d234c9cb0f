"""``knm audit list``: who did what to which target, newest first (admin). The filters are the
API's: ``--user``, ``--action`` (a family: ``user`` matches ``user.create``), ``--target``, and
days from ``--since`` to ``--until`` (both included, UTC)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING, Any

from knm.cli.remote import render
from knm.cli.remote.session import OK, command, output_parent

if TYPE_CHECKING:
    from knm.client.sync import Client

# The table already shows every field an entry has: ``-o wide`` adds nothing.
ENTRY = render.Kind(
    "audit",
    "id",
    ("id", "at", "username", "role", "action", "target", "outcome", "client", "detail"),
)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


@command
def list_entries(args: argparse.Namespace, client: Client) -> int:
    found = client.audit(
        user=args.user,
        action=args.action,
        target=args.target,
        start_date=args.since,
        end_date=args.until,
        page=args.page,
        page_size=args.page_size,
    )
    document = {"total": found.total, "entries": found.items}
    render.print_list(args, ENTRY, found.items, document, found.total)
    return OK


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    p = nouns["audit"].add_parser(
        "list", parents=[parent, output_parent()], help="the audit log, newest first"
    )
    p.add_argument("--user", help="the user's name")
    p.add_argument("--action", help="an action (user.create) or a family (user)")
    p.add_argument("--target", help="the target, exactly (a name, an id)")
    p.add_argument("--since", "--start-date", type=_day, metavar="DAY", help="from this day")
    p.add_argument("--until", "--end-date", type=_day, metavar="DAY", help="to this day")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_entries)
