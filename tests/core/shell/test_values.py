"""The values the guard-rail's walk reasons about (``knm.core.shell.values``)."""

from __future__ import annotations

import pytest

from knm.core.shell.values import Cmd, U, Word, normalize


def test_a_plain_word_has_one_known_value() -> None:
    word = Word.plain("/etc")
    assert word.literal == word.value == "/etc" and not word.unknown


def test_a_word_with_an_unknown_part_has_no_literal_and_matches_on_what_is_known() -> None:
    word = Word((f"/{U}/x",), "/$D/x")
    assert word.unknown and word.literal is None and word.value == "//x"


def test_a_word_with_two_possible_values_has_no_literal() -> None:
    assert Word(("/tmp", "/"), "${D:-/}").literal is None


@pytest.mark.parametrize(
    ("path", "cwd", "normal"),
    [
        ("../etc/./passwd", "/root", "/etc/passwd"),
        ("/proc/1/root/etc", "/", "/etc"),
        ("/proc/self/root/proc/1/root/", "/", "/"),
        ("bin", "/usr", "/usr/bin"),
        ("", "/var", "/var"),
    ],
)
def test_a_path_is_read_absolute_and_lexically_normal(path: str, cwd: str, normal: str) -> None:
    assert normalize(path, cwd) == normal


def test_a_path_starting_with_an_unknown_part_stays_unknown() -> None:
    assert normalize(U + "/x", "/") == U + "/x"


def test_a_command_is_named_by_its_program_without_its_directory() -> None:
    cmd = Cmd([Word.plain("/usr/bin/rm"), Word.plain("-rf")], "/usr/bin/rm -rf")
    assert cmd.program == "rm" and cmd.written == "/usr/bin/rm -rf"
