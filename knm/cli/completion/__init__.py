"""Shell completion: ``knm completion bash|zsh|fish`` prints a script for the shell; the script
asks ``knm __complete CWORD WORDS...`` for the candidates of the word under the cursor.

The candidates come from the real parser (``knm.cli.main.build_parser``, see ``words``), so a
new command or option completes without an edit here; arguments that name something on the
server are marked where they are defined (``names.live``) and complete with live names.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from knm.cli.completion.scripts import INSTALL, SCRIPTS


def print_script(args: argparse.Namespace) -> int:
    sys.stdout.write(SCRIPTS[args.shell])
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description=f"Print the completion script of a shell on stdout. Install it:\n\n{INSTALL}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=sorted(SCRIPTS))
    p.set_defaults(func=print_script)
