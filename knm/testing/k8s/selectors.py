"""Label and field selectors with the semantics of ``k8s.io/apimachinery/pkg/labels``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Operator = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_RE_NOT_EXISTS = re.compile(rf"^\s*!\s*({_KEY})\s*$")
_RE_EXISTS = re.compile(rf"^\s*({_KEY})\s*$")
_RE_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*$")
_RE_CMP = re.compile(rf"^\s*({_KEY})\s*(==|!=|=|>|<)\s*({_VALUE})\s*$")


class SelectorError(ValueError):
    """The selector text does not parse; the API answers 400 BadRequest."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            # Inequality and notin also select objects that lack the key entirely.
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                try:
                    have, want = int(value or ""), int(self.values[0])
                except ValueError:
                    return False
                return have > want if self.op == "gt" else have < want
        return False  # pragma: no cover - exhaustive match above


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()
    # A nil selector (as opposed to an empty one) selects nothing, which is how
    # a PodDisruptionBudget without spec.selector behaves.
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.nothing and all(r.matches(labels) for r in self.requirements)


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    for raw in _split_top_level(text):
        if m := _RE_NOT_EXISTS.match(raw):
            requirements.append(Requirement(m[1], "!"))
        elif m := _RE_EXISTS.match(raw):
            requirements.append(Requirement(m[1], "exists"))
        elif m := _RE_SET.match(raw):
            values = tuple(v.strip() for v in m[3].split(",") if v.strip())
            if not all(re.fullmatch(_VALUE, v) for v in values):
                raise SelectorError(f"unable to parse requirement: invalid value in {raw!r}")
            requirements.append(Requirement(m[1], "in" if m[2] == "in" else "notin", values))
        elif m := _RE_CMP.match(raw):
            op = {"=": "=", "==": "=", "!=": "!=", ">": "gt", "<": "lt"}[m[2]]
            if op in ("gt", "lt") and not re.fullmatch(r"-?\d+", m[3]):
                raise SelectorError(
                    f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must "
                    f"be an integer: {raw!r}"
                )
            requirements.append(Requirement(m[1], op, (m[3],)))  # type: ignore[arg-type]
        else:
            raise SelectorError(f"unable to parse requirement: {raw.strip()!r}")
    return LabelSelector(tuple(requirements))


def selector_from_spec(
    match_labels: Mapping[str, str] | None,
    match_expressions: Iterable[Mapping[str, object]] | None,
) -> LabelSelector:
    """Build a selector from the structured ``metav1.LabelSelector`` form."""
    requirements = [Requirement(k, "=", (v,)) for k, v in sorted((match_labels or {}).items())]
    ops: dict[str, Operator] = {
        "In": "in",
        "NotIn": "notin",
        "Exists": "exists",
        "DoesNotExist": "!",
    }
    for expr in match_expressions or ():
        operator = str(expr.get("operator"))
        if operator not in ops:
            raise SelectorError(f"{operator!r} is not a valid label selector operator")
        values = expr.get("values") or []
        assert isinstance(values, list)
        requirements.append(Requirement(str(expr["key"]), ops[operator], tuple(map(str, values))))
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class FieldTerm:
    field: str
    negate: bool
    value: str


def parse_field_selector(text: str | None) -> tuple[FieldTerm, ...]:
    if text is None or not text.strip():
        return ()
    terms: list[FieldTerm] = []
    for raw in text.split(","):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*", raw)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{raw}'")
        terms.append(FieldTerm(m[1], m[2] == "!=", m[3]))
    return tuple(terms)


def field_matcher(
    terms: tuple[FieldTerm, ...],
    supported: Mapping[str, Callable[[object], str]],
) -> Callable[[object], bool]:
    """Compile terms against per-field getters, failing like the server on unknown fields."""
    for term in terms:
        if term.field not in supported:
            raise SelectorError(f"field label not supported: {term.field}")

    def matches(obj: object) -> bool:
        return all((supported[t.field](obj) == t.value) != t.negate for t in terms)

    return matches
