"""``knm credential list|show|create|delete``. Secrets come from files (``--password-file``,
``--private-key-file``, ``--passphrase-file``; ``-`` is stdin) or a prompt, never from argv,
where ``ps`` and shell history would show them."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.cli.completion.names import live
from knm.cli.remote import render
from knm.cli.remote.session import (
    OK,
    UsageError,
    command,
    done,
    id_by_name,
    output_parent,
    reference,
)

if TYPE_CHECKING:
    from knm.client.sync import Client

CREDENTIAL = render.Kind(
    "credential",
    "id",
    ("id", "name", "username", "auth_type", "port", "has_password", "has_private_key"),
    wide=(
        *("has_passphrase", "description", "allowed_roles", "allowed_users"),
        *("allowed_clusters", "updated_at"),
    ),
)


def resolve_credential(client: Client, ref: str) -> int:
    return id_by_name(ref, client.credentials, "Credential")


def _secret_file(path: str | None) -> str | None:
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    # A password file usually ends with a newline that is not part of the password.
    return text if "PRIVATE KEY" in text else text.rstrip("\r\n")


@command
def list_credentials(args: argparse.Namespace, client: Client) -> int:
    render.print_page(
        args,
        CREDENTIAL,
        client.credentials(page=args.page, page_size=args.page_size),
        "credentials",
    )
    return OK


@command
def show(args: argparse.Namespace, client: Client) -> int:
    credential = client.credential(resolve_credential(client, args.credential))
    fields = {k: getattr(credential, k) for k in credential.__struct_fields__}
    render.print_object(args, CREDENTIAL, credential, lambda wide: render.print_fields(fields))
    return OK


@command
def create(args: argparse.Namespace, client: Client) -> int:
    password = _secret_file(args.password_file)
    private_key = _secret_file(args.private_key_file)
    passphrase = _secret_file(args.passphrase_file)
    if args.auth_type == "password" and password is None:
        if not sys.stdin.isatty():
            raise UsageError("give --password-file (no terminal to ask for the password)")
        password = getpass.getpass(f"Password of {args.username}: ")
    if args.auth_type == "private_key" and private_key is None:
        raise UsageError("give --private-key-file")
    credential = client.create_credential(
        args.name,
        args.username,
        args.auth_type,
        password=password,
        private_key=private_key,
        passphrase=passphrase,
        port=args.port,
        description=args.description,
    )
    return done(args, credential, f"created credential {credential.id} ({credential.name})")


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    credential_id = resolve_credential(client, args.credential)
    client.delete_credential(credential_id)
    return done(args, {"deleted": credential_id}, f"deleted credential {credential_id}")


def register(nouns: dict[str, Any], parent: argparse.ArgumentParser) -> None:
    sub = nouns["credential"]
    listing = [parent, output_parent()]
    p = sub.add_parser("list", parents=listing, help="list credentials (never their secrets)")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=20)
    p.set_defaults(func=list_credentials)
    p = sub.add_parser("show", parents=listing, help="one credential")
    live(
        p.add_argument("credential", type=reference("credential"), help="id or name"), "credential"
    )
    p.set_defaults(func=show)
    p = sub.add_parser("create", parents=[parent], help="store an SSH credential")
    p.add_argument("--name", required=True)
    p.add_argument("--username", required=True, help="the SSH user")
    p.add_argument("--auth-type", choices=["password", "private_key"], default="password")
    p.add_argument("--password-file", help="file holding the password ('-': stdin)")
    p.add_argument("--private-key-file", help="file holding the private key ('-': stdin)")
    p.add_argument("--passphrase-file", help="file holding the key's passphrase")
    p.add_argument("--port", type=int)
    p.add_argument("--description", default="")
    p.set_defaults(func=create)
    p = sub.add_parser("delete", parents=[parent], help="delete a credential")
    live(
        p.add_argument("credential", type=reference("credential"), help="id or name"), "credential"
    )
    p.set_defaults(func=delete)
