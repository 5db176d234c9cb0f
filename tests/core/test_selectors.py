"""Label selectors and label rules, with the semantics of ``kubectl -l``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knm.core.errors import Invalid
from knm.core.selectors import (
    Requirement,
    Selector,
    label_key_problem,
    label_problems,
    label_value_problem,
    parse_selector,
)

WORKER = "node-role.kubernetes.io/worker"
LABELS = {WORKER: "", "zone": "east", "disk": "ssd"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zone=east", True),
        ("zone==east", True),
        ("zone=west", False),
        ("zone!=west", True),
        ("zone!=east", False),
        ("gpu!=yes", True),
        (WORKER, True),
        (f"!{WORKER}", False),
        ("!gpu", True),
        ("zone in (west,east)", True),
        ("zone in (west)", False),
        ("zone notin (west)", True),
        ("gpu notin (yes)", True),
        ("zone notin (east,west)", False),
        (f"{WORKER},zone=east, disk in (ssd)", True),
        (f"{WORKER},zone=west", False),
        (f"{WORKER}=", True),
        ("", True),
    ],
)
def test_a_selector_matches_the_way_kubectl_does(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


def test_str_is_a_canonical_form() -> None:
    selector = parse_selector(" zone == east , !gpu,disk in (ssd, hdd, ssd) ,a")
    assert str(selector) == "a,disk in (hdd,ssd),!gpu,zone=east"
    assert parse_selector(str(selector)) == selector


def test_the_structure_is_plain_requirements() -> None:
    assert parse_selector("zone in (b,a)") == Selector((Requirement("zone", "in", ("a", "b")),))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("zone east", "expected an operator"),
        ("zone=east=west", "expected ',' between requirements"),
        ("zone,", "expected a label key, found the end"),
        (",zone", "expected a label key"),
        ("zone in ()", "at least one value"),
        ("zone in (a", "expected ',' or ')'"),
        ("zone in a", "expected '(' after in/notin"),
        ("zone in (a,)", "expected a label value"),
        ("Example.com/x=1", "prefix must be a lowercase DNS subdomain"),
        ("/x", "prefix must be a lowercase DNS subdomain"),
        ("-x", "the name must be 1-63 characters"),
        ("zone=-east", "label value '-east'"),
        ("!", "expected a label key, found the end"),
        ("x" * 5000, "longer than 4096"),
    ],
)
def test_bad_syntax_is_invalid_with_a_clear_message(text: str, detail: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_selector(text)
    assert detail in caught.value.error


def test_label_keys_and_values_follow_kubernetes_rules() -> None:
    assert label_key_problem(WORKER) is None
    assert label_key_problem("app.kubernetes.io/name") is None
    assert label_key_problem("a" * 63) is None
    assert label_key_problem("a" * 64) is not None
    assert label_key_problem("zone\n") is not None
    assert label_key_problem("") is not None
    assert label_value_problem("") is None
    assert label_value_problem("v1.2_3-x") is None
    assert label_value_problem("has space") is not None
    assert label_problems({"ok": "fine", "bad key": "x y"}, "nodes[0]: ") == [
        "nodes[0]: label key 'bad key': the name must be 1-63 characters of letters, digits, "
        "'-', '_' or '.', starting and ending with a letter or digit",
        "nodes[0]: label value 'x y': must be empty or 1-63 characters of letters, digits, '-', "
        "'_' or '.', starting and ending with a letter or digit",
    ]


# --- properties --------------------------------------------------------------------------------

KEYS = ["a", "zone", "in", "notin", WORKER, "example.com/tier"]
VALUES = ["", "1", "east", "west", "a.b_c-d"]
SET_VALUES = [v for v in VALUES if v]

Term = tuple[str, str, tuple[str, ...]]


def _spaces() -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", "  "])


@st.composite
def terms(draw: st.DrawFn) -> tuple[Term, str]:
    """A requirement as data (for the reference) and as text (for the parser)."""
    key = draw(st.sampled_from(KEYS))
    op = draw(st.sampled_from(["=", "==", "!=", "exists", "!", "in", "notin"]))
    s = [draw(_spaces()) for _ in range(4)]
    if op == "exists":
        return (key, op, ()), f"{s[0]}{key}{s[1]}"
    if op == "!":
        return (key, op, ()), f"{s[0]}!{s[1]}{key}{s[2]}"
    if op in ("=", "==", "!="):
        value = draw(st.sampled_from(VALUES))
        return (key, op, (value,)), f"{s[0]}{key}{s[1]}{op}{s[2]}{value}{s[3]}"
    values = draw(st.lists(st.sampled_from(SET_VALUES), min_size=1, max_size=4))
    inner = f"{s[2]},{s[3]}".join(values)
    return (key, op, tuple(values)), f"{s[0]}{key} {op}{s[1]}({inner}){s[2]}"


def reference(term: Term, labels: dict[str, str]) -> bool:
    key, op, values = term
    if op == "exists":
        return key in labels
    if op == "!":
        return key not in labels
    if op in ("=", "=="):
        return key in labels and labels[key] == values[0]
    if op == "!=":
        return key not in labels or labels[key] != values[0]
    if op == "in":
        return key in labels and labels[key] in values
    return key not in labels or labels[key] not in values


label_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=len(KEYS))


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(terms(), min_size=1, max_size=5), labels=label_sets)
def test_matches_agrees_with_a_straightforward_evaluation(
    parts: list[tuple[Term, str]], labels: dict[str, str]
) -> None:
    selector = parse_selector(",".join(text for _, text in parts))
    assert selector.matches(labels) == all(reference(term, labels) for term, _ in parts)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(terms(), max_size=5), labels=label_sets)
def test_the_canonical_form_parses_back_to_the_same_selector(
    parts: list[tuple[Term, str]], labels: dict[str, str]
) -> None:
    selector = parse_selector(",".join(text for _, text in parts))
    again = parse_selector(str(selector))
    assert again == selector
    assert str(again) == str(selector)
    assert again.matches(labels) == selector.matches(labels)


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("az09./-_=!(), \tin"), max_size=40) | st.text(max_size=40)
)
def test_any_text_parses_or_is_invalid_and_never_crashes(text: str) -> None:
    try:
        selector = parse_selector(text)
    except Invalid as exc:
        assert exc.error.startswith(("invalid label selector", "label selector is longer"))
    else:
        assert parse_selector(str(selector)) == selector
