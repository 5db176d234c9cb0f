"""``knm schedule list|show|create|edit|pause|resume|delete|runs``: stored execute requests the
server starts as you at cron times (in a time zone) or every so many seconds.

The request is the body the kind's execute route takes, from a YAML or JSON file
(``--request-file``, ``-`` for stdin); the options name the API's fields (``--cron``,
``--timezone``, ``--interval-seconds``, ``--misfire-policy`` …), so an error about ``cron`` is
about ``--cron``."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from knm.cli.remote import render, yaml_input
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    delete_asked,
    emit_json,
    id_by_name,
    output_parent,
    reference,
)

if TYPE_CHECKING:
    from knm.client.sync import Client

SCHEDULE = render.Kind(
    "schedule",
    "id",
    ("id", "name", "kind", "cron", "timezone", "interval_seconds", "enabled", "next_fire_at"),
    wide=(
        *("owner_name", "misfire_policy", "max_concurrent_runs", "last_fired_at"),
        *("start_at", "end_at", "description"),
    ),
)
RUN = render.Kind(
    "run", "id", ("fire_time", "status", "task_id", "reason"), wide=("id", "created_at")
)


def resolve_schedule(client: Client, ref: str) -> int:
    """A schedule's id from its id or name."""
    return id_by_name(ref, client.schedules, "Schedule")


def _request(path: str) -> dict[str, Any]:
    parsed = yaml_input.load(yaml_input.read_text(path), path)
    if not isinstance(parsed, dict):
        raise UsageError(f"{path}: expected a mapping: the body of the kind's execute request")
    return parsed


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not an RFC 3339 time (2027-01-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        raise UsageError(f"{text!r} needs a UTC offset (2027-01-01T00:00:00Z)")
    return moment


def _said(args: argparse.Namespace, schedule: Any, what: str) -> int:
    if args.json:
        emit_json(schedule)
    else:
        print(f"{what} schedule {schedule.id} ({schedule.name})")
    return OK


@command
def list_schedules(args: argparse.Namespace, client: Client) -> int:
    render.print_page(
        args, SCHEDULE, client.schedules(page=args.page, page_size=args.page_size), "schedules"
    )
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    schedule = client.schedule(resolve_schedule(client, args.schedule))

    def view(wide: bool) -> None:
        fields = msgspec.structs.asdict(schedule)
        upcoming = fields.pop("next_fire_times")
        render.print_fields(fields)
        if upcoming:
            render.print_table([{"next_fire_time": t} for t in upcoming], ["next_fire_time"])

    render.print_object(args, SCHEDULE, schedule, view)
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    if (args.cron is None) == (args.interval_seconds is None):
        raise UsageError("give either --cron (with --timezone) or --interval-seconds")
    schedule = client.create_schedule(
        args.name,
        args.kind,
        _request(args.request_file),
        cron=args.cron,
        timezone=args.timezone,
        interval_seconds=args.interval_seconds,
        description=args.description,
        enabled=False if args.paused else None,
        misfire_policy=args.misfire_policy,
        max_concurrent_runs=args.max_concurrent_runs,
        start_at=_moment(args.start_at),
        end_at=_moment(args.end_at),
    )
    return _said(args, schedule, "created")


@command
def edit(args: argparse.Namespace, client: Client) -> int:
    if args.cron is not None and args.interval_seconds is not None:
        raise UsageError("give either --cron (with --timezone) or --interval-seconds")
    fields: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "name", "kind", "cron", "timezone", "interval_seconds", "description",
            "misfire_policy", "max_concurrent_runs",
        )
        if getattr(args, name) is not None
    }  # fmt: skip
    if args.request_file is not None:
        fields["request"] = _request(args.request_file)
    for name in ("start_at", "end_at"):
        text = getattr(args, name)
        if text is not None:
            # "none" lifts the bound.
            fields[name] = None if text.lower() == "none" else _moment(text)
    if not fields:
        raise UsageError("nothing to change: give an option to set (see --help)")
    schedule_id = resolve_schedule(client, args.schedule)
    return _said(args, client.update_schedule(schedule_id, **fields), "changed")


@command
def pause(args: argparse.Namespace, client: Client) -> int:
    schedule = client.pause_schedule(resolve_schedule(client, args.schedule))
    return _said(args, schedule, "paused")


@command
def resume(args: argparse.Namespace, client: Client) -> int:
    schedule = client.resume_schedule(resolve_schedule(client, args.schedule))
    return _said(args, schedule, "resumed")


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    schedule_id = resolve_schedule(client, args.schedule)
    return delete_asked(
        args, "schedule", args.schedule, schedule_id, lambda: client.delete_schedule(schedule_id)
    )


@command
def runs(args: argparse.Namespace, client: Client) -> int:
    schedule_id = resolve_schedule(client, args.schedule)
    found = client.schedule_runs(schedule_id, page=args.page, page_size=args.page_size)
    render.print_page(args, RUN, found, "runs")
    return OK


def _timing(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument("--cron", help="5 fields, or 6 with seconds first ('0 2 * * 0')")
    p.add_argument(
        "--timezone",
        help="IANA time zone of --cron (Europe/Berlin)" + (" (default: UTC)" * creating),
    )
    p.add_argument("--interval-seconds", type=int, help="fire every N seconds instead of --cron")
    p.add_argument("--misfire-policy", choices=["skip", "run_once"], help="after downtime")
    p.add_argument("--max-concurrent-runs", type=int, help="unfinished tasks at most (default: 1)")
    p.add_argument("--start-at", help="first moment it may fire (RFC 3339)")
    p.add_argument("--end-at", help="last moment it may fire (RFC 3339)")
    p.add_argument("--description")


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["schedule"]
    listing = [parent, output_parent()]

    def one(p: argparse.ArgumentParser) -> None:
        p.add_argument("schedule", type=reference("schedule"), help="id or name")

    p = sub.add_parser("list", parents=listing, help="list schedules (operators: their own)")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_schedules)
    p = sub.add_parser("show", parents=listing, help="one schedule and its next five fire times")
    one(p)
    p.set_defaults(func=show)
    p = sub.add_parser(
        "create",
        parents=[parent],
        usage="%(prog)s NAME --kind KIND --request-file FILE (--cron EXPR [--timezone TZ] | "
        "--interval-seconds N) [options]",
        help="store a request to start as you at cron times or intervals",
    )
    p.add_argument("name")
    p.add_argument("--kind", required=True, help="ssh, script, ansible, workflow, k8s, ...")
    p.add_argument(
        "--request-file",
        required=True,
        help="the kind's execute request body, YAML or JSON ('-': stdin)",
    )
    _timing(p, creating=True)
    p.add_argument("--paused", action="store_true", help="create it paused")
    p.set_defaults(func=create)
    p = sub.add_parser("edit", parents=[parent], help="change a schedule's fields")
    one(p)
    p.add_argument("--name", help="a new name")
    p.add_argument("--kind")
    p.add_argument("--request-file", help="a new request body, YAML or JSON ('-': stdin)")
    _timing(p, creating=False)
    p.set_defaults(func=edit)
    for name, fn, text in (
        ("pause", pause, "stop firing until resumed"),
        ("resume", resume, "fire again, from the next fire time after now"),
    ):
        p = sub.add_parser(name, parents=[parent], help=text)
        one(p)
        p.set_defaults(func=fn)
    p = sub.add_parser("delete", parents=[parent], help="delete a schedule (its tasks stay)")
    one(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=delete)
    p = sub.add_parser(
        "runs", parents=listing, help="a schedule's fire times and their tasks, newest first"
    )
    one(p)
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=runs)
