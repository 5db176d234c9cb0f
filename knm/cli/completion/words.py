"""The candidates for the word under the cursor, found by walking the real parser.

``knm __complete CWORD WORDS...`` prints them one a line (``main``). The walk reads the words
before the cursor as argparse would: a sub-command chooses the next parser, an option consumes
its values, ``--`` ends the options. Static words (commands, options, ``choices``) need no more
than the parsers; only an argument marked with ``names.live`` asks the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from knm.cli.completion import names

#: Options that may be given again, so they stay offered once given.
REPEATABLE = (argparse._AppendAction, argparse._CountAction, argparse._ExtendAction)


@dataclass
class Walk:
    """Where the words before the cursor leave the parse."""

    parser: argparse.ArgumentParser
    #: Positional arguments still to fill (a sub-command's choice is one).
    positionals: list[argparse.Action]
    #: Options given, with or without their values.
    seen: set[argparse.Action] = field(default_factory=set)
    #: The option whose values are still awaited, and how many.
    pending: argparse.Action | None = None
    left: int = 0
    #: After ``--``: every word is positional.
    no_options: bool = False
    #: ``--url`` as given on the line: live names come from that server.
    url: str | None = None
    #: A word the parser does not know: nothing sensible can follow.
    lost: bool = False

    @property
    def awaiting(self) -> argparse.Action | None:
        """The option whose value the next word is, if any."""
        return self.pending if self.left else None


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if not action.option_strings]


def _arity(action: argparse.Action) -> int:
    """How many words an option consumes after it (one for ``?``, ``*``, ``+``: its first)."""
    if action.nargs is None:
        return 1
    if isinstance(action.nargs, int):
        return action.nargs
    return 1 if action.nargs in ("?", "*", "+") else 0


def _option(parser: argparse.ArgumentParser, word: str) -> tuple[argparse.Action | None, bool]:
    """The option ``word`` gives, and whether its value is in the same word (``--x=1``, ``-x1``)."""
    found = parser._option_string_actions
    if word.startswith("--"):
        name, eq, _ = word.partition("=")
        return found.get(name), bool(eq)
    if word in found:
        return found[word], False
    return found.get(word[:2]), True


def _note_value(state: Walk, action: argparse.Action, value: str) -> None:
    if action.dest == "url":
        state.url = value


def walk(parser: argparse.ArgumentParser, before: Sequence[str]) -> Walk:
    state = Walk(parser, _positionals(parser))
    for word in before:
        if (awaited := state.awaiting) is not None:
            _note_value(state, awaited, word)
            state.left -= 1
            continue
        if word == "--" and not state.no_options:
            state.no_options = True
            continue
        if word.startswith("-") and word != "-" and not state.no_options:
            action, attached = _option(state.parser, word)
            if action is not None:
                state.seen.add(action)
                if attached:
                    _note_value(state, action, word.partition("=")[2] or word[2:])
                else:
                    state.pending, state.left = action, _arity(action)
            continue
        if not state.positionals:
            continue  # more words than arguments (a remote command after --)
        action = state.positionals[0]
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(word)
            if chosen is None:
                state.lost = True
                return state
            state.parser, state.positionals, state.seen = chosen, _positionals(chosen), set()
            continue
        if action.nargs not in ("*", "+", argparse.REMAINDER):
            state.positionals.pop(0)
    return state


def _values(action: argparse.Action, prefix: str, url: str | None) -> list[str]:
    if action.choices is not None:
        return [str(choice) for choice in action.choices if str(choice).startswith(prefix)]
    kind = names.kind_of(action)
    return names.fetch(kind, prefix, url) if kind is not None else []


def _options(state: Walk, prefix: str) -> list[str]:
    # Long options only, unless a lone "-" (or a short option) was typed: the list stays short.
    long_only = not prefix.startswith("-") or prefix.startswith("--")
    found: list[str] = []
    for action in state.parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        if action in state.seen and not isinstance(action, REPEATABLE):
            continue
        for option in action.option_strings:
            if option.startswith(prefix) and not (long_only and not option.startswith("--")):
                found.append(option)
    return found


def candidates(parser: argparse.ArgumentParser, words: Sequence[str], cword: int) -> list[str]:
    """What may stand at ``words[cword]`` (``words[0]`` is the program), given the words
    before it; the word itself is the prefix every candidate starts with."""
    current = words[cword] if cword < len(words) else ""
    before = list(words[1:cword])
    # Bash splits "--status=ru" into "--status", "=", "ru" and replaces only "ru": the option
    # is read back from the words before "=", and its values are answered bare.
    split = current == "=" or (bool(before) and before[-1] == "=")
    if split:
        before, current = (before, "") if current == "=" else (before[:-1], current)
    state = walk(parser, before)
    if state.lost or (split and state.awaiting is None):
        return []
    if (awaited := state.awaiting) is not None:
        return _values(awaited, current, state.url)
    if current.startswith("-") and not state.no_options:
        if current.startswith("--") and "=" in current:
            name, _, value = current.partition("=")
            action = state.parser._option_string_actions.get(name)
            values = _values(action, value, state.url) if action is not None else []
            return [f"{name}={v}" for v in values]
        return _options(state, current)
    if not state.positionals:
        return [] if current or state.no_options else _options(state, "")
    action = state.positionals[0]
    if isinstance(action, argparse._SubParsersAction):
        return [name for name in action.choices if name.startswith(current)]
    found = _values(action, current, state.url)
    optional = action.nargs in ("?", "*")
    if not found and not current and optional and not state.no_options:
        return _options(state, "")
    return found


def parser_for(before: Sequence[str]) -> argparse.ArgumentParser:
    """knm's parser, with the plugins' commands when the line names one knm does not know
    (as ``knm.cli.main`` decides: a plugin is imported only then)."""
    from knm.cli.main import _command_of, _known, build_parser

    parser = build_parser()
    command = _command_of(parser, before)
    if command is not None and command not in _known(parser):
        parser = build_parser(plugins=True)
    return parser


def main(argv: Sequence[str]) -> int:
    """``knm __complete CWORD WORDS...``: the candidates, one a line; always exit 0."""
    try:
        cword = int(argv[0])
        words = list(argv[1:])
        found = candidates(parser_for(words[1:cword]), words, cword)
    except Exception:
        # A shell's TAB must never print an error or fail: no candidate is the answer.
        return 0
    sys.stdout.write("".join(f"{word}\n" for word in dict.fromkeys(found)))
    return 0
