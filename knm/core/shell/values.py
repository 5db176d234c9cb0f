"""The values the guard-rail's walk reasons about: a word and every value it may take, a
command that would run, what flows between commands."""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node

from knm.core.shell.programs import program_name

#: An unknown part of a word's value.
U = "\x00"


#: Alternatives kept per word (brace expansion, defaults, for lists).
MAX_ALTS = 32


@dataclass(frozen=True, slots=True)
class Stream:
    """What flows out of a command (or into one): known text, fetched or decoded data, a list
    of every process id, a listing of paths."""

    text: str | None = None
    tainted: bool = False
    pids: bool = False
    paths: tuple[str, ...] = ()
    #: Never ends (``yes``): a ``while read`` loop fed by it runs forever.
    endless: bool = False
    #: Some program's output, not known here (as opposed to a local file or nothing).
    opaque: bool = False


UNKNOWN_STREAM = Stream()


OPAQUE_STREAM = Stream(opaque=True)


class Word:
    """One word of a command: every value it may take (``U`` marks an unknown part)."""

    __slots__ = ("alts", "literal", "pids", "producers", "tainted", "text", "unknown", "value")

    def __init__(
        self, alts: tuple[str, ...], text: str, tainted: bool = False, pids: bool = False,
        producers: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.alts = alts
        self.text = text
        #: Holds fetched or decoded data (``"$(curl ...)"``, ``<(base64 -d ...)``).
        self.tainted = tainted
        #: Holds a list of every process id (``$(ps -e -o pid=)``).
        self.pids = pids
        #: The programs of a command substitution, for ``eval "$(ssh-agent -s)"``.
        self.producers = producers
        first = alts[0] if alts else ""
        self.unknown = U in first if len(alts) == 1 else any(U in alt for alt in alts)
        #: The value, if it is known and single.
        self.literal = first if len(alts) == 1 and not self.unknown else None
        #: The first alternative with unknown parts blanked, for matching options.
        self.value = first.replace(U, "") if self.unknown else first

    @classmethod
    def plain(cls, text: str) -> Word:
        """A word written with no quoting or expansion: its one value is its text."""
        word = object.__new__(cls)
        word.alts = (text,)
        word.text = word.literal = word.value = text
        word.tainted = word.pids = word.unknown = False
        word.producers = ()
        return word

    def with_alts(self, alts: tuple[str, ...]) -> Word:
        return Word(alts, self.text, self.tainted, self.pids, self.producers)

    def __repr__(self) -> str:
        return f"Word({self.alts!r})"


def lit(value: str) -> Word:
    return Word((value,), value)


class Cmd:
    """One program that would run, wrappers peeled off (``words[0]`` is the program)."""

    __slots__ = ("_written", "asynchronous", "cwd", "program", "redirects", "stdin", "words")

    def __init__(
        self, words: list[Word], written: str | Node, redirects: list[tuple[str, Word]] | None = None,
        stdin: Stream = UNKNOWN_STREAM, cwd: str = "/root", asynchronous: bool = False,
    ) -> None:  # fmt: skip
        self.words = words
        #: The command as written (wrappers included): text, or the node it is read from.
        self._written = written
        self.redirects = redirects or []
        self.stdin = stdin
        self.cwd = cwd
        self.asynchronous = asynchronous
        self.program = program_name(words[0].value) if words else ""

    @property
    def written(self) -> str:
        if not isinstance(self._written, str):
            self._written = node_text(self._written)
        return self._written

    @property
    def text(self) -> str:
        return " ".join(w.alts[0].replace(U, "$?") if w.alts else "" for w in self.words)


def node_text(node: Node) -> str:
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def normalize(path: str, cwd: str) -> str:
    """``path`` made absolute against ``cwd`` and lexically normalised (unknown parts kept)."""
    if not path.startswith("/") and not path.startswith(U):
        path = f"{cwd}/{path}" if path else cwd
    if path.startswith(U):
        return path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    while len(parts) >= 3 and parts[0] == "proc" and parts[2] == "root":
        parts = parts[3:]  # ``/proc/1/root/etc``, ``/proc/self/root/``: the root directory
    return "/" + "/".join(parts)


def split_unquoted(text: str) -> list[str]:
    return text.split() or [""]
