"""``knm user list|show|create|update|reset-password|me|change-password`` (admins manage users;
anyone sees themselves and changes their own password). There is no delete: the API keeps users
for the audit log, so ``update --disable`` takes one out of service.

Passwords come from a file (``--password-file``; ``-`` is stdin) or a prompt asked twice, never
from argv, where ``ps`` and shell history would show them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.cli.remote import render
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    emit_json,
    id_by_name,
    output_parent,
    reference,
)
from knm.client.models import User

if TYPE_CHECKING:
    from knm.client.sync import Client

ROLES = ["viewer", "operator", "admin"]
# The table already shows every field a user has: ``-o wide`` adds nothing.
USER = render.Kind("user", "id", ("id", "username", "role", "disabled", "created_at", "updated_at"))


def read_password(path: str | None, prompt: str, *, confirm: bool = True) -> str:
    """A password from ``path`` (``-``: stdin) or, on a terminal, from a prompt."""
    if path is not None:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        # A password file usually ends with a newline that is not part of the password.
        return text.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: give it with a --...-file option")
    password = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != password:
        raise UsageError("the passwords do not match")
    return password


def resolve_user(client: Client, ref: str) -> int:
    """The id of a user given by id or by name."""
    return id_by_name(ref, client.users, "User", key="username")


def _print_user(args: argparse.Namespace, user: User, done: str) -> None:
    """A user just changed: the user as JSON, or a line saying what was ``done``."""
    if args.json:
        emit_json(user)
    else:
        state = ", disabled" if user.disabled else ""
        print(f"{done} user {user.id} ({user.username}, {user.role}{state})")


def _show_user(args: argparse.Namespace, user: User) -> None:
    fields = {k: getattr(user, k) for k in user.__struct_fields__}
    render.print_object(args, USER, user, lambda wide: render.print_fields(fields))


@command
def list_users(args: argparse.Namespace, client: Client) -> int:
    render.print_page(args, USER, client.users(page=args.page, page_size=args.page_size), "users")
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    _show_user(args, client.user(resolve_user(client, args.user)))
    return OK


@command
def me(args: argparse.Namespace, client: Client) -> int:
    _show_user(args, client.me())
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    password = read_password(args.password_file, f"Password for {args.username}")
    _print_user(args, client.create_user(args.username, password, args.role), "created")
    return OK


@command
def update(args: argparse.Namespace, client: Client) -> int:
    if args.role is None and args.disabled is None:
        raise UsageError("nothing to change: give --role, --disable or --enable")
    user_id = resolve_user(client, args.user)
    _print_user(
        args, client.update_user(user_id, role=args.role, disabled=args.disabled), "updated"
    )
    return OK


@command
def reset_password(args: argparse.Namespace, client: Client) -> int:
    user_id = resolve_user(client, args.user)
    password = read_password(args.password_file, f"New password for {args.user}")
    _print_user(args, client.reset_password(user_id, password), "reset the password of")
    return OK


@command
def change_password(args: argparse.Namespace, client: Client) -> int:
    if args.current_password_file == "-" and args.new_password_file == "-":
        raise UsageError("only one of the passwords can come from stdin")
    current = read_password(args.current_password_file, "Current password", confirm=False)
    new = read_password(args.new_password_file, "New password")
    client.change_password(current, new)
    # The server keeps the session the change came from and signs out every other session and
    # every API token of the user — this one too when it is an API token (``knm_…``).
    kept = not (client.token or "").startswith("knm_")
    if args.json:
        emit_json({"password_changed": True, "this_session_kept": kept})
    elif kept:
        print("password changed; this session stays signed in, your other sessions and API tokens"
              " were signed out")  # fmt: skip
    else:
        print("password changed; every session and API token of yours was signed out, this one"
              " too: log in again with `knm login`")  # fmt: skip
    return OK


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["user"]
    listing = [parent, output_parent()]
    p = sub.add_parser("list", parents=listing, help="list users (admin)")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_users)

    p = sub.add_parser("show", parents=listing, help="one user (admin)")
    p.add_argument("user", type=reference("user"), help="id or name")
    p.set_defaults(func=show)

    p = sub.add_parser("me", parents=listing, help="who you are logged in as")
    p.set_defaults(func=me)

    p = sub.add_parser("create", parents=[parent], help="create a user (admin)")
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES, default="viewer")
    p.add_argument("--password-file", help="file holding the password ('-': stdin)")
    p.set_defaults(func=create)

    p = sub.add_parser("update", parents=[parent], help="change a user's role, or disable them")
    p.add_argument("user", type=reference("user"), help="id or name")
    p.add_argument("--role", choices=ROLES)
    state = p.add_mutually_exclusive_group()
    state.add_argument(
        "--disable", dest="disabled", action="store_const", const=True, help="refuse their logins"
    )
    state.add_argument("--enable", dest="disabled", action="store_const", const=False)
    p.set_defaults(func=update, disabled=None)

    p = sub.add_parser("reset-password", parents=[parent], help="set a user's password (admin)")
    p.add_argument("user", type=reference("user"), help="id or name")
    p.add_argument("--password-file", help="file holding the new password ('-': stdin)")
    p.set_defaults(func=reset_password)

    p = sub.add_parser("change-password", parents=[parent], help="change your own password")
    p.add_argument("--current-password-file", help="file holding your current password")
    p.add_argument("--new-password-file", help="file holding the new password")
    p.set_defaults(func=change_password)
