"""Local commands: they run the server or act directly on its database."""

from __future__ import annotations

import argparse
import functools
import gc
import getpass
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from knm import SERVER_MISSING
from knm.cli import rotate_key

if TYPE_CHECKING:
    from knm.core.config import KnmConfig
    from knm.core.state import Knm

#: Seconds ``knm serve`` keeps an idle keep-alive connection open: longer than the usual load
#: balancer's idle timeout (60 s), so the server is never the side that closes one.
KEEP_ALIVE = 65


#: Exit code of a local command in a client-only install (session.USAGE: this install cannot run it).
NO_SERVER = 2


def server_installed() -> bool:
    """Whether the server's modules are here (not in a client-only install)."""
    import importlib.util

    return importlib.util.find_spec("knm.core") is not None


def needs_server(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``func``, or in a client-only install one line saying what to install and exit 2."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        if not server_installed():
            command = " ".join(w for w in (args.command, getattr(args, "admin_command", None)) if w)
            print(f"knm {command}: {SERVER_MISSING}", file=sys.stderr)
            return NO_SERVER
        return func(args)

    return run


def _config(args: argparse.Namespace) -> KnmConfig:
    from knm.core.config import KnmConfig

    return KnmConfig.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def _freeze_heap() -> None:
    # What start-up built (modules, routes, schemas, plugins) lives as long as the process; out
    # of the collector's sight, it no longer lengthens every full collection — pauses that show
    # in the API's tail latency. Only here: a host app embedding knm decides for itself.
    gc.collect()
    gc.freeze()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from knm.core.app import create_app
    from knm.core.config import KnmConfig
    from knm.core.errors import KnmError
    from knm.core.forwarded import uvicorn_options
    from knm.core.runtime import Knm

    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.no_runner:
        overrides["runner"] = False
    config = KnmConfig.from_env(**overrides)
    _raise_open_files_limit()
    knm = Knm(config)
    try:
        # Before the server: a data dir or database that cannot work is one clear line.
        knm.database_url()
    except KnmError as exc:
        print(f"knm: cannot start: {exc.error or exc.message}", file=sys.stderr)
        return 1
    app = create_app(knm=knm)
    app.on_startup.append(_freeze_heap)
    print(f"knm: serving http://{config.host}:{config.port}{config.api_prefix}", file=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the handler
    # found at start; this one turns that into a clean exit instead of death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level.lower(),
            access_log=False,
            ws_per_message_deflate=config.ws_compression,
            timeout_graceful_shutdown=30,
            # Idle keep-alive connections are let go by the client (knm's SDKs and httpx after
            # 5 s; load balancers after 60 s), never by the server as a request goes out on one:
            # uvicorn's own 5 s met httpx's 5 s and lost a request now and then.
            timeout_keep_alive=KEEP_ALIVE,
            # The same proxies knm's own client address believes (none by default).
            **uvicorn_options(config.forwarded_allow_ips),
        )
    finally:
        # The lifespan stops it; this covers a server that never got that far (port in use).
        if knm.embedded is not None:
            knm.embedded.stop()
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run tasks without serving HTTP (scale-out: N API replicas, M workers, one PostgreSQL)."""
    import asyncio

    from knm.core.config import KnmConfig
    from knm.core.runtime import Knm

    config = KnmConfig.from_env(runner=True)
    _raise_open_files_limit()

    async def run() -> int:
        knm = Knm(config)
        await knm.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"knm: worker {knm.runner.worker_id} running tasks", file=sys.stderr, flush=True)
        await stop.wait()
        await knm.stop()
        return 0

    return run_reporting(run)


def run_reporting(main: Callable[[], Awaitable[int]]) -> int:
    """A local command's ``main`` run to its exit code; a ``KnmError`` (a database that does not
    answer, migrations refused) is one line on stderr and exit 1, not a traceback."""
    import asyncio

    from knm.core.errors import KnmError

    try:
        return asyncio.run(main())
    except KnmError as exc:
        print(f"knm: {exc.message}: {exc.error}", file=sys.stderr)
        return 1


async def audited(
    knm: Knm, conn: Any, action: str, target: str, detail: dict[str, Any] | None = None
) -> None:
    """An audit entry for a change made from this machine's shell: no principal, and ``(cli)``
    where the API's entries name the user."""
    await knm.audit_record(
        conn, principal=None, username="(cli)", action=action, target=target, detail=detail
    )


def _raise_open_files_limit() -> None:
    # Fanning out to 1,000+ nodes holds a socket each; the usual soft limit of 1024 is too low.
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _with_db(args: argparse.Namespace, action: Callable[[Knm], Awaitable[int]]) -> int:
    from knm.core.runtime import Knm

    async def run() -> int:
        knm = Knm(_config(args))
        await knm.start(serve=False)
        try:
            return await action(knm)
        finally:
            await knm.stop()

    return run_reporting(run)


def migrate(args: argparse.Namespace) -> int:
    async def action(knm: Knm) -> int:
        print("migrations are up to date")
        return 0

    return _with_db(args, action)


def _password(args: argparse.Namespace) -> str:
    # Never from argv: it would show in `ps` and in shell history.
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("KNM_NEW_PASSWORD")
    if env:
        return env
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("knm: passwords do not match")
    return first


def user_create(args: argparse.Namespace) -> int:
    from knm.core.auth import passwords, users

    password = _password(args)

    async def action(knm: Knm) -> int:
        passwords.check_password_rules(password)
        async with knm.pool.acquire() as conn:
            user = await users.create(conn, args.username, knm.hasher.hash(password), args.role)
            await audited(knm, conn, "user.create", user.username)
        print(f"created user {user.username} ({user.role}), id {user.id}")
        return 0

    return _with_db(args, action)


def user_reset_password(args: argparse.Namespace) -> int:
    from knm.core.auth import passwords, users

    password = _password(args)

    async def action(knm: Knm) -> int:
        passwords.check_password_rules(password)
        async with knm.pool.acquire() as conn:
            row = await users.auth_row_by_name(conn, args.username)
            if row is None:
                print(f"knm: no user {args.username!r}", file=sys.stderr)
                return 1
            # Revokes every session and API token of the user (users.update).
            await users.update(
                conn, row.id, password_hash=await knm.passwords.hash(password), disabled=False
            )
            await conn.execute(
                "DELETE FROM login_failures WHERE username = lower($1)", args.username
            )
            await audited(knm, conn, "user.reset_password", row.username)
        print(f"password of {row.username} reset; its existing tokens no longer work")
        return 0

    return _with_db(args, action)


def user_list(args: argparse.Namespace) -> int:
    from knm.core.auth import users

    async def action(knm: Knm) -> int:
        async with knm.pool.acquire() as conn:
            _, found = await users.list_users(conn, 1000, 0)
        for user in found:
            state = "disabled" if user.disabled else "active"
            print(f"{user.id}\t{user.username}\t{user.role}\t{state}")
        return 0

    return _with_db(args, action)


def user_set(args: argparse.Namespace) -> int:
    from knm.core.auth import users

    async def action(knm: Knm) -> int:
        async with knm.pool.acquire() as conn:
            row = await users.auth_row_by_name(conn, args.username)
            if row is None:
                print(f"knm: no user {args.username!r}", file=sys.stderr)
                return 1
            disabled = {"disable": True, "enable": False}.get(args.user_command)
            await users.update(conn, row.id, role=getattr(args, "role", None), disabled=disabled)
            await audited(knm, conn, f"user.{args.user_command}", row.username)
        print(f"{args.username}: {args.user_command} done")
        return 0

    return _with_db(args, action)


def prune(args: argparse.Namespace) -> int:
    from knm.core.tasks.retention import prune_with

    async def action(knm: Knm) -> int:
        report = await prune_with(knm)
        print(
            f"pruned {report.tasks} tasks, {report.events} event logs, "
            f"output of {report.output_tasks} tasks"
        )
        return 0

    return _with_db(args, action)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("serve", help="run the API server (and the task runner)")
    p.add_argument("--host", default=None, help="listen address (KNM_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="listen port (KNM_PORT, default 8080)")
    p.add_argument(
        "--no-runner", action="store_true", help="serve the API only; tasks run in `knm worker`"
    )
    p.set_defaults(func=needs_server(serve))

    p = subparsers.add_parser(
        "worker", help="run tasks only (no HTTP); see `knm serve --no-runner`"
    )
    p.set_defaults(func=needs_server(worker))

    p = subparsers.add_parser("migrate", help="apply database migrations and exit")
    p.set_defaults(func=needs_server(migrate))

    admin = subparsers.add_parser("admin", help="administer the server's database directly")
    admin_sub = admin.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)
    rotate_key.register(admin_sub)
    p = admin_sub.add_parser("prune", help="delete tasks, events and output past their retention")
    p.set_defaults(func=needs_server(prune))
    user = admin_sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)

    p = user_sub.add_parser("create", help="create a user (password from a prompt or stdin)")
    p.add_argument("username")
    p.add_argument("--role", choices=["admin", "operator", "viewer"], default="viewer")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=needs_server(user_create))

    p = user_sub.add_parser("reset-password", help="set a user's password and re-enable them")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=needs_server(user_reset_password))

    p = user_sub.add_parser("list", help="list users")
    p.set_defaults(func=needs_server(user_list))

    for name, text in (("disable", "disable a user"), ("enable", "enable a user")):
        p = user_sub.add_parser(name, help=text)
        p.add_argument("username")
        p.set_defaults(func=needs_server(user_set))
    p = user_sub.add_parser("set-role", help="change a user's role")
    p.add_argument("username")
    p.add_argument("role", choices=["admin", "operator", "viewer"])
    p.set_defaults(func=needs_server(user_set))
