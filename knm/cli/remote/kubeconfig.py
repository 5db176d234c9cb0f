"""Kubeconfigs as ``knm cluster create`` reads them: from a path (or stdin) into the text the
``kubernetes`` provider stores, with the context checked against the file before any request.

The provider's ``kubeconfig`` field is the file's text, never its path (the path means nothing
on the server). A value that parses as one plain string is taken for a path given where the
text belongs, and refused with the option that reads the file.
"""

from __future__ import annotations

from typing import Any

from knm.cli.remote import yaml_input
from knm.cli.remote.session import UsageError

#: Longest value quoted back in a message: a path, never a kubeconfig's secrets.
QUOTED = 120


def _contexts(doc: dict[str, Any]) -> list[str]:
    return [
        str(entry.get("name"))
        for entry in doc.get("contexts") or []
        if isinstance(entry, dict) and entry.get("name")
    ]


def read(path: str, context: str | None) -> str:
    """The text of the kubeconfig at ``path`` (``-``: stdin), checked to be a kubeconfig with
    ``context`` (or a current-context when None)."""
    if "\n" in path:
        # Never echoed: it is the kubeconfig's text, with its credentials.
        raise UsageError("--kubeconfig takes the kubeconfig file's path ('-': stdin), not its text")
    where = "stdin" if path == "-" else path
    text = yaml_input.read_text(path)
    doc = yaml_input.load(text, f"--kubeconfig {where}")
    if not isinstance(doc, dict) or not isinstance(doc.get("contexts"), list):
        raise UsageError(f"--kubeconfig {where}: not a kubeconfig (it has no contexts list)")
    known = _contexts(doc)
    choices = ", ".join(known) or "none"
    if context is not None and context not in known:
        raise UsageError(f"--context {context}: {where} has no such context; it has: {choices}")
    current = doc.get("current-context")
    if context is None and not current:
        raise UsageError(f"{where} has no current-context: give --context, one of: {choices}")
    if context is None and current not in known:
        raise UsageError(
            f"{where}: its current-context {current} is not among its contexts: "
            f"give --context, one of: {choices}"
        )
    return text


def path_problem(value: Any, where: str) -> str | None:
    """Why ``value``, given as a kubeconfig's text in ``where``, looks like a path instead."""
    import yaml

    if not isinstance(value, str) or "\n" in value.strip():
        return None
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return None
    if not isinstance(parsed, str):
        return None
    shown = value if len(value) <= QUOTED else value[:QUOTED] + "..."
    return (
        f"{where}: kubeconfig must hold the kubeconfig's text, and {shown!r} looks like a path; "
        f"to read the file, give it with --kubeconfig {shown}"
    )
