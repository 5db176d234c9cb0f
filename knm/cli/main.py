"""Entry point of the ``knm`` command.

Start-up imports the argument parsers only: remote commands load the SDK's HTTP client when
they run, local ones (``serve``, ``worker``, ``migrate``, ``admin``) the server when they run.
Plugins load only for a command knm does not know itself — a plugin's ``knm_cli`` hook may add
it — chosen by the server's settings (``KNM_PLUGINS``, ``KNM_BLOCKED_PLUGINS``, ...), so a
blocked plugin is never imported; ``knm --help`` and ``knm task list`` stay fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from knm import __version__
from knm.cli import entry

if TYPE_CHECKING:
    import argparse

# Everything else is imported inside ``main``, under its Ctrl-C guard: an interrupt while the
# parsers (or, for a plugin's command, the plugins) load exits 130 without a traceback.

EPILOG = (
    "Plugins may add commands: `knm <command>` loads them when knm does not know <command>\n"
    "itself (KNM_BLOCKED_PLUGINS keeps a plugin out)."
)


def _epilog() -> str:
    from knm.cli.remote.session import EXIT_CODES

    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    return f"exit codes:\n{codes}\n\n{EPILOG}"


def build_parser(*, plugins: bool = False) -> argparse.ArgumentParser:
    """The ``knm`` parser; with ``plugins``, also the commands plugins add (``knm_cli``)."""
    import argparse

    from knm.cli import completion, local, remote

    parser = argparse.ArgumentParser(
        prog="knm",
        description="Kube Node Manager: automation for the nodes of Kubernetes clusters",
        epilog=_epilog(),
        # The epilog's exit code table keeps its lines.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"knm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    local.register(subparsers)
    remote.register(subparsers)
    completion.register(subparsers)
    # A client-only install has no plugins to ask (nor the settings that choose them).
    if plugins and local.server_installed():
        # The server's own settings choose the plugins, so the CLI offers what the server runs.
        from knm.core.config import KnmConfig
        from knm.core.manager import make_plugin_manager

        config = KnmConfig.from_env()
        pm = make_plugin_manager(
            blocked=config.blocked_plugins,
            load_entrypoints=config.load_entrypoints,
            named_plugins=config.plugins,
        )
        pm.hook.knm_cli(subparsers=subparsers)
    return parser


def _command_of(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The first positional argument (the command), if there is one."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
        if arg == "--":
            return None
    return None


def _known(parser: argparse.ArgumentParser) -> set[str]:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: Sequence[str] | None = None) -> int:
    # Ctrl-C while starting (or in a command that does not handle it): no traceback, 130.
    # Outside this guard ``entry`` ends the program quietly on a Ctrl-C; inside it the
    # commands get their KeyboardInterrupt (the live view's cancel/detach/keep-watching).
    try:
        try:
            entry.raise_interrupts(True)
            return _main(sys.argv[1:] if argv is None else list(argv))
        finally:
            entry.raise_interrupts(False)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as error:
        if not entry.caused_by_interrupt(error):
            raise
        return _interrupted()


def _interrupted() -> int:
    # Again, in case the interrupt cut the ``finally`` short.
    entry.raise_interrupts(False)
    print(file=sys.stderr)
    return entry.INTERRUPTED


def _main(argv: list[str]) -> int:
    if argv[:1] == ["__complete"]:
        # The shell scripts' question (``knm completion``): not a command, so never in --help.
        from knm.cli.completion import words

        return words.main(argv[1:])
    parser = build_parser()
    command = _command_of(parser, argv)
    if command is not None and command not in _known(parser):
        parser = build_parser(plugins=True)
    args = parser.parse_args(argv)
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    # ``python -m knm.cli.main``: what the console script does (``entry.main``), without
    # importing this module a second time.
    entry.quiet_interrupts()
    sys.exit(main())
