"""A command's options and operands, read the way GNU tools read them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from knm.core.shell.values import Word


class Args:
    """A command's arguments split the way GNU tools read them."""

    def __init__(
        self, words: Sequence[Word], with_value: str = "", long_with_value: Iterable[str] = ()
    ):
        self.short: set[str] = set()
        self.long: set[str] = set()
        self.options: list[str] = []
        self.operands: list[Word] = []
        self.values: dict[str, str] = {}
        long_values = set(long_with_value)
        i = 0
        words = list(words)
        while i < len(words):
            word = words[i]
            value = word.value
            if value == "--":
                self.operands.extend(words[i + 1 :])
                break
            if value.startswith("--") and len(value) > 2:
                name, eq, rest = value[2:].partition("=")
                self.long.add(name)
                self.options.append(value)
                if eq:
                    self.values[name] = rest
                elif name in long_values and i + 1 < len(words):
                    self.values[name] = words[i + 1].value
                    i += 1
            elif value.startswith("-") and len(value) > 1 and not word.unknown:
                self.options.append(value)
                for j, flag in enumerate(value[1:], start=1):
                    self.short.add(flag)
                    if flag in with_value:
                        if j < len(value) - 1:
                            self.values[flag] = value[j + 1 :]
                        elif i + 1 < len(words):
                            self.values[flag] = words[i + 1].value
                            i += 1
                        break
            else:
                self.operands.append(word)
            i += 1

    def has(self, short: str = "", *long: str) -> bool:
        return any(c in self.short for c in short) or any(
            any(opt == name or (len(opt) >= 3 and name.startswith(opt)) for opt in self.long)
            for name in long
        )
