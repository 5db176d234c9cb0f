"""The ``knm`` program's entry point (client/pyproject.toml's console script).

The script setuptools generates imports this module and calls ``main``; so does
``python -m knm.cli.main``. A Ctrl-C while Python imports the command's modules would print
a ``KeyboardInterrupt`` traceback, so this module imports nothing but ``signal`` and ``sys``
(both already loaded by the interpreter) and, before anything else is imported, makes a Ctrl-C
end the program quietly with 130. Only inside ``knm.cli.main.main``'s guard, where commands
handle it (the live view asks whether to cancel, detach or keep watching), is a Ctrl-C a
``KeyboardInterrupt``; on either side of that guard it is the quiet exit again.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

#: The exit code of a program ended by Ctrl-C, as a shell reports one killed by SIGINT.
INTERRUPTED = 130

_raising = False


class _Interrupted(SystemExit):
    """The quiet exit of a Ctrl-C, told apart from a command's own ``SystemExit``."""


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    if _raising:
        raise KeyboardInterrupt
    # A SystemExit, not ``os._exit``: ``finally`` blocks still run and output is flushed.
    sys.stderr.write("\n")
    raise _Interrupted(INTERRUPTED)


def caused_by_interrupt(error: BaseException) -> bool:
    """Whether ``error`` is Python's wrapping of a Ctrl-C: an exception raised inside a
    descriptor's ``__set_name__`` (a class body being built, as importing ``ipaddress`` does)
    comes out as a ``RuntimeError`` caused by it, which no ``except KeyboardInterrupt`` sees."""
    cause = error.__cause__
    for _ in range(16):  # a chain is short; a cycle must not hang the exit
        if cause is None:
            return False
        if isinstance(cause, (KeyboardInterrupt, _Interrupted)):
            return True
        cause = cause.__cause__
    return False


def quiet_interrupts() -> None:
    """From now on a Ctrl-C ends the program with 130 and no traceback, except where
    ``raise_interrupts(True)`` asks for a ``KeyboardInterrupt``."""
    signal.signal(signal.SIGINT, _on_interrupt)


def raise_interrupts(on: bool) -> None:
    """Whether a Ctrl-C raises ``KeyboardInterrupt`` (for code that handles it) rather than
    ending the program. Without ``quiet_interrupts`` (knm's ``main`` called in-process), Python's
    own handler raises it anyway."""
    global _raising
    _raising = on


def main() -> int:
    quiet_interrupts()
    try:
        from knm.cli.main import main as run

        return run()
    except Exception as error:
        if not caused_by_interrupt(error):
            raise
        return INTERRUPTED
