"""Wrappers peeled off a command until the program that really runs is first
(``knm.core.shell.unwrap``); the guard-rail's tests (``tests/core/test_policy*.py``) check the
verdicts built on it."""

from __future__ import annotations

import pytest

from knm.core.shell.unwrap import unwrap
from knm.core.shell.values import Word


def _words(*texts: str) -> list[Word]:
    return [Word.plain(t) for t in texts]


def _program(*texts: str) -> list[str]:
    return [w.value for w in unwrap(_words(*texts)).words]


@pytest.mark.parametrize(
    "command",
    [
        ("sudo", "-u", "root", "env", "A=1", "nice", "-n", "5", "rm", "-rf", "/"),
        ("nohup", "timeout", "-s", "KILL", "30", "ionice", "-c3", "rm", "-rf", "/"),
        ("nsenter", "-t", "1", "-m", "--", "chroot", "/host", "rm", "-rf", "/"),
        ("A=1", "B=2", "setsid", "-f", "stdbuf", "-oL", "rm", "-rf", "/"),
    ],
)
def test_wrappers_and_their_options_are_peeled_to_the_program_that_runs(
    command: tuple[str, ...],
) -> None:
    assert _program(*command) == ["rm", "-rf", "/"]


def test_a_program_that_is_no_wrapper_is_left_as_it_is() -> None:
    assert _program("ls", "-la", "/tmp") == ["ls", "-la", "/tmp"]


def test_sh_c_gives_its_code_with_the_words_that_become_its_positional_parameters() -> None:
    ((code, positional),) = unwrap(_words("sh", "-c", "ls $1", "x", "/etc")).code
    assert code.value == "ls $1"
    assert positional is not None and [w.value for w in positional] == ["x", "/etc"]


def test_a_shell_reading_its_stdin_is_said_to_run_its_input_as_code() -> None:
    unwrapped = unwrap(_words("timeout", "5", "bash", "-s"))
    assert [w.value for w in unwrapped.words] == ["bash", "-s"]
    assert unwrapped.stdin_code and not unwrapped.code
