"""Every ``knm`` command the docs show (docs/cli.md and the README's shell blocks) is one the
``knm`` of this tree takes: its words and options parse, and an example shown failing with a
usage error fails so. Options renamed or commands removed cannot leave the docs behind.

The README's first session is also run for real, against a server (tests/test_readme.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from knm.cli.main import build_parser

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "docs" / "cli.md", ROOT / "README.md"]
#: Where one ``knm`` invocation ends inside a shell line (a redirection ends its words too).
ENDS = re.compile(r"\s*(?:\|\||&&|\||;|\)|\s\d?[<>]|$)")


def examples() -> list[tuple[str, str, str | None]]:
    """``(where, command, the usage error shown for it or None)`` for each ``knm`` invocation
    in the docs' ``sh``/``console`` blocks (a ``console`` block's commands are its ``$ ``
    lines; the lines after one, to the next, are its output)."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"```(sh|console)\n(.*?)```", text, re.S):
            lang, body = match.groups()
            start = text.count("\n", 0, match.start()) + 2
            lines = body.splitlines()
            for index, line in enumerate(lines):
                if lang == "console":
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                    output = []
                    for after in lines[index + 1 :]:
                        if after.startswith("$ "):
                            break
                        output.append(after)
                    shown = "\n".join(output).strip()
                    refused = shown if ": error: " in shown else None
                else:
                    refused = None
                for invocation in invocations(line):
                    found.append((f"{doc.name}:{start + index}", invocation, refused))
    return found


def invocations(line: str) -> list[str]:
    """The ``knm …`` commands of a shell line, to the end of each (a pipe, ``&&``, ``)``); one
    fed by ``xargs`` gets the argument xargs would give it."""
    commands = []
    for match in re.finditer(r"(?<![\w/.-])knm (?!serve\b)", line):
        rest = line[match.start() :]
        end = ENDS.search(rest, 4)
        command = rest[: end.start()] if end else rest
        if "xargs" in line[: match.start()]:
            command += " task/placeholder"
        commands.append(command)
    return commands


def argv_of(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)[1:]
    # Shell values the docs leave to the reader: any word stands in for them.
    return [re.sub(r"\$\{?\w+\}?|…", "x", word) for word in words]


CASES = examples()


def test_the_docs_show_knm_commands_to_check() -> None:
    assert len(CASES) > 60
    assert any(refused for _, _, refused in CASES)


@pytest.mark.parametrize(
    ("where", "command", "refused"), CASES, ids=[f"{w} {c[:50]}" for w, c, _ in CASES]
)
def test_a_knm_command_in_the_docs_is_one_knm_takes(
    where: str,
    command: str,
    refused: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps its usage lines to the terminal
    argv = argv_of(command)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        assert refused, f"{where}: `{command}` is refused by knm (exit {exc.code})"
        # What the docs show is what knm prints, word for word (at 80 columns).
        assert capsys.readouterr().err.strip() == refused, where
        return
    assert not refused, f"{where}: `{command}` is shown failing, but knm takes it"
    assert getattr(args, "func", None) is not None, f"{where}: `{command}` names no command"
