"""``knm window list|show|create|edit|delete|resumes|cancel-resume``: maintenance windows (a
cron expression read in a time zone opens one for a while; disruptive rolls on the clusters
that require it run only then), and the automatic resumes of rolls a window's end stopped.

The options name the API's fields (``--cron``, ``--timezone``, ``--duration``, ``--cluster``),
so an error about ``duration`` is about ``--duration``. ``--duration`` takes seconds or a
length such as ``3h``, ``90m`` or ``1h30m``."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

import msgspec

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    delete_asked,
    done,
    id_by_name,
    output_parent,
    reference,
)

if TYPE_CHECKING:
    from knm.client.sync import Client

WINDOW = render.Kind(
    "window",
    "id",
    ("id", "name", "cron", "timezone", "duration", "enabled", "clusters"),
    wide=("description", "created_at", "updated_at"),
)
RESUME = render.Kind(
    "resume",
    "task_id",
    ("task_id", "windows", "due_at", "state", "resume_task_id"),
    wide=("error", "cancelled_by", "created_at", "updated_at"),
)
RESUME_STATES = ("pending", "started", "cancelled", "failed")
_LENGTH = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (86_400, 3600, 60, 1)


def duration(text: str) -> int:
    """Seconds from ``3600``, ``3h``, ``90m`` or ``1d2h30m15s`` (argparse's ``type``)."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = _LENGTH.fullmatch(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: seconds, or a length such as 3h, 90m or 1h30m"
        )
    return sum(int(part) * unit for part, unit in zip(match.groups(), _UNITS, strict=True) if part)


def resolve_window(client: Client, ref: str) -> int:
    """A window's id from its id or name."""
    return id_by_name(ref, client.windows, "Maintenance window")


@command
def list_windows(args: argparse.Namespace, client: Client) -> int:
    render.print_page(
        args, WINDOW, client.windows(page=args.page, page_size=args.page_size), "windows"
    )
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    window = client.window(resolve_window(client, args.window))

    def view(wide: bool) -> None:
        fields = msgspec.structs.asdict(window)
        upcoming = fields.pop("next_openings")
        current = fields.pop("current")
        fields["open_until"] = current.end if current is not None else None
        render.print_fields(fields)
        if upcoming:
            render.print_table(upcoming, ["start", "end"])
        elif not window.enabled:
            print("disabled: it does not open until enabled")

    render.print_object(args, WINDOW, window, view)
    return OK


def _said(args: argparse.Namespace, window: Any, what: str) -> int:
    return done(args, window, f"{what} window {window.id} ({window.name})")


@command
def create(args: argparse.Namespace, client: Client) -> int:
    window = client.create_window(
        args.name,
        args.cron,
        args.duration,
        timezone=args.timezone,
        enabled=False if args.disabled else None,
        description=args.description,
        clusters=args.cluster,
    )
    return _said(args, window, "created")


@command
def edit(args: argparse.Namespace, client: Client) -> int:
    fields: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("name", "cron", "timezone", "duration", "enabled", "description")
        if getattr(args, name) is not None
    }
    if args.no_clusters and args.cluster is not None:
        raise UsageError("give either --cluster or --no-clusters")
    if args.no_clusters:
        fields["clusters"] = []
    elif args.cluster is not None:
        fields["clusters"] = args.cluster
    if not fields:
        raise UsageError("nothing to change: give an option to set (see --help)")
    window_id = resolve_window(client, args.window)
    return _said(args, client.update_window(window_id, **fields), "changed")


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    window_id = resolve_window(client, args.window)
    return delete_asked(
        args, "window", args.window, window_id, lambda: client.delete_window(window_id)
    )


@command
def resumes(args: argparse.Namespace, client: Client) -> int:
    found = client.window_resumes(state=args.state, page=args.page, page_size=args.page_size)
    render.print_page(args, RESUME, found, "resumes")
    return OK


@command
def cancel_resume(args: argparse.Namespace, client: Client) -> int:
    resume = client.cancel_window_resume(args.task)
    return done(args, resume, f"cancelled the automatic resume of {resume.task_id}")


def _timing(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument(
        "--cron", required=creating, help="five fields: when it opens ('0 2 * * 0': Sundays 02:00)"
    )
    p.add_argument(
        "--timezone",
        default="UTC" if creating else None,
        help="IANA time zone --cron is read in (Europe/Berlin)" + (" (default: UTC)" * creating),
    )
    p.add_argument(
        "--duration",
        type=duration,
        required=creating,
        help="how long each opening lasts: seconds, or 3h, 90m, 1h30m (at most 31 days)",
    )
    live(
        p.add_argument(
            "--cluster",
            action="append",
            metavar="CLUSTER",
            help="a cluster that requires the window (repeat for more"
            + ("" if creating else "; replaces the list")
            + ")",
        ),
        "cluster",
    )
    p.add_argument("--description")


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["window"]
    listing = [parent, output_parent()]

    def one(p: argparse.ArgumentParser) -> None:
        live(p.add_argument("window", type=reference("window"), help="id or name"), "window")

    def pages(p: argparse.ArgumentParser) -> None:
        p.add_argument("--page", type=int, default=1)
        p.add_argument("--page-size", type=int, default=20)

    p = sub.add_parser("list", parents=listing, help="list maintenance windows")
    pages(p)
    p.set_defaults(func=list_windows)
    p = sub.add_parser(
        "show", parents=listing, help="one window: open now or not, and its next openings"
    )
    one(p)
    p.set_defaults(func=show)
    p = sub.add_parser(
        "create",
        parents=[parent],
        usage="%(prog)s NAME --cron EXPR --duration LENGTH [--timezone TZ] [--cluster C ...] "
        "[options]",
        help="a window opening at cron times for a while (admin)",
    )
    p.add_argument("name")
    _timing(p, creating=True)
    p.add_argument("--disabled", action="store_true", help="create it closed (a change freeze)")
    p.set_defaults(func=create)
    p = sub.add_parser("edit", parents=[parent], help="change a window's fields (admin)")
    one(p)
    p.add_argument("--name", help="a new name")
    _timing(p, creating=False)
    p.add_argument(
        "--no-clusters", action="store_true", help="no cluster requires the window any more"
    )
    switch = p.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
    switch.add_argument(
        "--disable", dest="enabled", action="store_const", const=False,
        help="it does not open until enabled (a change freeze)",
    )  # fmt: skip
    p.set_defaults(func=edit)
    p = sub.add_parser(
        "delete", parents=[parent], help="delete a window (refused while a cluster requires it)"
    )
    one(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=delete)
    p = sub.add_parser(
        "resumes",
        parents=listing,
        help="rolls stopped at a window's end and their automatic resumes",
    )
    p.add_argument("--state", choices=RESUME_STATES, help="only resumes in this state")
    pages(p)
    p.set_defaults(func=resumes)
    p = sub.add_parser(
        "cancel-resume",
        parents=[parent],
        help="do not resume a stopped roll at the window's next opening (operator)",
    )
    # ``resume/TASK``, as ``knm window resumes -o name`` prints it, or the bare task id.
    task = p.add_argument("task", type=reference("resume"), help="the stopped roll's task id")
    live(task, "task")
    p.set_defaults(func=cancel_resume)
