"""Bash's quoting and brace expansion as the guard-rail reads words
(``knm.core.shell.quoting``)."""

from __future__ import annotations

import pytest

from knm.core.shell.quoting import ansi_c, brace_expand, unescape, unescape_dq


@pytest.mark.parametrize(
    ("word", "expanded"),
    [
        ("/etc/{passwd,shadow}", ["/etc/passwd", "/etc/shadow"]),
        ("/dev/sd{a..c}", ["/dev/sda", "/dev/sdb", "/dev/sdc"]),
        ("{3..1}", ["3", "2", "1"]),
        ("/{a,{b,c}}", ["/a", "/b", "/c"]),
        ("/etc", ["/etc"]),
        ("{a}", ["{a}"]),  # no comma, no sequence: as written
    ],
)
def test_braces_expand_as_bash_expands_them(word: str, expanded: list[str]) -> None:
    assert brace_expand(word) == expanded


def test_brace_expansion_stops_at_its_limit() -> None:
    assert brace_expand("{a,b}{1,2}", 3) == ["a1", "a2", "b1"]
    assert len(brace_expand("{" + ",".join(map(str, range(100))) + "}")) == 32


def test_a_backslash_quotes_the_next_character_and_a_backslash_newline_joins_lines() -> None:
    assert unescape("a\\ b\\\nc") == "a bc"


def test_inside_double_quotes_a_backslash_quotes_only_what_bash_says() -> None:
    assert unescape_dq('\\$x \\a \\"') == '$x \\a "'


def test_ansi_c_quoting_reads_its_escapes() -> None:
    assert ansi_c("a\\tb\\x41") == "a\tbA"
