"""``knm notification list|show|create|edit|delete|test|deliveries|delivery|redeliver|events``:
subscriptions that send knm's events to a webhook, a Slack-compatible channel or a mailbox,
and what became of each delivery.

The options are the API's fields: ``--event``, ``--kind``, ``--cluster``, ``--status`` (each
given once per value) and the target's ``--type``, ``--webhook-url``, ``--host``, ``--port``,
``--security``, ``--username``, ``--from-addr``, ``--to``, so an error about ``target.host`` is
about ``--host``. A target's secret (a webhook's signing secret, a Slack incoming webhook's
URL, an SMTP password) never comes from argv, where ``ps`` and shell history would show it:
``--secret-file FILE`` (``-``: stdin) or ``--secret-env VAR`` give it.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.session import (
    FAILED,
    OK,
    UsageError,
    command,
    done,
    emit_json,
    id_by_name,
    in_options,
    output_parent,
    reference,
)
from knm.client import KnmError
from knm.wire import TASK_STATES
from knm.wire.notifications import EVENT_NAMES, TARGET_TYPES

if TYPE_CHECKING:
    from knm.client import models as m
    from knm.client.sync import Client

#: The events a subscription may name (``notification.test`` is only the test-send's).
EVENTS = tuple(e for e in EVENT_NAMES if e != "notification.test")
SECURITY = ("starttls", "tls", "none")
DELIVERY_STATES = ("pending", "delivered", "dead")
SECRET_OPTIONS = "--secret-file or --secret-env"
#: What each target type's secret is, in the user's words.
SECRET_OF = {
    "webhook": "the signing secret",
    "slack": "the incoming webhook's URL",
    "email": "the SMTP password",
}

SUBSCRIPTION = render.Kind(
    "subscription",
    "id",
    ("id", "name", "target_type", "events", "enabled", "has_secret"),
    wide=("owner", "kinds", "clusters", "statuses", "target", "updated_at"),
)
DELIVERY = render.Kind(
    "delivery",
    "id",
    ("id", "event", "state", "attempts", "created_at", "last_error"),
    wide=("idempotency_key", "next_attempt_at", "delivered_at"),
)
TARGET_ORDER = ("url", "host", "port", "security", "username", "from_addr", "to")
ATTEMPT_COLUMNS = ("attempt", "at", "ok", "status_code", "latency_ms", "error")


# ----------------------------------------------------------------------- errors, in options

#: Request fields, by the option that sets each (session.in_options matches the longest first).
OPTION_OF_FIELD = {
    "target.to entries": "--to",
    "target.from_addr": "--from-addr",
    "target.username": "--username",
    "target.password": SECRET_OPTIONS,
    "target.security": "--security",
    "target.secret": SECRET_OPTIONS,
    "target.host": "--host",
    "target.port": "--port",
    "target.type": "--type",
    "target.to": "--to",
    "statuses": "--status",
    "clusters": "--cluster",
    "events": "--event",
    "kinds": "--kind",
}


def fields_of(target_type: str | None) -> dict[str, str]:
    """This command's options by request field (a Slack target's ``target.url`` is its secret,
    so it names the secret options)."""
    url = SECRET_OPTIONS if target_type == "slack" else "--webhook-url"
    return {**OPTION_OF_FIELD, "target.url": url}


Handler = Callable[[argparse.Namespace, "Client"], int]


def worded(fn: Handler) -> Handler:
    """A handler whose API errors name this command's options rather than the API's fields."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace, client: Client) -> int:
        try:
            return fn(args, client)
        except KnmError as exc:
            exc.error = in_options(exc.error, args, fields_of(getattr(args, "type", None)))
            raise

    return run


# ------------------------------------------------------------------------------ arguments


def resolve_subscription(client: Client, ref: str) -> int:
    """A subscription's id from its id or name."""
    return id_by_name(ref, client.subscriptions, "Subscription")


def delivery_id(text: str) -> int:
    key = text.removeprefix("delivery/")
    if not key.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a delivery id (a number)")
    return int(key)


delivery_id.__name__ = "delivery"


def read_secret(args: argparse.Namespace) -> str | None:
    """The secret from ``--secret-file`` (``-``: stdin) or ``--secret-env``; None when neither
    is given. One trailing line break is the file's, not the secret's."""
    if args.secret_file is not None:
        text = sys.stdin.read() if args.secret_file == "-" else Path(args.secret_file).read_text()
        secret = text.removesuffix("\n").removesuffix("\r")
        source = "stdin" if args.secret_file == "-" else args.secret_file
    elif args.secret_env is not None:
        if args.secret_env not in os.environ:
            raise UsageError(f"--secret-env: the environment variable {args.secret_env} is not set")
        secret = os.environ[args.secret_env]
        source = f"${args.secret_env}"
    else:
        return None
    if not secret:
        raise UsageError(f"{source} is empty: it should hold {SECRET_OF[args.type or 'webhook']}")
    return secret


def target_of(args: argparse.Namespace, current: m.Subscription | None = None) -> dict[str, Any]:
    """The target to send: the options given over ``current``'s settings when the type stays.
    The secret is left out (None: the server keeps the stored one) unless given or removed."""
    target_type = args.type or (current.target_type if current else "webhook")
    args.type = target_type
    kept = dict(current.target) if current and current.target_type == target_type else {}
    secret = read_secret(args)
    if getattr(args, "no_secret", False):
        if target_type == "slack":
            raise UsageError("--no-secret: a slack target cannot be without its URL")
        secret = ""
    target: dict[str, Any] = {"type": target_type}
    if target_type == "slack":
        if args.webhook_url is not None:
            raise UsageError(
                f"--webhook-url: a Slack URL is its credential; give it with {SECRET_OPTIONS}, "
                "not on the command line"
            )
        # Kept only when the stored target is a slack one too.
        if secret is None and (current is None or current.target_type != "slack"):
            raise UsageError(f"a slack target needs its incoming webhook's URL: {SECRET_OPTIONS}")
        target["url"] = secret
        return target
    email_only = ("host", "port", "security", "username", "from_addr", "to")
    if target_type == "webhook":
        stray = [name for name in email_only if getattr(args, name) not in (None, [])]
        if stray:
            option = "--" + stray[0].replace("_", "-")
            raise UsageError(f"{option}: an email target's option (this one is --type webhook)")
        url = args.webhook_url if args.webhook_url is not None else kept.get("url")
        if not url:
            raise UsageError("a webhook target needs --webhook-url")
        target.update(url=url, secret=secret)
        return target
    if args.webhook_url is not None:
        raise UsageError("--webhook-url: a webhook's option (this one is --type email)")
    for name in email_only:
        value = getattr(args, name)
        if value not in (None, []):
            kept[name] = value
    missing = [f"--{n.replace('_', '-')}" for n in ("host", "from_addr", "to") if not kept.get(n)]
    if missing:
        raise UsageError(f"an email target needs {', '.join(missing)}")
    target.update(kept, password=secret)
    return target


def target_given(args: argparse.Namespace) -> bool:
    """Whether an edit names anything of the target (then the whole target is sent)."""
    options = ("type", "webhook_url", "host", "port", "security", "username", "from_addr")
    secret = ("secret_file", "secret_env")
    return any(getattr(args, n) is not None for n in (*options, *secret)) or bool(
        args.to or args.no_secret
    )


def _said(args: argparse.Namespace, subscription: m.Subscription, what: str) -> int:
    line = f"{what} subscription {subscription.id} ({subscription.name})"
    return done(args, subscription, line)


# ------------------------------------------------------------------------------- commands


@command
def list_subscriptions(args: argparse.Namespace, client: Client) -> int:
    found = client.subscriptions(page=args.page, page_size=args.page_size)
    document = {"total": found.total, "subscriptions": found.items}
    render.print_list(args, SUBSCRIPTION, found.items, document, found.total)
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    subscription = client.subscription(resolve_subscription(client, args.subscription))
    fields: dict[str, Any] = {}
    for name in subscription.__struct_fields__:
        if name == "target":
            # One line per setting, in the order a reader fills them in.
            order = {key: i for i, key in enumerate(TARGET_ORDER)}
            for key in sorted(subscription.target, key=lambda k: order.get(k, len(order))):
                fields[f"target.{key}"] = subscription.target[key]
        else:
            fields[name] = getattr(subscription, name)
    render.print_object(args, SUBSCRIPTION, subscription, lambda wide: render.print_fields(fields))
    return OK


@command
@worded
def create(args: argparse.Namespace, client: Client) -> int:
    target = target_of(args)
    subscription = client.create_subscription(
        args.name,
        args.event,
        target,
        kinds=args.kind or None,
        clusters=args.cluster or None,
        statuses=args.status or None,
        enabled=False if args.disabled else None,
    )
    return _said(args, subscription, "created")


@command
@worded
def edit(args: argparse.Namespace, client: Client) -> int:
    fields: dict[str, Any] = {}
    if args.name is not None:
        fields["name"] = args.name
    if args.event:
        fields["events"] = args.event
    for field, given, cleared in (
        ("kinds", args.kind, args.any_kind),
        ("clusters", args.cluster, args.any_cluster),
        ("statuses", args.status, args.any_status),
    ):
        if given and cleared:
            raise UsageError(f"--{field[:-1]} and --any-{field[:-1]}: give one of them")
        if given or cleared:
            fields[field] = [] if cleared else given
    if args.enable or args.disable:
        fields["enabled"] = bool(args.enable)
    subscription_id = resolve_subscription(client, args.subscription)
    if target_given(args):
        fields["target"] = target_of(args, client.subscription(subscription_id))
    if not fields:
        raise UsageError("nothing to change: give an option to set (see --help)")
    return _said(args, client.update_subscription(subscription_id, **fields), "changed")


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    subscription_id = resolve_subscription(client, args.subscription)
    asked = not args.yes and sys.stdin.isatty()
    question = f"delete subscription {args.subscription} and its deliveries? [y/N] "
    if asked and input(question).strip().lower() not in ("y", "yes"):
        print("not deleted")
        return OK
    client.delete_subscription(subscription_id)
    return done(args, {"deleted": subscription_id}, f"deleted subscription {subscription_id}")


def _settled(client: Client, delivery: m.Delivery, timeout: float) -> m.Delivery:
    """``delivery`` once it is no longer pending (or as it is when ``timeout`` runs out)."""
    end = time.monotonic() + timeout
    while delivery.state == "pending" and time.monotonic() < end:
        time.sleep(0.2)
        delivery = client.delivery(delivery.id)
    return delivery


def _outcome(args: argparse.Namespace, delivery: m.Delivery, what: str) -> int:
    """What a test-send or a redelivery answers: queued, or with ``--wait`` what came of it
    (exit 1 unless delivered)."""
    if args.json:
        emit_json(delivery)
    elif delivery.state == "pending" and not args.wait:
        print(f"{what} delivery {delivery.id} ({delivery.event})")
    else:
        last = delivery.attempt_log[-1] if delivery.attempt_log else None
        code = f", answered {last.status_code}" if last and last.status_code is not None else ""
        error = (
            f": {delivery.last_error}"
            if delivery.state != "delivered" and delivery.last_error
            else ""
        )
        print(f"delivery {delivery.id} ({delivery.event}) {delivery.state}{code}{error}")
    return OK if delivery.state == "delivered" or not args.wait else FAILED


@command
def test(args: argparse.Namespace, client: Client) -> int:
    delivery = client.test_subscription(resolve_subscription(client, args.subscription))
    if args.wait:
        delivery = _settled(client, delivery, args.timeout)
    return _outcome(args, delivery, "queued")


@command
def deliveries(args: argparse.Namespace, client: Client) -> int:
    subscription_id = resolve_subscription(client, args.subscription)
    found = client.deliveries(
        subscription_id, state=args.state, page=args.page, page_size=args.page_size
    )
    document = {"total": found.total, "deliveries": found.items}
    render.print_list(args, DELIVERY, found.items, document, found.total)
    return OK


@command
def delivery(args: argparse.Namespace, client: Client) -> int:
    found = client.delivery(args.delivery)

    def view(wide: bool) -> None:
        fields = {k: getattr(found, k) for k in found.__struct_fields__}
        attempts = fields.pop("attempt_log")
        fields.pop("payload")
        render.print_fields(fields)
        if attempts:
            render.print_table(attempts, ATTEMPT_COLUMNS)

    render.print_object(args, DELIVERY, found, view)
    return OK


@command
def redeliver(args: argparse.Namespace, client: Client) -> int:
    found = client.redeliver(args.delivery)
    if args.wait:
        found = _settled(client, found, args.timeout)
    return _outcome(args, found, "queued again")


@command
def events(args: argparse.Namespace, client: Client) -> int:
    names = client.notification_events()
    if args.json:
        emit_json({"events": names})
    else:
        print("\n".join(names))
    return OK


# ------------------------------------------------------------------------------ the parser


def _filters(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument(
        "--event", action="append", choices=EVENTS, metavar="EVENT", required=creating,
        help=f"an event to send (again for more): {', '.join(EVENTS)}",
    )  # fmt: skip
    p.add_argument(
        "--kind", action="append", metavar="KIND",
        help="only tasks of this kind (again for more; default: every kind)",
    )  # fmt: skip
    live(
        p.add_argument(
            "--cluster", action="append", metavar="CLUSTER",
            help="only events of this cluster (again for more; default: every cluster)",
        ),
        "cluster",
    )  # fmt: skip
    p.add_argument(
        "--status", action="append", choices=TASK_STATES, metavar="STATUS",
        help=f"only tasks that ended so (again for more): {', '.join(TASK_STATES)}",
    )  # fmt: skip


def _target(p: argparse.ArgumentParser, creating: bool) -> argparse._MutuallyExclusiveGroup:
    """The target's options; returns the group of the secret's, which exclude each other."""
    p.add_argument(
        "--type",
        choices=TARGET_TYPES,
        help="where notifications go" + (" (default: webhook)" if creating else ""),
    )
    p.add_argument("--webhook-url", help="webhook: the URL it POSTs to (http or https)")
    p.add_argument("--host", help="email: the SMTP server")
    p.add_argument("--port", type=int, help="email: its port (default: 587)")
    p.add_argument("--security", choices=SECURITY, help="email: starttls (default), tls, none")
    p.add_argument("--username", help="email: the SMTP login (its password is the secret)")
    p.add_argument("--from-addr", help="email: the sender address")
    p.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="email: a recipient (again for more)",
    )
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--secret-file",
        metavar="FILE",
        help="file holding the secret ('-': stdin): webhook signing secret, Slack URL, SMTP password",
    )
    secret.add_argument(
        "--secret-env", metavar="VAR", help="environment variable holding the secret"
    )
    return secret


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["notification"]
    listing = [parent, output_parent()]

    def one(p: argparse.ArgumentParser) -> None:
        live(
            p.add_argument("subscription", type=reference("subscription"), help="id or name"),
            "subscription",
        )

    def paging(p: argparse.ArgumentParser) -> None:
        p.add_argument("--page", type=int, default=1)
        p.add_argument("--page-size", type=int, default=20)

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--wait",
            action="store_true",
            help="wait until delivered or dead (exit 1 unless delivered)",
        )
        p.add_argument(
            "--timeout", type=float, default=60, help="seconds --wait waits (default: 60)"
        )

    p = sub.add_parser("list", parents=listing, help="list subscriptions (never their secrets)")
    paging(p)
    p.set_defaults(func=list_subscriptions)
    p = sub.add_parser("show", parents=listing, help="one subscription")
    one(p)
    p.set_defaults(func=show)
    p = sub.add_parser(
        "create",
        parents=[parent],
        usage="%(prog)s NAME --event EVENT [--event EVENT ...] [--type TYPE] [target options] "
        "[filters]",
        help="send events to a webhook, a Slack channel or a mailbox",
    )
    p.add_argument("name")
    _filters(p, creating=True)
    _target(p, creating=True)
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.set_defaults(func=create)
    p = sub.add_parser(
        "edit", parents=[parent], help="change a subscription (--event and filters replace)"
    )
    one(p)
    p.add_argument("--name", help="a new name")
    _filters(p, creating=False)
    for noun in ("kind", "cluster", "status"):
        p.add_argument(f"--any-{noun}", action="store_true", help=f"drop the {noun} filter")
    secret = _target(p, creating=False)
    secret.add_argument("--no-secret", action="store_true", help="remove the stored secret")
    enabled = p.add_mutually_exclusive_group()
    enabled.add_argument("--enable", action="store_true", help="send again")
    enabled.add_argument("--disable", action="store_true", help="stop sending (tests still go)")
    p.set_defaults(func=edit)
    p = sub.add_parser("delete", parents=[parent], help="delete a subscription and its deliveries")
    one(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=delete)
    p = sub.add_parser(
        "test", parents=[parent], help="send a notification.test to its target (even disabled)"
    )
    one(p)
    waiting(p)
    p.set_defaults(func=test)
    p = sub.add_parser(
        "deliveries", parents=listing, help="a subscription's deliveries, newest first"
    )
    one(p)
    p.add_argument("--state", choices=DELIVERY_STATES, help="only deliveries in this state")
    paging(p)
    p.set_defaults(func=deliveries)
    p = sub.add_parser("delivery", parents=listing, help="one delivery and its attempts")
    p.add_argument("delivery", type=delivery_id, help="its id")
    p.set_defaults(func=delivery)
    p = sub.add_parser(
        "redeliver", parents=[parent], help="send a delivery again (same idempotency key)"
    )
    p.add_argument("delivery", type=delivery_id, help="its id")
    waiting(p)
    p.set_defaults(func=redeliver)
    p = sub.add_parser("events", parents=[parent], help="the events a subscription may name")
    p.set_defaults(func=events)
