"""The top-level structure of shell text, found without the full parser.

tree-sitter-bash parses in C, but some 64 KiB shapes cost it far more than their size suggests:
every pipeline stage costs several times a statement, and a pipeline of quoted words (``"a" |
"a" | ...``) or a run of ``((1)) ((1)) ...`` is *quadratic* (seconds for 64 KiB). This lexer
finds, in one linear pass, the boundaries bash itself sees at the top level -- statements
(``;``, ``&``, newline), and-or lists (``&&``, ``||``) and pipeline stages (``|``, ``|&``) --
so that the checker hands the parser only small, separate pieces (and each distinct piece
once), and runs plain commands (no quoting, expansion or redirection) with no parse at all.

It only has to be right where it splits: quotes, escapes, comments, ``$( )``, ``( )``,
``${ }``, back-quotes, ``$(( ))``, ``{ }`` groups, ``if``/``case``/``do`` blocks, ``[[ ]]`` and
here-documents are followed (a statement ended on its here-doc's line, ``cat <<E; rm x``, is
given its bodies from the lines after: ``Item.tail``), and a piece that holds anything it does
not follow exactly (a redirection or here-doc at the top level, ``!``/``time``/``coproc``
before a pipeline) is left whole, as the parser would see it. Blanks are only space, tab and
newline, as in bash (a vertical tab is part of a word). What it cannot follow -- a here-doc's
body inside ``(( ))`` -- gives ``None``: the caller then parses the whole text if it is short
(and refuses it if not). A piece the parser finds an error in also sends the caller back
to the whole text (error recovery depends on context), so the result never differs from the
parse of the whole text (``tests/core/test_shellparse_split.py`` compares the two).

As it goes it also counts what costs the checker most (``Limits``, ``Counts``: commands, word
parts, functions) and refuses text past a limit at once (``TooComplex``), recognises syntax
errors bash refuses (``ShellSyntaxError``) -- tree-sitter-bash's error recovery can be
quadratic in the length of such text -- and marks where a long command may be cut into chunks
that parse alone (``split``'s ``marks``), so that an error only the parser sees is found chunk
by chunk, in linear time, before the whole is parsed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

#: Words that are syntax at the start of a command; a piece starting with one is never "plain".
RESERVED = frozenset({"!", "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for",
                      "function", "if", "in", "select", "then", "time", "until", "while", "{",
                      "}", "[[", "]]"})  # fmt: skip

#: Words that start a compound command: a function's body (after ``NAME ( )``) is one.
_BODIES = frozenset({"{", "if", "while", "until", "for", "select", "case", "[["})

#: The least length of a chunk of a long statement checked alone (``probe``).
CHUNK = 512
#: How the text between two chunk marks of one key is parsed alone (``split``'s ``marks``):
#: whole arguments of one command, as the arguments of ``:``; whole statements of a body or a
#: condition, as they are; whole terms of a ``[[ ]]`` joined by ``&&``/``||`` (each chunk but
#: the first starting with its operator, which is dropped), inside ``[[ ]]``.
ARGUMENTS, STATEMENTS, TERMS = 0, 1, 2
#: Constructs open at once beyond which the text goes to the parser whole (the checker's own
#: nesting limit, ``shellparse.MAX_NESTING``, then refuses it quickly). Above that limit, so
#: that text nested up to it is still counted (``Limits``).
MAX_OPEN = 128

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t]+)
    |(?P<nl>\n)
    |(?P<esc>\\.|\\\Z)
    |(?P<sq>'[^']*')
    |(?P<ansi>\$'(?:[^'\\]|\\.)*')
    |(?P<unclosed>\$?')
    |(?P<dq>")
    |(?P<arith>\$\(\(|\(\()
    |(?P<cmdsub>\$\()
    |(?P<param>\$\{)
    |(?P<bt>`)
    |(?P<procsub>[<>]\()
    |(?P<heredoc>[0-9]*<<-?(?!<))
    |(?P<redir>[0-9]*(?:&>>|&>|>&|<&|>>|>\||<>|<<<|>|<))
    |(?P<op>\|\||&&|;;&|;;|;&|\|&|[;&|])
    |(?P<lparen>\()
    |(?P<rparen>\))
    |(?P<word>[^ \t\n'"\\`$()<>;&|]+|\$)
    """,
    re.X | re.S,
)
#: Inside double quotes only these matter.
_DQ = re.compile(r'[^"\\$`]+|\\.|\$\(\(|\$\(|\$\{|\$|`|"', re.S)
#: Inside ``${ }``.
_PARAM = re.compile(r"[^}'\"\\$`]+|\\.|\$\(\(|\$\(|\$\{|\$|`|'[^']*'|\"|\}", re.S)
#: Runs of text with no quoting, expansion, grouping or redirection at all.
_PLAIN_RUN = re.compile(r"[A-Za-z0-9_./:,+@%^=\- \t\n;&|]+")
_PLAIN_SPLIT = re.compile(r"(&&|\|\||[;&|\n])")
#: A reserved word where a command starts: the text from there is scanned token by token.
_RESERVED_WORD = re.compile(
    r"(?:^|(?<=[;&|\n]))[ \t]*(?:case|coproc|do|done|elif|else|esac|fi|for|function|if|in|"
    r"select|then|time|until|while)(?=[ \t\n;&|]|$)"
)
#: Bash's blanks are only space, tab and newline: a vertical tab, form feed or no-break space
#: is part of a word (``echo a<VT># b; rm -rf /etc`` runs ``rm``), as here.
_DELIMITER = re.compile(r"[^ \t\n;&|()<>]+")
#: What may come right before a ``(`` glued to an argument: an extended glob (``*.@(c|h)``,
#: ``!(x)``) or an array assignment (``local a=(1 2)``, ``a+=(3)``).
_GLUED_PAREN = frozenset("@!*+?=")
_COMMENT_LINES = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\n)+")
_NAME_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")


class _GiveUp(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of each thing that costs the checker most one check may hold, counted by the
    lexer as it goes -- before any parse or walk -- so that text far beyond anything written
    by hand is refused in the time it takes to count up to the limit. Each unit costs the walk
    2-40 us of Python (and the lexer 1-5 us), so text at any one limit is checked in well
    under 50 ms. Text near every limit at once would cost about the sum of the four; the
    ``budget`` bounds that sum: each unit counted above is weighed by what it costs and the
    total is limited too. The largest count in the everyday corpus and the builtins is at
    least 10 times below each (``tests/core/test_shellparse_split.py``)."""

    #: Commands: statements and pipeline stages, a repeated one each time (each is cut,
    #: planned and looked up or walked: 2-10 us).
    commands: int = 2000
    #: Distinct statements or stages that are no plain command (quoting, an expansion, a
    #: redirection, a compound command ...): each is parsed alone and walked (20-40 us).
    #: Counted by the walk as it plans the pieces, after the lexer.
    parses: int = 300
    #: Function definitions (each body is walked at its definition and at each call).
    functions: int = 100
    #: Words the lexer reads one by one (outside runs of plain commands, which are cut in C)
    #: and word parts: quoted strings, escapes, braces and brackets, ``$`` expansions and
    #: substitutions (``'a'``, ``"a"``, ``\ ``, ``{``, ``]``, ``$x``, ``${x}``, ``$( )``,
    #: back-quotes, ``$(( ))``), and redirections: each is a token to read and a node to parse
    #: and walk (3-10 us).
    expansions: int = 4000
    #: All of the above at once, weighed by cost: a command or word 1 unit, a parsed
    #: statement 5, a function 2 (a text near every limit at once took ~60 ms; under this
    #: budget, ~15).
    budget: int = 4500
    #: What the text is, and what to do instead: said in the refusal.
    subject: str = "command"
    advice: str = "split it into smaller commands, or put it in a script"
    #: The CPU time all the parses of one check may take together (``shellparse``'s
    #: ``ParseClock``), a backstop for the counts above: they count units, not time, and a
    #: shape costlier per unit than those measured could take longer. The costliest everyday
    #: or builtin text (a builtin script) parses in 0.3 ms, the costliest 64 KiB shape of the
    #: benchmark in 4.4 ms (``bench/README.md``).
    parse_seconds: float = 0.05

    def scaled(self, factor: float, subject: str, advice: str) -> Limits:
        """Limits for text ``factor`` times as long as a command may be (a stored script)."""
        return Limits(
            int(self.commands * factor), int(self.parses * factor),
            int(self.functions * factor), int(self.expansions * factor),
            int(self.budget * factor), subject, advice, self.parse_seconds * factor,
        )  # fmt: skip


_WHAT = {
    "commands": "commands (statements and pipeline stages)",
    "parses": "distinct statements that are not plain commands",
    "functions": "function definitions",
    "expansions": "words and word parts (quoted strings, escapes, braces, brackets, $ "
    "expansions and substitutions, redirections) outside plain commands",
    "budget": "units of work (a command or word 1, a statement parsed alone 5, a function 2)",
}

#: The limits of one command (at most ``policy.MAX_COMMAND_BYTES``).
COMMAND_LIMITS = Limits()


#: No limits: what a site that allows ``too-complex`` gets (the whole text is walked).
NO_LIMITS = Limits(*(1 << 62,) * 5, parse_seconds=math.inf)


class TooComplex(Exception):
    """The text holds more of something than ``Limits`` allow: it is refused uncounted past
    that point, unparsed and unwalked."""

    #: The policy rule the refusal is reported as.
    rule = "too-complex"

    def __init__(self, what: str, limits: Limits) -> None:
        limit = getattr(limits, what)
        super().__init__(
            f"more than {limit:,} {_WHAT[what]} in one {limits.subject}, too many to check: "
            f"{limits.advice}"
        )
        self.what = what
        self.limit = limit


class TooSlow(TooComplex):
    """The parses of one check took more CPU time than ``Limits.parse_seconds``: refused,
    the parse under way cancelled and nothing more parsed or walked."""

    def __init__(self, spent: float, limits: Limits) -> None:
        Exception.__init__(
            self,
            f"parsing it took more than {limits.parse_seconds * 1000:,.0f} ms of CPU time "
            f"(the most one {limits.subject} may take; {spent * 1000:,.0f} ms when stopped), too "
            f"long to check: {limits.advice}",
        )
        self.what = "parse_seconds"
        self.limit = limits.parse_seconds


class Unfollowed(TooComplex):
    """Long text in a shape the lexer does not follow (a here-doc's body inside ``(( ))``),
    refused unparsed as the parse of the whole of it may take seconds; or text the parser
    misreads (``Misread``)."""

    def __init__(
        self, length: int, limits: Limits, shape: str = "a shape too tangled to check in "
        "parts (here-docs)", advice: str = "",
    ) -> None:  # fmt: skip
        Exception.__init__(
            self, f"a {limits.subject} of {length} characters in {shape}: "
            f"{advice or limits.advice}",
        )  # fmt: skip
        self.what = "shape"
        self.limit = 0


class Misread(Exception):
    """A here-doc followed by ``;`` or ``&`` on its line inside a compound command or ``$(
    )`` (``{ cat <<E; rm -rf /etc`` newline ``x`` newline ``E`` newline ``}``), or a statement
    going on after the bodies of an earlier one's here-docs (``cat <<A; cat <<B |`` newline
    bodies ``sh``): bash runs the statement after it, tree-sitter-bash reads it into the
    here-doc, and such a statement is parsed with what is around it. The checker refuses it
    (``shellparse``) unless the site allows ``too-complex``; it is not written so in the
    everyday corpus."""


class TooDeep(TooComplex):
    """More than ``MAX_OPEN`` constructs open at once: refused unparsed (the walk would stop
    at its own nesting limit; the parse of such text, when it has an error, is quadratic)."""

    rule = "nesting-too-deep"

    def __init__(self, position: int | None = None) -> None:
        where = "" if position is None else f" (at byte {position})"
        Exception.__init__(
            self,
            f"more than {MAX_OPEN} quotes, substitutions, groups or compound commands open at "
            f"once{where}: too deep to check",
        )
        self.what = "nesting"
        self.limit = MAX_OPEN


@dataclass(slots=True)
class Counts:
    """The running totals of one check (every text it splits: nested code too), against
    ``limits``."""

    limits: Limits = COMMAND_LIMITS
    commands: int = 0
    parses: int = 0
    functions: int = 0
    expansions: int = 0
    #: The weighed sum of the four (``Limits.budget``).
    units: int = 0

    def command(self) -> None:
        self.commands += 1
        self.units += 1
        if self.commands > self.limits.commands:
            raise TooComplex("commands", self.limits)
        if self.units > self.limits.budget:
            raise TooComplex("budget", self.limits)

    def parse(self) -> None:
        self.parses += 1
        self.units += 5
        if self.parses > self.limits.parses:
            raise TooComplex("parses", self.limits)
        if self.units > self.limits.budget:
            raise TooComplex("budget", self.limits)

    def function(self) -> None:
        self.functions += 1
        self.units += 2
        if self.functions > self.limits.functions:
            raise TooComplex("functions", self.limits)
        if self.units > self.limits.budget:
            raise TooComplex("budget", self.limits)

    def expansion(self, n: int = 1) -> None:
        self.expansions += n
        self.units += n
        if self.expansions > self.limits.expansions:
            raise TooComplex("expansions", self.limits)
        if self.units > self.limits.budget:
            raise TooComplex("budget", self.limits)


class ShellSyntaxError(Exception):
    """Text bash itself refuses to run, at ``position``: an arithmetic command ``((`` where no
    command can start (``((1)) ((1))``, ``echo ((1))``). The parser's error recovery reads
    such text in quadratic time (seconds for 64 KiB), so the checker decides about it without
    a parse of the whole text."""

    def __init__(self, position: int, what: str) -> None:
        super().__init__(f"{what} at byte {position}")
        self.position = position
        self.what = what


@dataclass(slots=True)
class Pipeline:
    #: ``(start, end)`` of each stage in the text (trimmed).
    stages: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Item:
    """One top-level statement: ``pipelines`` joined by ``&&``/``||`` (or, when ``whole``,
    one piece to parse as it is), run in the background when ``background``."""

    start: int = -1
    end: int = -1
    pipelines: list[Pipeline] = field(default_factory=list)
    background: bool = False
    #: Holds something only the parser follows (a top-level redirection, ``!`` ...).
    whole: bool = False
    #: How many times in a row the statement is written (``a; a; a``: one item, 3).
    count: int = 1
    #: ``(start, end)`` of the bodies of its here-docs when they do not follow its text (``cat
    #: <<E; rm x`` newline ``body`` newline ``E``: the statement is its text, a newline and
    #: these).
    tail: tuple[int, int] | None = None

    def source(self, text: str) -> str:
        """The statement's text in ``text``, with its here-docs' bodies."""
        if self.tail is None:
            return text[self.start : self.end]
        return f"{text[self.start : self.end]}\n{text[self.tail[0] : self.tail[1]]}"


def split(
    text: str, counts: Counts | None = None, marks: list[tuple[int, int, int]] | None = None
) -> list[Item] | None:
    """The top-level statements of ``text``, or ``None`` if it cannot be split here.
    Raises ``ShellSyntaxError`` for the syntax errors it recognises (see there), and
    ``TooComplex`` as soon as ``counts`` (what this text holds added to them) passes its
    limits; text that cannot be split keeps what was counted up to where the lexer stopped.

    ``marks`` receives where a long command may be cut into chunks that parse alone
    (``(position, key, form)``, at least ``CHUNK`` bytes apart, at any depth of nesting):
    between two marks of the same key lie only whole arguments of one command (``ARGUMENTS``),
    whole statements of one run in a body or condition (``STATEMENTS``: ``{ }``, ``then``,
    ``else``, ``do``, a ``case`` arm, ``( )``, ``$( )``, back-quotes, ``if``/``elif``/``while``/
    ``until`` conditions), or whole terms of one ``[[ ]]`` (``TERMS``)."""
    try:
        lexer = _Lexer(text, Counts(NO_LIMITS) if counts is None else counts)
        if marks is not None:
            lexer.marks = marks
        return lexer.run()
    except _GiveUp:
        return None
    except Misread:
        if lexer.counts.limits is NO_LIMITS:
            return None  # the parse of the whole text, walked as it reads it
        raise Unfollowed(
            len(text),
            lexer.counts.limits,
            "a here-doc followed by another statement on its "
            "line inside a compound command or $( ), which the parser misreads",
            "put that statement on a line of its own",
        ) from None


class _Lexer:
    def __init__(self, text: str, counts: Counts) -> None:
        self.text = text
        self.n = len(text)
        self.counts = counts
        #: Chunk marks (``split``), shared with the lexers of nested code; ``keys`` numbers
        #: the commands they belong to. The command being read: its key (-1: none yet), the
        #: depth it is at, where its text starts, its last mark (-1: none), and the depth at
        #: its start.
        self.marks: list[tuple[int, int, int]] = []
        self.keys = [0]
        self.cut_key = -1
        self.cut_depth = 0
        self.cut_from = 0
        self.cut_last = -1
        self.cut_base = 0
        #: Open constructs: ")" (``( )``, ``$( )``), "}" (a group), "`", "fi", "done",
        #: "esac", "]]".
        self.stack: list[str] = []
        #: ``case``: between ``case`` and ``in`` ("head"), in a pattern ("pattern"), in code.
        self.case_state: list[str] = []
        self.heredocs: list[tuple[str, bool]] = []
        #: Of the pending here-docs, how many belong to statements already ended on their
        #: line at the top level (``cat <<E; ...``): their bodies are theirs.
        self.owned = 0
        self.items: list[Item] = []
        #: After ``function``: the next word is the name, and a command (``{``) follows it.
        self.function_name = False
        #: Constructs open around this lexer (``$( )`` is scanned by a lexer of its own).
        self.outer = 0
        #: The last word was ``for``/``select`` (``for ((i = 0; ...))``).
        self.after_for = False
        #: A function definition ``NAME ( )`` so far: 1 after a word that may be its name, 2
        #: after its ``(``, 3 after its ``)``: its body, a compound command, comes next.
        self.fn_state = 0
        #: The end of the run of plain characters last looked at (``_plain_run``).
        self.plain_end = -1
        self.plain_until = 0
        #: Runs of statements in the bodies and conditions open at each depth (``{ }``,
        #: ``then``, ``else``, ``do``, a ``case`` arm, ``if`` ...), or of terms in a ``[[ ]]``:
        #: their chunk key, where the run starts, its last mark, whether it has one and its
        #: form (``_statement_end``, ``_term_end``).
        self.runs: dict[int, list[int]] = {}
        #: The last token was ``|``, ``|&``, ``&&`` or ``||``: a newline ends no statement.
        self.joined = False

    # --- the top level ---------------------------------------------------------------------

    def run(self) -> list[Item]:
        text = self.text
        pos = 0
        cmdpos = True
        after_redirect = False
        continuation = False  # after | && ||: a newline does not end the statement
        item = Item()
        pipeline = Pipeline()
        stage = [-1, -1]
        #: Statements ended on the line of their here-docs' operator (``cat <<E; rm x``), with
        #: how many of the pending here-docs are theirs: their bodies follow the line.
        waiting: list[tuple[Item, int]] = []

        def close_stage() -> None:
            if stage[0] < 0:
                # ``| b``, ``a | | b``, ``a && ;``
                raise ShellSyntaxError(pos, "an operator with no command before it")
            pipeline.stages.append((stage[0], stage[1]))
            stage[0] = stage[1] = -1
            self.counts.command()

        def close_item(background: bool, operator: bool = True) -> None:
            nonlocal item, pipeline
            if stage[0] < 0 and not pipeline.stages and not item.pipelines:
                if operator:
                    # ``;`` or ``&`` with no statement before it
                    raise ShellSyntaxError(pos, "an operator with no command before it")
                return
            close_stage()
            item.pipelines.append(pipeline)
            item.background = background
            last = self.items[-1] if self.items else None
            if (
                last is not None
                and last.background == background
                and last.end - last.start == item.end - item.start
                and text[last.start : last.end] == text[item.start : item.end]
                and last.tail is None  # nor waiting for its bodies
            ):
                last.count += 1
            else:
                self.items.append(item)
            item = Item()
            pipeline = Pipeline()

        def bodies(pos: int) -> int:
            """The bodies of the pending here-docs, after a newline at the top level: each
            statement that ended on this line gets its own (``Item.tail``); the one going on
            gets the rest."""
            ends = self._heredoc_bodies(pos)
            # each body ends before its delimiter line's newline
            last = [end - (text[end - 1] == "\n") for end in ends]
            first, index = pos, 0
            for done, count in waiting:  # each holds one here-doc or more
                index += count
                done.tail = (first, last[index - 1])
                first = ends[index - 1]
            if not waiting:
                # The statement goes on after its bodies, or ends with its delimiter line.
                stage[1] = item.end = last[-1]
            elif index < len(ends):
                if continuation:
                    # ``cat <<A; cat <<B |`` newline bodies ``sh``: the parser misreads it too.
                    raise Misread
                item.whole = True
                item.tail = (first, last[-1])
            waiting.clear()
            self.owned = 0
            return ends[-1]

        while pos < self.n:
            if (
                pos >= self.plain_until
                and stage[0] < 0
                and not self.stack
                and not continuation
                and not pipeline.stages
                and not item.pipelines
                and not self.heredocs  # their bodies follow the line
            ):
                pos = self._plain_run(pos)
                if pos >= self.n:
                    break
            match = _TOKEN.match(text, pos)
            if match is None:  # not reached: every character starts a token
                raise _GiveUp
            kind = match.lastgroup
            start, pos = pos, match.end()
            if kind == "ws":
                if start - self.cut_from >= CHUNK:
                    self._blank(start, cmdpos, after_redirect)
                continue
            top = not self.stack
            if kind in ("nl", "op"):
                if after_redirect:
                    raise ShellSyntaxError(start, "a redirection with no target")
                self._boundary(start, pos)
            if kind == "nl":
                if self.fn_state != 3:
                    self.fn_state = 0
                if not top and not cmdpos:
                    self.counts.command()  # a command inside a compound command ends
                if self.heredocs:
                    pos = bodies(pos) if top else self._heredoc_bodies(pos)[-1]
                if not top:
                    self._statement_end(pos)
                if top and not continuation:
                    close_item(False, operator=False)
                cmdpos = True
                continue
            if kind == "word" and match.group()[0] == "#" and self._word_start(start):
                pos = self._comment(start)
                continue
            if kind == "op":
                op = match.group()
                cmdpos = True
                self._not_a_body(start)
                if not top:
                    self._op_inside(op, start, pos)
                    self.counts.command()
                    continue
                if op in (";;", ";;&", ";&"):
                    raise ShellSyntaxError(start, f"'{op}' outside a case")
                if len(self.heredocs) > self.owned and op in (";", "&"):
                    # Its here-docs' bodies follow the line: it is parsed with them, whole.
                    item.whole = True
                    item.tail = (-1, -1)  # its bodies' place: not known yet
                    waiting.append((item, len(self.heredocs) - self.owned))
                    self.owned = len(self.heredocs)
                if op in ("|", "|&"):
                    # tree-sitter-bash reads ``a |& b | c <newline> d`` as ``c d``: left whole,
                    # it is walked as the parser reads it, as before.
                    item.whole = item.whole or op == "|&"
                    close_stage()
                    continuation = True
                elif op in ("&&", "||"):
                    close_stage()
                    item.pipelines.append(pipeline)
                    pipeline = Pipeline()
                    continuation = True
                else:
                    close_item(op == "&")
                continue
            # Anything else belongs to the current stage.
            continuation = False
            if top:
                if stage[0] < 0:
                    stage[0] = start
                if item.start < 0:
                    item.start = start
            pos, cmdpos, after_redirect = self._token(
                match, kind, start, pos, cmdpos, after_redirect, item if top else None
            )
            if not self.stack and not (
                # A lone ``\`` ending the text: bash drops it (a script) or takes it as an
                # argument (``bash -c``); tree-sitter-bash finds an error. Left out.
                pos == self.n and match.group() == "\\" and stage[0] < start
            ):
                stage[1] = item.end = pos
        if self.heredocs:
            # Bash reads a here-doc the text ends in to the end (with a warning); the parse
            # of such text, when it holds an error too, is quadratic: short text is parsed
            # whole, long text refused (``shellparse.MAX_ERROR_PARSE``).
            raise ShellSyntaxError(self.n, "a here-doc never ended")
        if after_redirect:
            raise ShellSyntaxError(self.n, "a redirection with no target")
        if self.stack or continuation:
            raise ShellSyntaxError(self.n, "the text ends inside a construct or after | && ||")
        close_item(False, operator=False)
        self._boundary(self.n, self.n)
        return self.items

    def _blank(self, start: int, cmdpos: bool, after_redirect: bool) -> None:
        """A blank at ``start``, at least ``CHUNK`` bytes into a command: a chunk mark if
        only whole arguments lie between it and the command's last mark (or its start)."""
        depth = len(self.stack)
        if self.cut_key < 0 or depth != self.cut_depth:
            if self.cut_key >= 0 or depth != self.cut_base:
                self.cut_from = start  # a construct opened since: the chunk starts here
            self.keys[0] += 1
            self.cut_key, self.cut_depth, self.cut_last = self.keys[0], depth, -1
        if (
            start - (self.cut_last if self.cut_last >= 0 else self.cut_from) < CHUNK
            or self.heredocs
            or self.fn_state
            or self.function_name
            or after_redirect
            or (cmdpos and self.text[start - 1] != ")")
            # their own grammar (a case arm's commands are commands)
            or (self.stack and self.stack[-1] == "]]")
            or (self.stack and self.stack[-1] == "esac" and self.case_state[-1] != "code")
        ):
            return
        if self.cut_last < 0:
            self.marks.append((self.cut_from, self.cut_key, ARGUMENTS))
        self.marks.append((start, self.cut_key, ARGUMENTS))
        self.cut_last = start

    def _boundary(self, start: int, end: int) -> None:
        """An operator or newline from ``start`` to ``end``: the command before it ends (its
        last chunk with it, if it is at the depth it started at); the next starts after."""
        if self.cut_last >= 0 and len(self.stack) == self.cut_depth:
            self.marks.append((start, self.cut_key, ARGUMENTS))
        self.cut_key, self.cut_last = -1, -1
        self.cut_from, self.cut_base = end, len(self.stack)

    def _token(
        self, match: re.Match[str], kind: str | None, start: int, pos: int, cmdpos: bool,
        after_redirect: bool, item: Item | None,
    ) -> tuple[int, bool, bool]:  # fmt: skip
        """One token that is not a blank, newline, operator or comment: follow what it opens
        or closes. Returns the position after it, whether a command starts next and whether
        a redirection's target does. ``item`` is given at the top level."""
        if after_redirect and kind in ("redir", "heredoc", "lparen", "rparen"):
            raise ShellSyntaxError(start, "a redirection with no target")  # ``< <``, ``> (``
        if kind == "unclosed":
            raise ShellSyntaxError(start, "the text ends inside '")
        self.joined = False
        after_for, self.after_for = self.after_for, False
        fn_state, self.fn_state = self.fn_state, 0
        if fn_state == 2 and kind != "rparen":  # ``echo (a)``, ``f (x)``, ``[ ( a ) ]``
            raise ShellSyntaxError(start, "'(' after a command's first word, not closed at once")
        if fn_state == 3 and not (
            kind in ("lparen", "arith") or (kind == "word" and match.group() in _BODIES)
        ):
            raise ShellSyntaxError(start, "a function's body that is not a compound command")
        if kind == "word":
            word = match.group()
            self.counts.expansion()
            for bracket in "{}[]":  # each a node of its own in tree-sitter-bash's word
                if bracket in word:
                    self.counts.expansion(word.count(bracket))
            if self.function_name:
                self.function_name = False
                return pos, True, False  # ``function NAME {``
            if cmdpos and not after_redirect:
                cmdpos = self._command_word(word, item, pos)
                self.function_name = word == "function" and cmdpos is False
                if self.function_name:
                    self.counts.function()
                self.after_for = word in ("for", "select")
                if cmdpos is False and word not in RESERVED and "=" not in word:
                    self.fn_state = 1
                return pos, cmdpos, False
            if word == "]]" and self.stack and self.stack[-1] == "]]":
                self._term_end(pos - 2)
                self._no_body()
                self.stack.pop()
            elif word == "in" and self.case_state and self.case_state[-1] == "head":
                self.case_state[-1] = "pattern"
                return pos, True, False
            return pos, cmdpos and after_redirect, False
        if kind in ("redir", "heredoc", "procsub") and item is not None:
            item.whole = True
        if kind == "redir":
            self.counts.expansion()  # a node of its own to parse and walk
            return pos, cmdpos, True
        if kind == "heredoc":
            self.counts.expansion()
            return self._heredoc_start(pos), cmdpos, False
        if kind in ("procsub", "cmdsub"):
            self.counts.expansion()
            return self._code(pos, ")"), cmdpos and kind == "procsub", False
        if kind == "bt":
            self.counts.expansion()
            return self._code(pos, "`"), False, False
        if kind == "dq":
            self.counts.expansion()
            return self._dq(pos), False, False
        if kind == "arith":
            if match.group() == "((" and not cmdpos and not after_for:
                self._misplaced(start, "'(('")
            self.counts.expansion()
            return self._arith(pos), False, False
        if kind == "param":
            self.counts.expansion()
            return self._param(pos), False, False
        if kind == "lparen":
            if not cmdpos and fn_state != 1:
                self._misplaced(start, "'('")
            subshell = (
                cmdpos
                and fn_state != 1
                and (start == 0 or self.text[start - 1] in " \t\n;&|(")
                and not (self.stack and self.stack[-1] in ("esac", "]]"))
            )
            self.stack.append(")")
            self._deeper()
            if subshell:  # ``( a; b )``: not ``f ( )``, ``a=(1 2)``, ``@(a)`` or a pattern
                self._body(pos)
            extglob = start > 0 and self.text[start - 1] in "@!*+?"  # ``ls *.+(c|h)``
            self.fn_state = 2 if fn_state == 1 and not extglob else 0
            return pos, True, False
        if kind == "rparen":
            stack = self.stack
            if self.case_state and self.case_state[-1] == "pattern" and stack[-1] == "esac":
                self.case_state[-1] = "code"
                self._body(pos)
            elif not stack or stack[-1] != ")":
                raise ShellSyntaxError(start, "')' with no '(' open")
            else:
                stack.pop()
                self.fn_state = 3 if fn_state == 2 else 0
                if fn_state == 2:
                    self.counts.function()
            return pos, True, False
        # sq, ansi, esc: part of a word
        self.counts.expansion()
        return pos, False, False

    def _plain_run(self, pos: int) -> int:
        """Statements made only of plain words and operators (most of a long script), cut in
        C (``re.split``) rather than token by token; consecutive equal ones are counted, not
        repeated. Returns where the token-by-token scan goes on."""
        text = self.text
        if pos >= self.plain_end:
            match = _PLAIN_RUN.match(text, pos)
            self.plain_end = match.end() if match else pos
        end = self.plain_end
        reserved = _RESERVED_WORD.search(text, pos, end)
        limit = reserved.start() if reserved is not None else end
        cut = max(text.rfind("\n", pos, limit), text.rfind(";", pos, limit)) + 1
        final = limit == self.n  # the text ends the last statement
        cut = self.n if final else cut
        if cut - pos < 16 or text.find("|&", pos, cut) >= 0:
            self.plain_until = limit + 1 if reserved is None else reserved.end()
            return pos
        self.plain_until = cut
        items = self.items
        counts = self.counts
        parts = _PLAIN_SPLIT.split(text[pos:cut])
        offset = pos
        stages: list[tuple[int, int]] = []
        pipelines: list[Pipeline] = []
        start = -1
        pending = False  # after | && ||: a stage must follow (newlines may come first)
        clean = pos  # where the last complete statement ended
        for i, part in enumerate(parts):
            if i % 2 == 0:  # words
                stripped = part.strip()
                if stripped:
                    lead = offset + len(part) - len(part.lstrip())
                    stages.append((lead, lead + len(stripped)))
                    counts.command()
                    start = lead if start < 0 else start
                    pending = False
                offset += len(part)
                continue
            op = part
            offset += len(op)
            if op == "\n" and (pending or not stages):
                continue  # a newline after | && ||, or a blank line
            if pending or not stages:
                # ``a | ;``, ``; ;``, ``&& b``
                raise ShellSyntaxError(offset - len(op), "an operator with no command before it")
            if op == "|":
                pending = True
                continue
            pipelines.append(Pipeline(stages))
            stages = []
            if op in ("&&", "||"):
                pending = True
                continue
            item_end = pipelines[-1].stages[-1][1]
            background = op == "&"
            last = items[-1] if items else None
            if (
                last is not None
                and last.background == background
                and last.end - last.start == item_end - start
                and text[last.start : last.end] == text[start:item_end]
            ):
                last.count += 1
            else:
                items.append(Item(start, item_end, pipelines, background))
            pipelines, start = [], -1
            clean = offset
        if final and stages and not pending:
            pipelines.append(Pipeline(stages))
            items.append(Item(start, pipelines[-1].stages[-1][1], pipelines, False))
            return cut
        if stages or pipelines or pending:
            return clean  # the last statement goes on past the run: scanned token by token
        return cut

    def _not_a_body(self, start: int) -> None:
        """An operator: no function's body (``f() ;``); a possible ``NAME (`` ends."""
        if self.fn_state == 3:
            raise ShellSyntaxError(start, "a function's body that is not a compound command")
        self.fn_state = 0

    def _misplaced(self, start: int, what: str) -> None:
        """``(`` or ``((`` written apart from the word before it where no command starts
        (and, for ``(``, not after a function's name): bash refuses the text (``((1))
        ((1))``, ``echo ((1))``, ``echo (a)``, ``[ ( a ) ]``). Not inside ``[[ ]]`` or a
        ``case`` (their own grammar), nor glued to a word (``a=(1 2)``, ``@(a|b)``: left to
        the parser)."""
        if self.stack and self.stack[-1] in ("]]", "esac"):
            return
        if start > 0 and self.text[start - 1] not in " \t":
            if what == "'('" and self.text[start - 1] not in _GLUED_PAREN:
                # ``echo f(x)``, ``'a' f()``: bash refuses it, and tree-sitter-bash's error
                # recovery reads such text in quadratic time.
                raise ShellSyntaxError(start, "'(' glued to an argument")
            return
        raise ShellSyntaxError(start, f"{what} where no command can start")

    def _deeper(self) -> None:
        if self.outer + len(self.stack) > MAX_OPEN:
            raise TooDeep()

    def _comment(self, start: int) -> int:
        """Past a comment, to its newline; the blank and comment lines after it are skipped
        in C (a text of thousands of comment lines is not scanned token by token)."""
        end = self.text.find("\n", start)
        if end < 0:
            return self.n
        if not self.heredocs:  # a newline starts the bodies of pending here-docs
            more = _COMMENT_LINES.match(self.text, end + 1)
            if more is not None:
                return more.end() - 1
        return end

    def _word_start(self, start: int) -> bool:
        return start == 0 or self.text[start - 1] in " \t\n;&|()<>"

    def _command_word(self, word: str, item: Item | None, pos: int) -> bool:
        """A word at the start of a command; returns whether the next word starts one too."""
        text = self.text
        follows = pos >= self.n or text[pos] in " \t\n;&|()<>"
        if not follows:
            return False  # ``if"x"``, ``{a,b}``: not a reserved word
        stack = self.stack
        if word in ("if", "then", "else", "elif", "!", "time", "coproc"):
            if word == "if":
                stack.append("fi")
                self._deeper()
                self._body(pos)  # its condition: statements too
            elif word in ("then", "else", "elif") and (not stack or stack[-1] != "fi"):
                raise ShellSyntaxError(pos - len(word), f"'{word}' outside an if")
            elif word in ("then", "else", "elif"):
                self._body(pos)
            if item is not None and word in ("!", "time", "coproc"):
                item.whole = True
            return True
        if word == "do":
            if not stack or stack[-1] != "done":
                raise ShellSyntaxError(pos - 2, "'do' outside a loop")
            self._body(pos)
            return True
        if word in ("while", "until"):
            stack.append("done")
            self._deeper()
            self._body(pos)  # its condition
            return True
        if word in ("fi", "done", "esac", "}", "]]"):
            if not stack or stack[-1] != word:
                raise ShellSyntaxError(pos - len(word), f"'{word}' closing nothing open")
            if word == "]]":
                self._term_end(pos - 2)
            self._no_body()
            stack.pop()
            if word == "esac":
                self.case_state.pop()
            return False
        if word == "{":
            stack.append("}")
            self._deeper()
            self._body(pos)
            return True
        if word == "[[":
            stack.append("]]")
            self._body(pos, TERMS)
            return False
        if word == "case":
            stack.append("esac")
            self._deeper()
            self._no_body()
            self.case_state.append("head")
            return False
        if word in ("for", "select"):
            stack.append("done")
            self._deeper()
            self._no_body()
            return False
        if word in ("function", "in"):
            return False
        return bool(_NAME_ASSIGN.match(word))

    def _op_inside(self, op: str, start: int, end: int) -> None:
        self.joined = op in ("|", "|&", "&&", "||")
        if op in ("&&", "||"):
            self._term_end(start)
        if len(self.heredocs) > self.owned and op in (";", "&"):
            raise Misread
        if op in (";;", ";;&", ";&"):
            if not self.case_state or self.stack[-1] != "esac":
                raise ShellSyntaxError(start, f"'{op}' outside a case")
            self.case_state[-1] = "pattern"
            self._no_body()
        elif op in (";", "&"):
            self._statement_end(end)

    # --- chunks of statements in bodies and conditions, of terms in [[ ]] ------------------

    def _body(self, pos: int, form: int = STATEMENTS) -> None:
        """A body of statements starts at ``pos``, at the current depth: ``{``, ``then``,
        ``else``, ``do``, a ``case`` arm's ``)``, a condition after ``if``, ``elif``,
        ``while``, ``until``; or the terms of a ``[[`` (``TERMS``)."""
        self.keys[0] += 1
        self.runs[len(self.stack)] = [self.keys[0], pos, pos, 0, form]

    def _no_body(self) -> None:
        """What follows at the current depth is no run of statements that parses alone (a
        condition, a ``case`` pattern, the text after the construct closes)."""
        self.runs.pop(len(self.stack), None)

    def _statement_end(self, end: int) -> None:
        """A statement inside a body or condition ends before ``end``: a chunk mark
        (``STATEMENTS``: the chunk is parsed as it is) when its run has grown ``CHUNK`` bytes
        since its last one. Between two marks of a run lie whole statements at that depth."""
        run = self.runs.get(len(self.stack))
        if run is None or run[4] != STATEMENTS or self.joined:
            return
        self._mark(run, end)

    def _term_end(self, start: int) -> None:
        """A ``&&``/``||`` (or the ``]]``) at ``start`` inside a ``[[ ]]``, at its depth: the
        terms before it are whole. A chunk mark when the run of terms has grown ``CHUNK``
        bytes since its last one; the ``]]`` closes a run that has marks."""
        run = self.runs.get(len(self.stack))
        if run is None or run[4] != TERMS:
            return
        if self.text.startswith("]]", start):
            if run[3] and start > run[2]:
                self.marks.append((start, run[0], TERMS))
            return
        self._mark(run, start)

    def _mark(self, run: list[int], end: int) -> None:
        if self.heredocs or end - run[2] < CHUNK:
            return
        if not run[3]:
            self.marks.append((run[1], run[0], run[4]))
            run[3] = 1
        self.marks.append((end, run[0], run[4]))
        run[2] = end

    # --- nested constructs -----------------------------------------------------------------

    def _code(self, pos: int, closer: str) -> int:
        """Code up to ``closer`` (the ``)`` of ``$( )``/``<( )``, or a back-quote), scanned
        with the same rules; returns the position after the closer."""
        sub = _Lexer(self.text, self.counts)
        sub.marks, sub.keys, sub.cut_from, sub.cut_base = self.marks, self.keys, pos, 1
        sub.stack = [closer]
        sub.heredocs, sub.owned = self.heredocs, self.owned
        sub.outer = self.outer + len(self.stack) + 1
        if sub.outer > MAX_OPEN:
            raise TooDeep(pos)
        sub._body(pos)  # statements (a back-quote's escapes are words to the parser as well)
        return sub._nested(pos)

    def _nested(self, pos: int) -> int:
        text = self.text
        closer = self.stack[0]
        cmdpos = True
        after_redirect = False
        while pos < self.n:
            match = _TOKEN.match(text, pos)
            if match is None:  # not reached: every character starts a token
                raise _GiveUp
            kind = match.lastgroup
            start, pos = pos, match.end()
            if kind == "ws":
                if start - self.cut_from >= CHUNK:
                    self._blank(start, cmdpos, after_redirect)
                continue
            if kind in ("nl", "op"):
                if after_redirect:
                    raise ShellSyntaxError(start, "a redirection with no target")
                self._boundary(start, pos)
            if kind == "nl":
                if self.fn_state != 3:
                    self.fn_state = 0
                if not cmdpos:
                    self.counts.command()
                if self.heredocs:
                    pos = self._heredoc_bodies(pos)[-1]
                self._statement_end(pos)
                cmdpos = True
                continue
            if kind == "word" and match.group()[0] == "#" and self._word_start(start):
                pos = self._comment(start)
                continue
            if kind == "op":
                self._not_a_body(start)
                self._op_inside(match.group(), start, pos)
                self.counts.command()
                cmdpos = True
                continue
            if len(self.stack) == 1 and (
                (kind == "bt" and closer == "`") or (kind == "rparen" and closer == ")")
            ):
                self._boundary(start, pos)
                return pos
            pos, cmdpos, after_redirect = self._token(
                match, kind, start, pos, cmdpos, after_redirect, None
            )
        raise ShellSyntaxError(self.n, f"the text ends inside {'`' if closer == '`' else '$('}")

    def _dq(self, pos: int) -> int:
        """Past the ``"`` closing a double-quoted string opened just before ``pos``."""
        return self._quoted(pos, _DQ, '"')

    def _param(self, pos: int) -> int:
        """Past the ``}`` closing ``${`` (opened just before ``pos``)."""
        return self._quoted(pos, _PARAM, "}")

    def _quoted(self, pos: int, tokens: re.Pattern[str], closer: str) -> int:
        self.outer += 1
        if self.outer + len(self.stack) > MAX_OPEN:
            raise TooDeep(pos)
        text = self.text
        try:
            while pos < self.n:
                match = tokens.match(text, pos)
                if match is None:  # a lone ``\`` or an unclosed ``'`` at the end
                    break
                token, pos = match.group(), match.end()
                if token == closer:
                    return pos
                if token[0] in "$`":
                    self.counts.expansion()
                if token == '"':
                    pos = self._dq(pos)
                elif token == "$((":
                    pos = self._arith(pos)
                elif token == "$(":
                    pos = self._code(pos, ")")
                elif token == "${":
                    pos = self._param(pos)
                elif token == "`":
                    pos = self._code(pos, "`")
            opened = "${" if closer == "}" else '"'
            raise ShellSyntaxError(self.n, f"the text ends inside {opened}")
        finally:
            self.outer -= 1

    def _arith(self, pos: int) -> int:
        """Past the ``))`` closing ``$((``/``((`` (opened just before ``pos``)."""
        text = self.text
        depth = 2
        while pos < self.n:
            index = min(
                (i for i in (text.find("(", pos), text.find(")", pos)) if i >= 0), default=-1
            )
            if index < 0:
                raise ShellSyntaxError(self.n, "the text ends inside '(('")
            if text[pos:index].find("\n") >= 0 and self.heredocs:
                raise _GiveUp
            depth += 1 if text[index] == "(" else -1
            if depth > MAX_OPEN:
                raise TooDeep(index)
            pos = index + 1
            if depth == 0:
                return pos
        raise ShellSyntaxError(self.n, "the text ends inside '(('")

    # --- here-documents ----------------------------------------------------------------------

    def _heredoc_start(self, pos: int) -> int:
        """After ``<<``/``<<-``: read the delimiter word, remember it; returns past it."""
        text = self.text
        strip = text[pos - 1] == "-"
        while pos < self.n and text[pos] in " \t":
            pos += 1
        match = _DELIMITER.match(text, pos)
        if match is None:  # ``cat << | a``, ``a <<;``: tree-sitter-bash's recovery is quadratic
            raise ShellSyntaxError(pos, "'<<' with no delimiter word after it")
        word = match.group()
        delimiter = word.replace("'", "").replace('"', "").replace("\\", "")
        if "$" in word or "`" in word or not delimiter:
            # Bash takes such a delimiter literally; tree-sitter-bash may not: short text is
            # parsed whole, long text refused (``shellparse.MAX_ERROR_PARSE``).
            raise ShellSyntaxError(pos, "a here-doc delimiter with '$' or '`' in it, or empty")
        self.heredocs.append((delimiter, strip))
        return match.end()

    def _heredoc_bodies(self, pos: int) -> list[int]:
        """The bodies of the pending here-docs, which start at ``pos`` (after a newline);
        returns the position after each one's delimiter line (and its newline)."""
        text = self.text
        ends = []
        for delimiter, strip in self.heredocs:
            while True:
                if pos >= self.n:
                    raise ShellSyntaxError(self.n, "a here-doc never ended")
                end = text.find("\n", pos)
                line = text[pos:] if end < 0 else text[pos:end]
                pos = self.n if end < 0 else end + 1
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
            ends.append(pos)
        self.heredocs.clear()
        return ends
