"""Arguments that name something on the server, and their live names.

``live(parser.add_argument("name"), "cluster")`` marks an argument where it is defined; the
completion asks the server for the names of that kind. Marking stays cheap (no import beyond
argparse): every parser module uses it while ``knm`` starts.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from knm.client.sync import Client

#: The attribute a marked action carries: the kind of thing it names.
MARK = "knm_live_names"
#: Seconds for the connection and for the answer: a shell waiting on a TAB must not hang.
TIMEOUT = 1.0
#: Seconds for everything the names take: past it, the shell gets none.
DEADLINE = 1.5
#: Names asked for at once (the API's largest page).
PAGE = 100


def live(action: argparse.Action, kind: str) -> argparse.Action:
    """Mark ``action`` as naming a ``kind`` (a key of ``FETCH``) on the server."""
    if kind not in FETCH:
        raise ValueError(f"no live names of kind {kind!r}")  # a typo fails as knm starts
    setattr(action, MARK, kind)
    return action


def kind_of(action: argparse.Action) -> str | None:
    return getattr(action, MARK, None)


Fetch = Callable[["Client", str], list[str]]


def _named(listing: str) -> Fetch:
    """The names of the first page of ``client.<listing>()``."""

    def names(client: Client, prefix: str) -> list[str]:
        return [item.name for item in getattr(client, listing)(page_size=PAGE).items]

    return names


def _tasks(client: Client, prefix: str) -> list[str]:
    return [task.task_id for task in client.tasks(page_size=PAGE).items]


def _library(plural: Literal["playbooks", "scripts", "workflows"]) -> Fetch:
    def names(client: Client, prefix: str) -> list[str]:
        # The search narrows a large library to the names holding the prefix.
        found = getattr(client, plural).list(q=prefix or None, page_size=PAGE)
        return [item.name for item in found.items]

    return names


FETCH: dict[str, Fetch] = {
    "cluster": _named("clusters"),
    "playbook": _library("playbooks"),
    "script": _library("scripts"),
    "workflow": _library("workflows"),
    "task": _tasks,
    "credential": _named("credentials"),
    "window": _named("windows"),
    "subscription": _named("subscriptions"),
}


def fetch(kind: str, prefix: str, url: str | None = None) -> list[str]:
    """The names of ``kind`` starting with ``prefix``, from the server this invocation would
    use (``url``, else ``KNM_URL`` or the login); none when it cannot say in time."""
    from knm.cli.remote.session import UsageError, client_for
    from knm.client import KnmError

    found: list[str] = []

    def ask() -> None:
        try:
            with client_for(argparse.Namespace(url=url), timeout=TIMEOUT) as client:
                found.extend(FETCH[kind](client, prefix))
        except (KnmError, UsageError, OSError):
            pass  # not logged in, server down or slow: no names, and no message in the shell

    # The timeout bounds each step (name lookup aside), and a stored login about to expire
    # costs a refresh first: the deadline bounds them all. A late answer is left behind; the
    # process exits without waiting for it (a daemon thread).
    asking = threading.Thread(target=ask, name="knm-complete", daemon=True)
    asking.start()
    asking.join(DEADLINE)
    if asking.is_alive():
        return []
    return [name for name in found if name.startswith(prefix)]
