"""Template rendering: only params and steps, shell-quoted into commands."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knm.plugins.workflows.templates import RenderError, references, render


def test_params_and_step_results_render_and_other_jinja_passes_through() -> None:
    fields = {
        "echo": "{{ params.who }} / {{steps.a.task_id}}",
        "extra_vars": {"x": "{{ inventory_hostname }}"},
    }
    out = render(fields, {"who": "ops"}, {"a": {"task_id": "ssh-exec-1-aaaaaa"}})
    assert out == {
        "echo": "ops / ssh-exec-1-aaaaaa",
        "extra_vars": {"x": "{{ inventory_hostname }}"},
    }


@pytest.mark.parametrize(
    "value",
    ["$(touch /tmp/pwned)", "'; touch /tmp/pwned; '", "`id`", "a\nrm -rf /", "x && y", '"quoted"'],
)
def test_a_value_rendered_into_a_command_is_one_shell_word(value: str) -> None:
    out = render({"command": "echo {{ params.v }}"}, {"v": value}, {})
    assert shlex.split(out["command"]) == ["echo", value]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_no_parameter_value_can_add_shell_words(value: str) -> None:
    if "\x00" in value:
        return
    out = render({"command": "printf %s {{ params.v }}"}, {"v": value}, {})
    assert shlex.split(out["command"]) == ["printf", "%s", value]


def test_missing_values_are_errors_and_references_are_found() -> None:
    with pytest.raises(RenderError):
        render("{{ params.nope }}", {}, {})
    with pytest.raises(RenderError):
        render("{{ steps.later.status }}", {}, {})
    assert set(references({"a": ["{{ params.p }}", "{{ steps.s.x }}"]})) == {
        ("params", "p"),
        ("steps", "s.x"),
    }
