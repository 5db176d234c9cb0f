"""YAML (and JSON, which is YAML too) as users give it to ``-f FILE``, ``--kubeconfig FILE`` or
an editor: read from a path or stdin, and parsed, or refused in their words, at the line and
column where it went wrong (``flow.yaml, line 2, column 10: not valid YAML or JSON: expected
',' or '}', but got '<stream end>' (while parsing a flow mapping at line 1, column 8)``).

PyYAML is imported when something is parsed, not when a command's parser is built.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from knm.cli.remote.session import UsageError


class NotYaml(UsageError):
    """Text that does not parse: ``source`` (a file, ``stdin``, an option), ``at`` (``line L,
    column C``, or empty when the parser gave no place) and the ``problem``."""

    def __init__(self, source: str, at: str, problem: str) -> None:
        self.at = at
        self.problem = problem
        place = f"{source}, {at}" if at else source
        super().__init__(f"{place}: not valid YAML or JSON: {problem}")

    @property
    def note(self) -> str:
        """The problem without its source, for a note in the text itself (``edit``)."""
        return f"{self.at + ': ' if self.at else ''}not valid YAML: {self.problem}"


def _place(mark: Any) -> str:
    # PyYAML's marks count from 0; editors and the server's messages from 1.
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _place_of(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def refused(source: str, exc: Exception, text: str) -> NotYaml:
    """PyYAML's error about ``text`` as a ``NotYaml``: its problem at its place, and what the
    parser was in the middle of (``while parsing a block mapping at line 1, column 1``)."""
    import yaml

    if isinstance(exc, yaml.reader.ReaderError):
        # A character YAML does not allow (a control character): placed by its offset.
        found = f"#x{exc.character:04x}" if isinstance(exc.character, int) else exc.character
        return NotYaml(source, _place_of(text, exc.position), f"{exc.reason}: {found}")
    problem = getattr(exc, "problem", None)
    if problem is None:
        return NotYaml(source, "", " ".join(str(exc).split()))
    context = getattr(exc, "context", None)
    if context:
        where = _place(getattr(exc, "context_mark", None))
        problem += f" ({context}{f' at {where}' if where else ''})"
    return NotYaml(source, _place(getattr(exc, "problem_mark", None)), problem)


def read_text(path: str) -> str:
    """The text of the file at ``path`` (``~`` expanded), or stdin's for ``-``."""
    return sys.stdin.read() if path == "-" else Path(path).expanduser().read_text()


def load(text: str, source: str) -> Any:
    """The one document of ``text``; a ``NotYaml`` naming ``source`` when it does not parse."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise refused(source, exc, text) from None


def load_all(text: str, source: str) -> list[Any]:
    """Every document of ``text`` (``---`` between them); a ``NotYaml`` naming ``source`` when
    one does not parse, before any is used."""
    import yaml

    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise refused(source, exc, text) from None
