"""Where the lexer marks a long construct for chunks that parse alone
(``knm.core.shell.split``'s ``marks``): between two marks of one key lie whole arguments,
whole statements or whole terms of a ``[[ ]]``, so that an error only the parser sees is found
parsing one chunk, never the whole (``tests/core/test_shellparse_split.py`` shows it found)."""

from __future__ import annotations

import itertools

import pytest

from knm.core.shell.split import ARGUMENTS, CHUNK, STATEMENTS, TERMS, split


def _chunks(text: str) -> list[tuple[int, str]]:
    """Each chunk the lexer marks in ``text``: its form and its text."""
    marks: list[tuple[int, int, int]] = []
    assert split(text, marks=marks) is not None
    by_key: dict[tuple[int, int], list[int]] = {}
    for position, key, form in marks:
        by_key.setdefault((key, form), []).append(position)
    return [
        (form, text[a:b])
        for (_, form), positions in by_key.items()
        for a, b in itertools.pairwise(sorted(positions))
    ]


def test_a_long_test_is_cut_between_its_terms_at_and_and_or() -> None:
    terms = ["-n a", "-f /tmp/x", "$x == y*", "! -d /b"] * 60
    text = "[[ " + " && ".join(terms) + " || -z b ]]"
    chunks = _chunks(text)
    assert chunks
    assert {form for form, _ in chunks} == {TERMS}
    assert all(len(chunk) >= CHUNK for _, chunk in chunks[:-1])
    # the first starts after ``[[``, each other with its operator, the last ends before ``]]``
    assert chunks[0][1].startswith(" -n a &&")
    assert all(chunk.lstrip()[:2] in ("&&", "||") for _, chunk in chunks[1:])
    assert "".join(chunk for _, chunk in chunks) == text[2:-2]


def test_terms_inside_parentheses_within_a_test_are_not_cut_apart() -> None:
    text = "[[ ( " + " && ".join(["-n a"] * 300) + " ) ]]"
    assert [chunk for form, chunk in _chunks(text) if form == TERMS] == []


@pytest.mark.parametrize(
    "text",
    [
        "if " + "test -n a; " * 150 + "true; then :; fi",
        "if false; then :; elif " + "test -n a; " * 150 + "true; then :; fi",
        "while " + "read -r a\n" * 150 + "do :; done",
        "until " + "test -f a || sleep 1; " * 150 + "false; do :; done",
        "echo `" + "echo a; " * 200 + "`",
        'x="`' + "echo a\n" * 200 + '`"',
    ],
)
def test_a_long_condition_or_back_quoted_body_is_cut_at_the_ends_of_its_statements(
    text: str,
) -> None:
    chunks = [chunk for form, chunk in _chunks(text) if form == STATEMENTS]
    assert chunks
    assert all(chunk.rstrip(" ").endswith((";", "\n")) for chunk in chunks)
    assert all(len(chunk) >= CHUNK for chunk in chunks)


def test_an_argument_chunk_keeps_its_form() -> None:
    text = "echo " + "'a' " * 600
    assert {form for form, _ in _chunks(text)} == {ARGUMENTS}
