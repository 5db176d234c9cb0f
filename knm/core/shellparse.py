"""Find every simple command a piece of shell would run, for the command policy.

bashlex does the parsing; where it gives up (``case``, ``[[ ]]``, ``$(( ))``, ``time`` ...)
a conservative shlex tokenizer takes over, so that an unparsable command is still checked
rather than waved through. Wrappers that only change *how* a program runs (``sudo``, ``env``,
``timeout``, ...) are peeled off, and the code hidden in ``sh -c``, ``eval``, ``xargs``,
``find -exec``, here-docs and ``echo ... | sh`` is expanded recursively.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import bashlex

# Deeper nesting than this is treated as an evasion attempt rather than parsed forever.
MAX_DEPTH = 8

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "rbash"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_SEPARATORS = frozenset(";&|()\n")
_LEADING_KEYWORDS = frozenset(
    {"{", "}", "!", "if", "then", "else", "elif", "do", "while", "until", "fi", "done", "esac"}
)
_FORK_BOMB = re.compile(
    r"(?:function\s+)?([^\s(){}|&;<>'\"]+)\s*(?:\(\s*\))?\s*\{[^}]*?"
    r"(?<![\w.:-])\1\s*\|\s*\1(?![\w.:-])[^}]*&"
)


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    """One simple command as written: its words (unquoted) and its output redirections."""

    words: tuple[str, ...]
    redirects: tuple[tuple[str, str], ...] = ()
    # Text fed to the command's stdin by a here-doc, here-string or ``echo ... |``.
    stdin_text: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """A command that would actually run, after peeling wrappers such as ``sudo``."""

    words: tuple[str, ...]
    written: tuple[str, ...]
    redirects: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def written_text(self) -> str:
        return " ".join(self.written)


@dataclass(slots=True)
class Analysis:
    commands: list[Command] = field(default_factory=list)
    fork_bombs: list[str] = field(default_factory=list)  # their definitions, as written
    too_deep: bool = False


def analyze(text: str) -> Analysis:
    """Every command `text` would run, including nested and wrapped ones."""
    analysis = Analysis()
    _expand_script(text, 0, analysis)
    return analysis


# --- parsing ------------------------------------------------------------------------------


def parse(text: str) -> tuple[list[SimpleCommand], list[str]]:
    """The simple commands in `text` and the fork-bomb function definitions in it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trees = bashlex.parse(text)
    except Exception:  # bashlex raises a zoo of types on syntax it does not support
        return _fallback_parse(text)
    visitor = _Visitor(text)
    try:
        for tree in trees:
            visitor.visit(tree)
    except RecursionError:
        return _fallback_parse(text)
    return visitor.commands, visitor.fork_bombs


class _Visitor:
    def __init__(self, text: str) -> None:
        self.text = text
        self.commands: list[SimpleCommand] = []
        self.fork_bombs: list[str] = []

    def visit(self, node: bashlex.ast.node, stdin_text: str | None = None) -> None:
        kind = node.kind
        if kind == "command":
            self._command(node, stdin_text)
        elif kind == "pipeline":
            self._pipeline(node)
        else:
            if kind == "function":
                self._function(node)
            for child in _children(node):
                self.visit(child)

    def _word(self, node: bashlex.ast.node) -> str:
        raw = self.text[node.pos[0] : node.pos[1]]
        # bashlex mangles $'/' into "$/" and 'a'"b" into a'"b", both easy evasions.
        return unquote(raw) if any(c in raw for c in "'\"\\") else node.word

    def _command(self, node: bashlex.ast.node, stdin_text: str | None) -> None:
        words: list[str] = []
        redirects: list[tuple[str, str]] = []
        for part in node.parts:
            if part.kind == "word":
                words.append(self._word(part))
            elif part.kind == "redirect":
                target = part.output
                if isinstance(target, bashlex.ast.node) and target.kind == "word":
                    if part.type == "<<<":
                        stdin_text = self._word(target)
                    elif part.type != "<<":
                        redirects.append((part.type, self._word(target)))
                heredoc = getattr(part, "heredoc", None)
                if heredoc is not None:
                    stdin_text = heredoc.value.rsplit("\n", 1)[0]
            for child in _children(part):  # $(...) inside words, assignments and redirects
                self.visit(child)
        self.commands.append(SimpleCommand(tuple(words), tuple(redirects), stdin_text))

    def _pipeline(self, node: bashlex.ast.node) -> None:
        fed: str | None = None
        for part in node.parts:
            if part.kind == "pipe":
                continue
            self.visit(part, stdin_text=fed)
            fed = None
            if part.kind == "command" and self.commands:
                words = self.commands[-1].words
                if words and posixpath.basename(words[0]) in ("echo", "printf"):
                    fed = " ".join(w for w in words[1:] if not w.startswith("-"))
                    fed = fed.replace("\\n", "\n")

    def _function(self, node: bashlex.ast.node) -> None:
        name = node.name.word
        self_calls = 0
        concurrent = False
        for sub in _walk(node.body):
            if sub.kind == "command":
                first = next((p for p in sub.parts if p.kind == "word"), None)
                self_calls += first is not None and first.word == name
            elif (sub.kind == "operator" and sub.op == "&") or sub.kind == "pipe":
                concurrent = True
        # Recursion alone is fine (tree walks); doubling *and* running concurrently is a bomb.
        if self_calls >= 2 and concurrent:
            self.fork_bombs.append(self.text[node.pos[0] : node.pos[1]])


def _children(node: bashlex.ast.node) -> Iterator[bashlex.ast.node]:
    for attr in ("parts", "list"):
        for child in getattr(node, attr, None) or ():
            if isinstance(child, bashlex.ast.node):
                yield child
    for attr in ("command", "output"):
        child = getattr(node, attr, None)
        if isinstance(child, bashlex.ast.node):
            yield child


def _walk(node: bashlex.ast.node) -> Iterator[bashlex.ast.node]:
    yield node
    for child in _children(node):
        yield from _walk(child)


# --- conservative fallback ----------------------------------------------------------------


def _fallback_parse(text: str) -> tuple[list[SimpleCommand], list[str]]:
    fork_bombs = [m.group(0) + " }" for m in _FORK_BOMB.finditer(text)]
    cleaned, bodies = _prescan(text)
    commands: list[SimpleCommand] = []
    for body in bodies:
        nested, bombs = parse(body)
        commands.extend(nested)
        fork_bombs.extend(bombs)
    commands.extend(_group(_tokens(cleaned)))
    return commands, fork_bombs


def _prescan(text: str) -> tuple[str, list[str]]:
    """Drop comments, decode $'...', and lift $(...) / backtick bodies out as commands."""
    out: list[str] = []
    bodies: list[str] = []
    i, n = 0, len(text)
    quote = ""
    while i < n:
        c = text[i]
        if c == "\\" and quote != "'":
            out.append(text[i : i + 2] if text[i + 1 : i + 2] != "\n" else "")
            i += 2
        elif quote == "'":
            out.append(c)
            quote = "" if c == "'" else quote
            i += 1
        elif text.startswith("$(", i):
            end = _matching_paren(text, i + 1)
            bodies.append(text[i + 2 : end])
            out.append("SUBST")
            i = end + 1
        elif c == "`":
            end = text.find("`", i + 1)
            end = n if end < 0 else end
            bodies.append(text[i + 1 : end])
            out.append("SUBST")
            i = end + 1
        elif quote == '"':
            out.append(c)
            quote = "" if c == '"' else quote
            i += 1
        elif text.startswith("$'", i):
            end = text.find("'", i + 2)
            while end > 0 and text[end - 1] == "\\":
                end = text.find("'", end + 1)
            end = n if end < 0 else end
            out.append(shlex.quote(unquote(text[i : end + 1])))
            i = end + 1
        elif c in "'\"":
            quote = c
            out.append(c)
            i += 1
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            out.append(c)
            i += 1
    return "".join(out), bodies


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(text)


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: split crudely rather than give up
        return [t.strip("'\"") for t in re.findall(r"[;&|()<>\n]+|[^\s;&|()<>]+", text)]


def _group(tokens: Sequence[str]) -> Iterator[SimpleCommand]:
    words: list[str] = []
    redirects: list[tuple[str, str]] = []
    i = 0
    while i <= len(tokens):
        token = tokens[i] if i < len(tokens) else "\n"
        is_punct = bool(token) and set(token) <= _SEPARATORS | {"<", ">"}
        if is_punct and ("<" in token or ">" in token):
            if i + 1 < len(tokens) and ">" in token:
                redirects.append((token, tokens[i + 1]))
            i += 2
            continue
        if is_punct:
            if words or redirects:
                yield SimpleCommand(tuple(words), tuple(redirects))
            words, redirects = [], []
        elif not words and token in _LEADING_KEYWORDS:
            pass
        else:
            words.append(token)
        i += 1


# --- quoting helpers ----------------------------------------------------------------------


def unquote(raw: str) -> str:
    """Remove shell quoting from one word, decoding ``$'...'`` the way bash does."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            out.append(raw[i + 1 : i + 2])
            i += 2
        elif raw.startswith("$'", i):
            j = i + 2
            while j < n and raw[j] != "'":
                j += 2 if raw[j] == "\\" else 1
            out.append(_ansi_c(raw[i + 2 : j]))
            i = j + 1
        elif c == "'":
            j = raw.find("'", i + 1)
            j = n if j < 0 else j
            out.append(raw[i + 1 : j])
            i = j + 1
        elif raw.startswith('$"', i):
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and raw[j] != '"':
                if raw[j] == "\\" and j + 1 < n and raw[j + 1] in '"\\$`':
                    j += 1
                out.append(raw[j])
                j += 1
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ansi_c(body: str) -> str:
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return body


# --- expansion of wrappers and nested code ------------------------------------------------


def _expand_script(text: str, depth: int, analysis: Analysis) -> None:
    if depth > MAX_DEPTH:
        analysis.too_deep = True
        return
    try:
        simple_commands, fork_bombs = parse(text)
    except RecursionError:
        analysis.too_deep = True
        return
    analysis.fork_bombs.extend(fork_bombs)
    for simple in simple_commands:
        _expand(simple, depth, analysis)


def _expand(simple: SimpleCommand, depth: int, analysis: Analysis) -> None:
    if depth > MAX_DEPTH:
        analysis.too_deep = True
        return
    words = unwrap(simple.words)
    analysis.commands.append(Command(tuple(words), simple.words, simple.redirects))
    if not words:
        return
    program, args = words[0], words[1:]
    if program in SHELLS:
        code = _shell_code(args)
        if code is None and _reads_stdin(args):
            code = simple.stdin_text
        if code is not None:
            _expand_script(code, depth + 1, analysis)
    elif program == "su":
        code = _option_value(args, "c", "command")
        if code is not None:
            _expand_script(code, depth + 1, analysis)
    elif program == "eval":
        _expand_script(" ".join(args), depth + 1, analysis)
    elif program == "xargs":
        inner = _skip_options(args, "adEILnPs", _XARGS_LONG)
        if inner:
            _expand(SimpleCommand(tuple(inner)), depth + 1, analysis)
    elif program == "find":
        for inner in find_exec_commands(args):
            _expand(SimpleCommand(tuple(inner)), depth + 1, analysis)


_XARGS_LONG = frozenset(
    {"arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"}
)
_SUDO_LONG = frozenset(
    {"user", "group", "chdir", "prompt", "role", "type", "other-user", "close-from", "host",
     "command-timeout", "chroot"}
)  # fmt: skip
# Wrapper -> (short options taking an argument, long options taking one, leading operands).
_WRAPPERS: dict[str, tuple[str, frozenset[str], int]] = {
    "sudo": ("ugCDprtUTR", _SUDO_LONG, 0),
    "doas": ("uC", frozenset(), 0),
    "env": ("uC", frozenset({"unset", "chdir"}), 0),
    "nohup": ("", frozenset(), 0),
    "timeout": ("sk", frozenset({"signal", "kill-after"}), 1),
    "nice": ("n", frozenset({"adjustment"}), 0),
    "ionice": ("cnpPu", frozenset({"class", "classdata", "pid", "pgid", "uid"}), 0),
    "stdbuf": ("ioe", frozenset({"input", "output", "error"}), 0),
    "exec": ("a", frozenset(), 0),
    "command": ("", frozenset(), 0),
    "builtin": ("", frozenset(), 0),
    "time": ("fo", frozenset({"format", "output"}), 0),
    "setsid": ("", frozenset(), 0),
    "nsenter": ("tSG", frozenset({"target", "setuid", "setgid"}), 0),
    "busybox": ("", frozenset(), 0),
}


def program_name(word: str) -> str:
    return posixpath.basename(word.lstrip("\\")) or word


def unwrap(words: Sequence[str]) -> list[str]:
    """Strip assignments and wrapper programs, leaving the program that really runs."""
    rest = list(words)
    while True:
        while rest and _ASSIGNMENT.match(rest[0]):
            rest = rest[1:]
        if not rest:
            return rest
        program = program_name(rest[0])
        rest = [program, *rest[1:]]
        spec = _WRAPPERS.get(program)
        if spec is None:
            return rest
        args = rest[1:]
        if program == "command" and any(
            "v" in a or "V" in a for a in itertools.takewhile(lambda a: a[:1] == "-", args)
        ):
            return rest  # only looks the name up
        if program == "env":
            split = _option_value(args, "S", "split-string")
            if split is not None:
                inner = _skip_options(args, "uCS", frozenset({"unset", "chdir", "split-string"}))
                rest = [*_split(split), *inner]
                continue
        inner = _skip_options(args, spec[0], spec[1])[spec[2] :]
        if not inner:
            return rest
        rest = inner


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _skip_options(
    args: Sequence[str], short_with_arg: str, long_with_arg: frozenset[str]
) -> list[str]:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return list(args[i + 1 :])
        if arg.startswith("--"):
            name, eq, _ = arg[2:].partition("=")
            i += 2 if (not eq and name in long_with_arg) else 1
        elif arg.startswith("-") and len(arg) > 1:
            i += 1
            for j, flag in enumerate(arg[1:], start=1):
                if flag in short_with_arg:
                    i += j == len(arg) - 1  # the value is the next word, not attached
                    break
        else:
            break
    return list(args[i:])


def _option_value(args: Sequence[str], short: str, long: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--":
            return None
        if arg.startswith(f"--{long}="):
            return arg.partition("=")[2]
        if arg == f"--{long}" or (
            arg.startswith("-") and not arg.startswith("--") and arg.endswith(short)
        ):
            return args[i + 1] if i + 1 < len(args) else None
        if arg.startswith(f"-{short}") and len(arg) > 2:
            return arg[2:]
    return None


def _shell_code(args: Sequence[str]) -> str | None:
    """The ``-c`` string of a shell invocation, if any."""
    has_c = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-o", "+o", "--rcfile", "--init-file", "-O", "+O"):
            i += 2
            continue
        if arg[:1] in "-+" and len(arg) > 1:
            has_c = has_c or (not arg.startswith("--") and "c" in arg)
            i += 1
            continue
        break
    return args[i] if has_c and i < len(args) else None


def _reads_stdin(args: Sequence[str]) -> bool:
    operands = [a for a in args if not a.startswith(("-", "+"))]
    return not operands or "-s" in args


def find_exec_commands(args: Sequence[str]) -> Iterator[list[str]]:
    """The commands run by ``find ... -exec CMD {} ;`` (and -execdir, -ok, -okdir)."""
    i = 0
    while i < len(args):
        if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(args) and args[j] not in (";", "+"):
                j += 1
            yield list(args[i + 1 : j])
            i = j
        i += 1
