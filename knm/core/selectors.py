"""Kubernetes-style labels and label selectors (``node-role.kubernetes.io/worker``, ``zone in (a,b)``).

A selector is a comma-separated list of requirements that must all hold:

==========================  =====================================================
``key=value``, ``key==value``  the label is present and equals ``value``
``key!=value``              the label is absent, or present with another value
``key``                     the label is present (any value)
``!key``                    the label is absent
``key in (a,b)``            the label is present with one of the values
``key notin (a,b)``         the label is absent, or present with none of the values
==========================  =====================================================

Keys and values follow Kubernetes' rules, so a selector written for ``kubectl -l`` means the same
here. ``str(selector)`` is a canonical form: requirements sorted, ``==`` written ``=``, set values
sorted and unique; parsing it gives an equal selector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from knm.core.errors import Invalid
from knm.wire.labels import label_key_problem, label_value_problem

Operator = Literal["=", "!=", "exists", "!", "in", "notin"]

MAX_SELECTOR_LENGTH = 4096
#: Characters that end a key or a value in selector text.
_SPECIAL = frozenset("=!(),")


# --- labels ------------------------------------------------------------------------------------


def label_problems(labels: Mapping[str, str], where: str = "") -> list[str]:
    """Every problem with the keys and values of ``labels``; ``where`` prefixes each one."""
    found = []
    for key, value in labels.items():
        for problem in (label_key_problem(key), label_value_problem(value)):
            if problem:
                found.append(f"{where}{problem}")
    return found


# --- selectors ---------------------------------------------------------------------------------


class Requirement(msgspec.Struct, frozen=True):
    """One term of a selector. ``values`` is empty for ``exists`` and ``!``, one value for ``=``
    and ``!=``, a sorted set of at least one value for ``in`` and ``notin``."""

    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        present = self.key in labels and labels[self.key] in self.values
        return present if self.op in ("=", "in") else not present

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


class Selector(msgspec.Struct, frozen=True):
    """Requirements that must all hold. The empty selector matches every label set."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _tokens(text: str) -> list[str]:
    """Words (keys, values, ``in``, ``notin``) and the operators ``= == != ! ( ) ,``."""
    found: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif text.startswith(("==", "!="), i):
            found.append(text[i : i + 2])
            i += 2
        elif char in _SPECIAL:
            found.append(char)
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            found.append(text[start:i])
    return found


def _is_word(token: str | None) -> bool:
    return bool(token) and token not in _SPECIAL and token not in ("==", "!=")  # type: ignore[operator]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def fail(self, detail: str) -> Invalid:
        return Invalid(f"invalid label selector {self.text!r}: {detail}")

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.at += 1
        return token

    def key(self) -> str:
        token = self.take()
        if not _is_word(token):
            raise self.fail(f"expected a label key, found {_shown(token)}")
        assert token is not None
        problem = label_key_problem(token)
        if problem:
            raise self.fail(problem)
        return token

    def value(self, *, allow_empty: bool) -> str:
        token = self.peek()
        if not _is_word(token):
            if allow_empty and token in (None, ",", ")"):
                return ""
            raise self.fail(f"expected a label value, found {_shown(token)}")
        self.at += 1
        assert token is not None
        problem = label_value_problem(token)
        if problem:
            raise self.fail(problem)
        return token

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        token = self.peek()
        if token in (None, ","):
            return Requirement(key, "exists")
        if token in ("=", "==", "!="):
            self.take()
            op: Operator = "!=" if token == "!=" else "="
            return Requirement(key, op, (self.value(allow_empty=True),))
        if token in ("in", "notin"):
            self.take()
            return Requirement(key, token, self.value_set())  # type: ignore[arg-type]
        raise self.fail(
            f"expected an operator (=, ==, !=, in, notin) after {key!r}, found {_shown(token)}"
        )

    def value_set(self) -> tuple[str, ...]:
        if self.take() != "(":
            raise self.fail("expected '(' after in/notin")
        if self.peek() == ")":
            raise self.fail("in and notin need at least one value")
        values = {self.value(allow_empty=False)}
        while self.peek() == ",":
            self.take()
            values.add(self.value(allow_empty=False))
        token = self.take()
        if token != ")":
            raise self.fail(f"expected ',' or ')' in a value set, found {_shown(token)}")
        return tuple(sorted(values))

    def selector(self) -> Selector:
        if self.peek() is None:
            return Selector()
        requirements = [self.requirement()]
        while self.peek() is not None:
            token = self.take()
            if token != ",":
                raise self.fail(f"expected ',' between requirements, found {_shown(token)}")
            requirements.append(self.requirement())
        return Selector(tuple(sorted(set(requirements), key=_order)))


def _order(requirement: Requirement) -> tuple[str, str, tuple[str, ...]]:
    return requirement.key, requirement.op, requirement.values


def _shown(token: str | None) -> str:
    return "the end" if token is None else repr(token)


def parse_selector(text: str) -> Selector:
    """Parse a label selector; raise ``Invalid`` (422) naming what is wrong."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise Invalid(f"label selector is longer than {MAX_SELECTOR_LENGTH} characters")
    return _Parser(text).selector()
