"""Bash's quoting and brace expansion, as the guard-rail's walk reads words."""

from __future__ import annotations

import re

from knm.core.shell.values import MAX_ALTS


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def unescape_dq(text: str) -> str:
    return re.sub(r'\\([\\"$`\n])', lambda m: "" if m.group(1) == "\n" else m.group(1), text)


def ansi_c(body: str) -> str:
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return body


_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")


_SEQUENCE = re.compile(r"\{(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.-?\d+)?\}")


def brace_expand(word: str, limit: int = MAX_ALTS) -> list[str]:
    """Bash's ``{a,b}`` expansion, at most ``limit`` results and 8 brace groups deep (the rest
    stays as written)."""
    results = [word]
    for _ in range(8):
        expanded: list[str] = []
        changed = False
        for item in results:
            match = _BRACES.search(item)
            sequence = _SEQUENCE.search(item) if match is None else None
            if match is None and sequence is None:
                expanded.append(item)
                continue
            changed = True
            if sequence is not None:
                head, tail = item[: sequence.start()], item[sequence.end() :]
                expanded.extend(head + v + tail for v in _sequence(*sequence.groups(), limit))
                continue
            head, tail = item[: match.start()], item[match.end() :]
            expanded.extend(head + option + tail for option in match.group(1).split(","))
        results = list(dict.fromkeys(expanded))[:limit]
        if not changed:
            break
    return results


def _sequence(start: str, end: str, limit: int) -> list[str]:
    """``{a..z}``, ``{1..10}``: the first ``limit`` values (a sequence of letters covers every
    first letter a path may have)."""
    if start.lstrip("-").isdigit() and end.lstrip("-").isdigit():
        a, b = int(start), int(end)
        step = 1 if b >= a else -1
        return [str(v) for v in range(a, b + step, step)[:limit]]
    if start.isalpha() and end.isalpha():
        a, b = ord(start), ord(end)
        step = 1 if b >= a else -1
        return [chr(v) for v in range(a, b + step, step)][: max(limit, 52)]
    return [f"{{{start}..{end}}}"]
