"""Running a command as root through ``sudo``, the password fed on stdin (never in argv)."""

from __future__ import annotations

import re
import shlex
from typing import Any

# Anything that makes a command line more than one plain program call.
_SHELL_SYNTAX = re.compile(r"""[;&|<>()$`\\"'*?\[\]{}~#!\n]""")


def sudo_command(command: str, credential: Any) -> tuple[str, str | None]:
    """``(command line, stdin)`` running ``command`` as root.

    A plain program call is given to sudo as is (``sudo id -u``), so sudoers rules naming
    programs apply; anything with shell syntax runs as ``sudo /bin/sh -c '<command>'``. With a
    password, ``sudo -S -p ''`` reads it from stdin (the prompt is empty so nothing of it shows
    in the output); without one, ``sudo -n`` fails at once instead of waiting for a password.

    Under a ``NOPASSWD`` rule sudo does not read the password line, and the command gets it on
    its stdin: task output masks it, but prefer a credential without a password (``sudo -n``)
    for such nodes."""
    first = command.strip().split(None, 1)[0] if command.strip() else ""
    plain = not _SHELL_SYNTAX.search(command) and "=" not in first
    inner = command.strip() if plain else f"/bin/sh -c {shlex.quote(command)}"
    if credential.password:
        return f"sudo -S -p '' -- {inner}", credential.password + "\n"
    return f"sudo -n -- {inner}", None
