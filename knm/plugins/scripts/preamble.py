"""What a script run sends to a node: one fixed command line, and a program on its stdin.

The command line is ``exec sh -s`` (with sudo: ``exec sudo … /bin/sh -c '<skip to the start
marker>; exec sh -s'``) and carries nothing of the script or its parameters: argv is visible
to every user of the node (``ps``), stdin is not. The program on stdin is a small POSIX sh wrapper:

1. It picks the interpreter: ``bash`` for shell scripts (``sh`` when bash is absent, saying so
   on stderr), ``python3`` for python; a missing python3 exits 127 with ``MISSING_MARK``.
2. In a subshell it exports the parameters, each a shell-quoted ``export NAME='value'`` line,
   so a value is only ever data (``$(…)``, quotes, backticks and newlines run nothing), and
   execs the interpreter on the script, which arrives as a quoted here-document (no expansion)
   on file descriptor 3 for shell (its stdin is /dev/null, so a command reading stdin cannot
   swallow the rest of the script) and on stdin for python (which reads all of it before it
   runs anything). The delimiter is random and never a line of the script.
3. The interpreter runs in a process group of its own (``setsid``, else ``set -m``), in the
   background; the wrapper waits for it. When the task is cancelled or times out the
   transport sends SIGTERM to the wrapper, which passes it on to the whole group, so nothing
   the script started is left behind. A script killed by a signal is reported as killed by
   that signal.

Secret values are in the wrapper's memory and the interpreter's environment
(``/proc/<pid>/environ`` is readable by its own user and root only), never in argv.
"""

from __future__ import annotations

import re
import secrets
import shlex
from typing import Any

from knm.core.sudo import sudo_command

#: What the wrapper prints on stderr when bash is absent and sh runs the script instead.
SH_FALLBACK_MARK = "knm: bash is not installed; running the script with sh"
#: What the wrapper prints on stderr (exit code 127) when the interpreter is absent.
MISSING_MARK = "knm: interpreter not installed:"
#: The line after sudo's password: everything before it is skipped (see ``command_for``).
SUDO_START = "KNM_SCRIPT_START"
NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

_PICK = {
    "shell": (
        "if command -v bash >/dev/null 2>&1; then knm_interp=bash; else\n"
        f"  echo '{SH_FALLBACK_MARK}' >&2; knm_interp=sh\nfi\n"
    ),
    "python": (
        "if ! command -v python3 >/dev/null 2>&1; then\n"
        f"  echo '{MISSING_MARK} python3 is not on this node' >&2; exit 127\nfi\n"
        "knm_interp=python3\n"
    ),
}
# How the interpreter reads the script: shell from fd 3 (stdin stays /dev/null), python from
# stdin (it reads the whole program before running it).
_SOURCE = {"shell": ("/dev/fd/3", "3<<"), "python": ("-", "<<")}
_TAIL = """\
knm_pid=$!
trap 'kill -TERM "-$knm_pid" 2>/dev/null || kill -TERM "$knm_pid" 2>/dev/null' TERM HUP INT
wait "$knm_pid"; knm_rc=$?
# A trapped signal interrupts wait; wait again until the script is really gone.
while kill -0 "$knm_pid" 2>/dev/null; do wait "$knm_pid"; knm_rc=$?; done
if [ "$knm_rc" -gt 128 ] && [ "$knm_rc" -lt 193 ]; then
  trap - TERM HUP INT
  kill -s "$(kill -l "$knm_rc")" $$ 2>/dev/null
fi
exit "$knm_rc"
"""


def exports(values: dict[str, str]) -> str:
    """``export NAME='value'`` lines; names are checked again here, values always quoted."""
    lines = []
    for name, value in values.items():
        if not NAME.match(name):
            raise ValueError(f"invalid parameter name {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines)


def delimiter_for(script: str) -> str:
    lines = set(script.splitlines())
    while True:
        candidate = f"KNM_EOF_{secrets.token_hex(8)}"
        if candidate not in lines:
            return candidate


def program(language: str, script: str, values: dict[str, str]) -> str:
    """The wrapper program (sent on stdin to ``sh -s``) running ``script`` with ``values``."""
    source, redirect = _SOURCE[language]
    end = delimiter_for(script)
    body = script if script.endswith("\n") else script + "\n"
    launch = (
        f'if [ -n "$knm_setsid" ]; then exec setsid "$knm_interp" {source}; '
        f'else exec "$knm_interp" {source}; fi\n'
    )
    stdin = "</dev/null " if language == "shell" else ""
    return (
        _PICK[language]
        + "if command -v setsid >/dev/null 2>&1; then knm_setsid=1; else knm_setsid=; "
        "set -m 2>/dev/null; fi\n"
        + "(\n"
        + exports(values)
        + launch
        + f") {redirect}'{end}' {stdin}&\n"
        + body
        + f"{end}\n"
        + _TAIL
    )


def command_for(sudo: bool, credential: Any) -> tuple[str, str]:
    """``(command line, what goes on stdin ahead of the program)``.

    With sudo, ``sudo -S`` reads the password line from stdin and leaves the rest to the
    shell; the shell skips every line up to ``SUDO_START`` first, so a ``NOPASSWD`` rule (sudo
    reads no password) never makes it run the password line as a command."""
    # ``exec``: the login shell steps aside, so a signal that kills the script is what the
    # SSH server reports, as for any command.
    if not sudo:
        return "exec sh -s", ""
    skip = f'while IFS= read -r knm_line; do [ "$knm_line" = {SUDO_START} ] && break; done'
    command, secret = sudo_command(f"{skip}; exec sh -s", credential)
    return f"exec {command}", (secret or "") + SUDO_START + "\n"
