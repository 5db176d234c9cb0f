"""``knm admin rotate-key``: re-encrypt every stored secret under a new secret key.

The procedure, with several processes on one database:

1. restart every knm process with ``KNM_SECRET_KEY=<new>`` and ``KNM_PREVIOUS_SECRET_KEYS=<old>``;
   each decrypts what either secret sealed and seals new secrets under the new one;
2. run ``knm admin rotate-key --new-secret-file FILE`` (or the new secret on stdin): it re-seals
   every row, one short transaction each, while the service keeps running;
3. remove the old secret from ``KNM_PREVIOUS_SECRET_KEYS`` and restart.

This command decrypts with every secret its environment configures (``KNM_SECRET_KEY``, or the
one kept in the data dir, and ``KNM_PREVIOUS_SECRET_KEYS``) plus the new one, so it works with
the old environment as well as the new. With the embedded database (one process; stop
``knm serve`` first) the secret kept in the data dir is replaced by the new one once every row
is re-sealed, and the old one is kept beside it in ``secret_key.previous``.

The new secret is never taken from the command line, where ``ps`` and shell history would keep
it.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from knm.wire.errors import KnmError

if TYPE_CHECKING:
    from knm.core import crypto
    from knm.core.config import KnmConfig
    from knm.core.state import Knm

#: Core modules owning encrypted columns; importing one registers its columns for rotation.
#: Plugins register theirs when the plugin manager loads them.
_STORES = (
    "knm.core.credentials",
    "knm.core.clusters",
    "knm.core.notifications.store",
    "knm.core.schedules.store",
)


class RotationError(KnmError):
    message = "key rotation failed"


def register(admin_subparsers: argparse._SubParsersAction[Any]) -> None:
    p = admin_subparsers.add_parser(
        "rotate-key",
        help="re-encrypt every stored secret under a new secret key",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--new-secret-file",
        metavar="FILE",
        default=None,
        help="read the new secret from FILE (default: stdin, or a prompt on a terminal)",
    )
    from knm.cli.local import needs_server

    p.set_defaults(func=needs_server(rotate_key))


def read_new_secret(path: str | None, stdin: IO[str] | None = None) -> str:
    stdin = stdin or sys.stdin
    if path and path != "-":
        value = Path(path).read_text()
    elif stdin.isatty():
        value = getpass.getpass("New secret key: ")
    else:
        value = stdin.readline()
    value = value.strip()
    if not value:
        raise RotationError("the new secret is empty")
    return value


def rotation_config(config: KnmConfig, new_secret: str) -> tuple[KnmConfig, Path | None]:
    """Settings with the new secret current and every configured one previous; and the data
    dir's secret file to replace afterwards, when the secret in use comes from there."""
    import msgspec

    from knm.core import keys

    secret_file: Path | None = None
    in_use = config.secret_key
    if not in_use:
        if config.database_url:
            raise RotationError(
                "KNM_SECRET_KEY is required with an external database: run this command with "
                "the settings of the servers (the secret in use, and any previous ones)"
            )
        secret_file = config.resolved_data_dir() / keys.SECRET_FILE
        in_use = keys.load_or_create_secret(config.resolved_data_dir())
    previous = [s for s in dict.fromkeys([in_use, *config.previous_secret_keys]) if s != new_secret]
    rotated = msgspec.structs.replace(config, secret_key=new_secret, previous_secret_keys=previous)
    return rotated, secret_file


def _replace_secret_file(path: Path, new_secret: str) -> None:
    old = path.read_text()
    for target, text in ((path.with_name(f"{path.name}.previous"), old), (path, new_secret + "\n")):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)


def _register_stores() -> None:
    for name in _STORES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


async def rotate_database(knm: Knm, out: IO[str] | None = None) -> crypto.RotationReport:
    """Re-seal every registered encrypted column of ``knm``'s database under its current key."""
    from knm.cli.local import audited  # local imports this module as it loads
    from knm.core import crypto

    _register_stores()
    out = out or sys.stdout
    keyring = crypto.keyring_of(knm)
    report = await crypto.rotate(knm.pool, keyring)
    detail = {"rotated": report.rotated, "failed": len(report.failed)}
    await audited(knm, knm.pool, "secret.rotate", keyring.current_id, detail)
    print(
        f"re-encrypted {report.rotated} secret(s) under key {keyring.current_id}; "
        f"{report.already_current} already were",
        file=out,
    )
    return report


def rotate_key(args: argparse.Namespace) -> int:
    from knm.cli.local import run_reporting  # local imports this module as it loads
    from knm.core.config import KnmConfig
    from knm.core.runtime import Knm

    try:
        new_secret = read_new_secret(args.new_secret_file)
        # The server's own settings (an admin command takes no --host/--port).
        config, secret_file = rotation_config(KnmConfig.from_env(), new_secret)
    except (KnmError, OSError) as exc:
        print(f"knm: {getattr(exc, 'error', '') or exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        knm = Knm(config)
        await knm.start(serve=False)
        try:
            report = await rotate_database(knm)
        finally:
            await knm.stop()
        if report.failed:
            for line in report.failed:
                print(f"knm: {line}", file=sys.stderr)
            print(f"knm: {len(report.failed)} secret(s) were not re-encrypted", file=sys.stderr)
            return 1
        if secret_file is not None:
            _replace_secret_file(secret_file, new_secret)
            print(f"{secret_file} now holds the new secret (the old one: {secret_file}.previous)")
        else:
            print("done: remove the old secret from KNM_PREVIOUS_SECRET_KEYS and restart knm")
        return 0

    return run_reporting(run)
