"""Rendering ``{{ params.name }}`` and ``{{ steps.<id>.<key> }}`` in step fields.

Only these two namespaces are rendered; every other ``{{ … }}`` (Ansible's own Jinja in
``extra_vars``) passes through untouched.

A value never becomes part of a shell command's text. In a ``command`` field each reference is
replaced by a quoted reference to a shell variable (``"${KNM_P_name}"``), and the command is
preceded by assignments of the values, each quoted as one single-quoted word. The reference is
written for the quoting context it stands in — ``"${V}"`` outside quotes, ``${V}`` inside double
quotes and unquoted here-documents, ``'"${V}"'`` inside single quotes (close, reference, reopen)
— so whatever a value holds, the command receives it as exactly that text and it can add no shell
syntax. Where no such reference exists (arithmetic ``$(( ))``, a quoted here-document) rendering
is refused.

A parameter declared ``type: command`` is the one exception: it is a whole command, allowed only
as a ``command`` field's entire text, rendered as written and checked by the command guard-rail
like any command. A field that is exactly one reference to an ``integer`` or ``boolean``
parameter renders to that type (``"drain_timeout": "{{ params.drain_timeout }}"`` → 600).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

PATTERN = re.compile(r"\{\{\s*(params|steps)\.([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*\}\}")
WHOLE = re.compile(r"^\s*\{\{\s*(params|steps)\.([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*\}\}\s*$")
SHELL_FIELDS = frozenset({"command"})
_NAME = re.compile(r"[^A-Za-z0-9_]")


class RenderError(Exception):
    pass


def references(value: Any) -> Iterator[tuple[str, str]]:
    """Every (namespace, name) a value refers to."""
    if isinstance(value, str):
        for match in PATTERN.finditer(value):
            yield match.group(1), match.group(2)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def whole_reference(text: Any) -> tuple[str, str] | None:
    """The (namespace, name) when ``text`` is nothing but one reference."""
    if not isinstance(text, str):
        return None
    match = WHOLE.match(text)
    return (match.group(1), match.group(2)) if match else None


def _lookup(
    namespace: str, name: str, params: Mapping[str, str], steps: Mapping[str, dict[str, Any]]
) -> str:
    if namespace == "params":
        if name not in params:
            raise RenderError(f"parameter {name!r} has no value")
        return str(params[name])
    step_id, _, key = name.partition(".")
    if step_id not in steps:
        raise RenderError(f"step {step_id!r} has no result yet")
    value: Any = steps[step_id]
    for part in key.split(".") if key else []:
        if not isinstance(value, dict) or part not in value:
            raise RenderError(f"step {step_id!r} has no result {key!r}")
        value = value[part]
    return value if isinstance(value, str) else str(value)


def typed(kind: str, name: str, text: str) -> Any:
    """A parameter's value as its declared type (``integer``, ``boolean``; else the text)."""
    if kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise RenderError(f"parameter {name!r} must be an integer, not {text!r}") from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off", ""):
            return False
        raise RenderError(f"parameter {name!r} must be true or false, not {text!r}")
    return text


def render(
    value: Any,
    params: Mapping[str, str],
    steps: Mapping[str, dict[str, Any]],
    *,
    types: Mapping[str, str] | None = None,
) -> Any:
    """Plain rendering, for fields that are not shell commands (``command`` fields go through
    :func:`render_command`)."""
    types = types or {}
    if isinstance(value, str):
        whole = whole_reference(value)
        if whole and whole[0] == "params" and types.get(whole[1]) in ("integer", "boolean"):
            return typed(types[whole[1]], whole[1], _lookup(*whole, params, steps))
        return PATTERN.sub(lambda m: _lookup(m.group(1), m.group(2), params, steps), value)
    if isinstance(value, dict):
        return {k: render(v, params, steps, types=types) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, params, steps, types=types) for v in value]
    return value


# --- commands -------------------------------------------------------------------------------


class Command(msgspec.Struct, kw_only=True):
    """A rendered ``command`` field."""

    #: What runs: the values' assignments, then the command with quoted references.
    run: str
    #: The same command with each value inlined as one shell-quoted word: what the guard-rail
    #: reads (it means the same as ``run``, and names no variables it would have to guess at).
    checked: str
    #: The values rendered into it, in order (each is checked as a command too).
    values: list[str]


# Quoting contexts of the scanner.
_PLAIN, _SINGLE, _DOUBLE, _ANSI, _BRACE, _SUBST, _BACKTICK, _ARITH, _HEREDOC, _LITERAL_DOC = (
    "plain",
    "single",
    "double",
    "ansi",
    "brace",
    "subst",
    "backtick",
    "arith",
    "heredoc",
    "literal_doc",
)
_COMMENT = "comment"
_WORD_BREAK = frozenset(" \t\n;&|()<>")
_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:'([^'\n]*)'|\"([^\"\n]*)\"|\\?([A-Za-z0-9_.-]+))")


class _Scanner:
    """Follows the shell's quoting through the literal text between references, so each
    reference can be written for the context it stands in."""

    def __init__(self) -> None:
        self.stack: list[str] = [_PLAIN]
        self.prev = "\n"
        #: Here-documents whose bodies start at the next newline: (delimiter, quoted, strip tabs).
        self.pending: list[tuple[str, bool, bool]] = []
        #: The here-document being read: (delimiter, strip tabs) and the current line so far.
        self.doc: tuple[str, bool] | None = None
        self.line = ""
        self.paren = [0]

    @property
    def top(self) -> str:
        return self.stack[-1]

    def _quoted_parent(self) -> bool:
        """Whether a ``${ … }`` opened inside double quotes (or a here-document)."""
        for context in reversed(self.stack[:-1]):
            if context in (_DOUBLE, _HEREDOC):
                return True
            if context in (_PLAIN, _SUBST, _BACKTICK):
                return False
        return False

    def context(self) -> str:
        top = self.top
        if top == _BRACE:
            return _DOUBLE if self._quoted_parent() else _PLAIN
        return top

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        top = self.top
        if top in (_HEREDOC, _LITERAL_DOC):
            return self._doc_char(text, i)
        if top == _COMMENT:
            if c != "\n":
                return i + 1
            self.stack.pop()
            top = self.top
        if top == _SINGLE:
            if c == "'":
                self.stack.pop()
            self.prev = c
            return i + 1
        if top == _ANSI:
            if c == "\\":
                self.prev = c
                return i + 2
            if c == "'":
                self.stack.pop()
            self.prev = c
            return i + 1
        if c == "\\":
            if nxt == "\n" and top != _SINGLE:
                self.prev = " "
            else:
                self.prev = "x"
            return i + 2
        if top == _DOUBLE:
            if c == '"':
                self.stack.pop()
            elif c == "`":
                self.stack.append(_BACKTICK)
            elif c == "$":
                return self._dollar(text, i)
            self.prev = c
            return i + 1
        # plain, brace, command substitution, backticks, arithmetic
        if c == "'" and top != _ARITH and not (top == _BRACE and self._quoted_parent()):
            self.stack.append(_SINGLE)
        elif c == '"':
            self.stack.append(_DOUBLE)
        elif c == "$":
            return self._dollar(text, i)
        elif c == "`":
            if top == _BACKTICK:
                self.stack.pop()
            else:
                self.stack.append(_BACKTICK)
        elif c == "}" and top == _BRACE:
            self.stack.pop()
        elif c == "(" and top in (_SUBST, _ARITH):
            self.paren[-1] += 1
        elif c == ")" and top in (_SUBST, _ARITH):
            if self.paren[-1] > 0:
                self.paren[-1] -= 1
            else:
                self.paren.pop()
                self.stack.pop()
                if top == _ARITH and i + 1 < len(text) and text[i + 1] == ")":
                    self.prev = ")"
                    return i + 2
        elif c == "#" and self.prev in _WORD_BREAK and top != _ARITH:
            self.stack.append(_COMMENT)
        elif c == "<" and nxt == "<" and top != _ARITH:
            match = _HEREDOC.match(text, i)
            if match and not text.startswith("<<<", i):
                strip = bool(match.group(1))
                word = match.group(2) if match.group(2) is not None else match.group(3)
                quoted = word is not None or text[match.start(4) - 1] == "\\"
                word = word if word is not None else match.group(4)
                self.pending.append((word, quoted, strip))
                self.prev = "x"
                return match.end()
        elif c == "\n" and self.pending:
            self._start_doc()
            self.prev = "\n"
            return i + 1
        self.prev = c
        return i + 1

    def _dollar(self, text: str, i: int) -> int:
        if text.startswith("$((", i):
            self.stack.append(_ARITH)
            self.paren.append(0)
            return i + 3
        if text.startswith("$(", i):
            self.stack.append(_SUBST)
            self.paren.append(0)
            self.prev = "("
            return i + 2
        if text.startswith("${", i):
            self.stack.append(_BRACE)
            return i + 2
        if text.startswith("$'", i) and self.top != _DOUBLE:
            self.stack.append(_ANSI)
            return i + 2
        self.prev = "$"
        return i + 1

    def _start_doc(self) -> None:
        word, quoted, strip = self.pending.pop(0)
        self.stack.append(_LITERAL_DOC if quoted else _HEREDOC)
        self.doc = (word, strip)
        self.line = ""

    def _doc_char(self, text: str, i: int) -> int:
        c = text[i]
        assert self.doc is not None
        if c == "\n":
            word, strip = self.doc
            line = self.line.lstrip("\t") if strip else self.line
            self.line = ""
            if line == word:
                self.stack.pop()
                self.doc = None
                if self.pending:
                    self._start_doc()
            return i + 1
        if self.top == _HEREDOC and c == "\\":
            self.line += text[i : i + 2]
            return i + 2
        if self.top == _HEREDOC and c == "$" and text.startswith("$(", i):
            # Expansions inside an unquoted here-document: a nested substitution is code.
            self.line += "\x00"
            self.stack.append(_SUBST)
            self.paren.append(0)
            self.prev = "("
            return i + 2
        self.line += c
        return i + 1

    def end_problem(self) -> str | None:
        if self.top == _HEREDOC or self.top == _LITERAL_DOC:
            return None if self.doc and self.line == self.doc[0] else "an unfinished here-document"
        if len(self.stack) > 1:
            return f"an unclosed {self.top} context"
        return None


def _variable(namespace: str, name: str, taken: dict[tuple[str, str], str]) -> str:
    key = (namespace, name)
    if key not in taken:
        base = ("KNM_P_" if namespace == "params" else "KNM_S_") + _NAME.sub("_", name)
        variable, n = base, 2
        while variable in taken.values():
            variable, n = f"{base}_{n}", n + 1
        taken[key] = variable
    return taken[key]


def _reference(variable: str, context: str) -> str:
    if context in (_PLAIN, _SUBST, _BACKTICK, _COMMENT):
        return f'"${{{variable}}}"'
    if context in (_DOUBLE, _HEREDOC):
        return f"${{{variable}}}"
    if context == _SINGLE:
        return f"'\"${{{variable}}}\"'"
    if context == _ANSI:
        return f"'\"${{{variable}}}\"$'"
    if context == _ARITH:
        raise RenderError("a value cannot be rendered into arithmetic $(( … ))")
    raise RenderError("a value cannot be rendered into a quoted here-document")


def render_command(
    template: str,
    params: Mapping[str, str],
    steps: Mapping[str, dict[str, Any]],
    *,
    types: Mapping[str, str] | None = None,
) -> Command:
    types = types or {}
    whole = whole_reference(template)
    if whole and whole[0] == "params" and types.get(whole[1]) == "command":
        text = _lookup(*whole, params, steps)
        return Command(run=text, checked=text, values=[])
    scanner = _Scanner()
    taken: dict[tuple[str, str], str] = {}
    values: dict[str, str] = {}
    run: list[str] = []
    checked: list[str] = []
    position = 0
    for match in PATTERN.finditer(template):
        literal = template[position : match.start()]
        scanner.feed(literal)
        run.append(literal)
        checked.append(literal)
        namespace, name = match.group(1), match.group(2)
        if namespace == "params" and types.get(name) == "command":
            raise RenderError(
                f"parameter {name!r} is a whole command (type: command): it can only be a "
                "command field's entire text"
            )
        value = _lookup(namespace, name, params, steps)
        variable = _variable(namespace, name, taken)
        values[variable] = value
        context = scanner.context()
        run.append(_reference(variable, context))
        checked.append(_inlined(value, context))
        position = match.end()
    rest = template[position:]
    run.append(rest)
    checked.append(rest)
    if not values:
        return Command(run=template, checked=template, values=[])
    scanner.feed(rest)
    assignments = "".join(f"{v}={shlex.quote(text)}\n" for v, text in values.items())
    return Command(
        run=assignments + "".join(run), checked="".join(checked), values=list(values.values())
    )


def _inlined(value: str, context: str) -> str:
    """The value as the guard-rail should read it: one word in ``context``."""
    if context == _SINGLE:
        return "'" + shlex.quote(value) + "'"
    if context in (_DOUBLE, _HEREDOC):
        return re.sub(r'([$`"\\])', r"\\\1", value)
    return shlex.quote(value)
