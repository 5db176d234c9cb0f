"""The parse-time budget of one check (``knm.core.shellparse.ParseClock``,
``Limits.parse_seconds``): a backstop for the limits on counts, refusing text whose parses
take more CPU time than the budget. Time is never measured here: a fake clock stands in."""

from __future__ import annotations

import gc
import itertools
import math

import pytest

from knm.core import shellparse
from knm.core.policy import check_command, check_script
from knm.core.shell.split import COMMAND_LIMITS, NO_LIMITS, Limits, TooSlow
from knm.core.shellparse import ParseClock, analyze

#: 64 KiB of one valid statement, long enough for tree-sitter to ask many times whether to
#: go on.
_LONG = "if true; then " + "echo 'a b' \"$c\"; " * 3800 + "fi"


def _ticking(monkeypatch: pytest.MonkeyPatch, step: float) -> list[float]:
    """A clock that moves ``step`` seconds each time it is read; returns its readings."""
    readings: list[float] = []
    ticks = itertools.count()

    def clock() -> float:
        readings.append(next(ticks) * step)
        return readings[-1]

    monkeypatch.setattr(shellparse, "CLOCK", clock)
    return readings


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every parse: the length of its text and whether it was cancelled."""
    parses: list[tuple[int, bool]] = []
    parse = shellparse._parse

    def recorded(text: str, *rest: object) -> object:
        tree = parse(text, *rest)  # type: ignore[arg-type]
        parses.append((len(text), tree is None))
        return tree

    monkeypatch.setattr(shellparse, "_parse", recorded)
    return parses


def test_a_check_whose_parses_pass_the_budget_is_refused_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ticking(monkeypatch, 0.030)  # each parse "takes" 30 ms: the second passes 50 ms
    (violation,) = check_command('echo "$a"; ls -l "$b"; cat "$c"')
    assert violation.rule == "too-complex"
    assert "parsing it took more than 50 ms of CPU time" in violation.matched
    assert "split it into smaller commands" in violation.matched


def test_a_long_parse_is_cancelled_once_the_budget_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = _ticking(monkeypatch, 0.001)  # a millisecond each time tree-sitter asks
    parses = _recording(monkeypatch)
    clock = ParseClock(COMMAND_LIMITS)
    with pytest.raises(TooSlow, match="parsing it took more than 50 ms of CPU time"):
        clock.parse(_LONG)
    assert parses == [(len(_LONG), True)]  # cancelled mid-parse
    assert 50 < len(readings) < 60  # asked as the parse went, stopped just past the budget


def test_the_parser_parses_the_next_text_from_its_start_after_a_cancelled_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ticking(monkeypatch, 0.001)
    with pytest.raises(TooSlow):
        ParseClock(COMMAND_LIMITS).parse(_LONG)
    monkeypatch.setattr(shellparse, "CLOCK", lambda: 0.0)
    tree = ParseClock(COMMAND_LIMITS).parse(_LONG)
    assert not tree.root_node.has_error
    assert tree.root_node.text == _LONG.encode()
    assert {v.rule for v in check_command('x="/etc"; rm -rf "$x"')} == {"system-paths"}


@pytest.mark.parametrize("text", ['echo "$a"; ls -l "$b"', _LONG], ids=["short", "64 KiB"])
def test_a_garbage_collection_during_a_parse_is_no_cost_of_the_text(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(shellparse, "CLOCK", lambda: now[0])
    parse = shellparse._parse

    def parse_beside_a_collection(text: str, *rest: object) -> object:
        gc.collect()  # a whole heap's worth: a second of the thread's CPU time
        return parse(text, *rest)  # type: ignore[arg-type]

    def one_second(phase: str, _info: object) -> None:
        now[0] += phase == "start"

    monkeypatch.setattr(shellparse, "_parse", parse_beside_a_collection)
    gc.callbacks.append(one_second)  # after knm's: it reads the clock before it moves
    try:
        tree = ParseClock(COMMAND_LIMITS).parse(text)  # not TooSlow
    finally:
        gc.callbacks.remove(one_second)
    assert now[0] >= 1  # the clock did move by the collection
    assert tree.root_node.text == text.encode()


def test_plain_commands_need_no_parse_and_so_no_parse_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ticking(monkeypatch, 1.0)
    assert check_command("ls -la /tmp; df -h; uptime") == []


def test_the_budget_is_set_in_the_limits_and_a_script_gets_more() -> None:
    assert COMMAND_LIMITS.parse_seconds == 0.05
    script = COMMAND_LIMITS.scaled(16, "script", "split it")
    assert script.parse_seconds == pytest.approx(0.8)
    tight = Limits(parse_seconds=0.0)
    assert analyze("ls -la /tmp", limits=tight).findings == []  # nothing parsed


def test_a_tiny_budget_refuses_what_needs_a_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    _ticking(monkeypatch, 1e-6)
    (finding,) = analyze('echo "$a"', limits=Limits(parse_seconds=1e-9)).findings
    assert finding.rule == "too-complex"
    assert "parsing it took more than 0 ms" in finding.matched


def test_a_site_that_allows_too_complex_and_the_reference_walk_are_not_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ticking(monkeypatch, 1.0)
    text = 'x="/etc"; rm -rf "$x"'
    assert NO_LIMITS.parse_seconds == math.inf
    assert {v.rule for v in check_command(text, allowed=["too-complex"])} == {"system-paths"}
    assert analyze(text, split=False).findings == []
    assert [c.program for c in analyze(text, split=False).commands] == ["rm"]


def test_a_stored_script_is_refused_for_its_parse_time_as_a_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ticking(monkeypatch, 0.5)
    (violation,) = check_script('echo "$a"\nls "$b"\ncat "$c"\n')
    assert "more than 800 ms of CPU time (the most one script may take" in violation.matched
