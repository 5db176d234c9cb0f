"""Template rendering: only params and steps; a value rendered into a command reaches it as
exactly that text, in any quoting context, checked by running the result in a real /bin/sh."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knm.plugins.workflows.templates import RenderError, references, render, render_command


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


def test_a_field_that_is_one_typed_parameter_renders_to_its_type() -> None:
    fields = {"params": {"drain_timeout": "{{ params.t }}", "force": "{{ params.f }}"}}
    out = render(fields, {"t": "5", "f": "yes"}, {}, types={"t": "integer", "f": "boolean"})
    assert out == {"params": {"drain_timeout": 5, "force": True}}
    with pytest.raises(RenderError, match="integer"):
        render("{{ params.t }}", {"t": "soon"}, {}, types={"t": "integer"})


def sh(command: str) -> str:
    """What ``command`` prints under the system's /bin/sh."""
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=10, check=False)
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout.decode("utf-8", "surrogateescape")


#: Templates putting one value in every quoting context, and what the command must receive.
CONTEXTS = {
    "unquoted": ("printf %s {{ params.v }}", lambda v: v),
    "unquoted, glued to text": ("printf %s a{{ params.v }}b", lambda v: f"a{v}b"),
    "double quotes": ('printf %s "note: {{ params.v }}!"', lambda v: f"note: {v}!"),
    "single quotes": ("printf %s 'note: {{ params.v }}!'", lambda v: f"note: {v}!"),
    "adjacent quotes": ("printf %s 'a'{{ params.v }}\"b\"", lambda v: f"a{v}b"),
    "command substitution": (
        'printf %s "$(printf %s {{ params.v }}; printf .)"',
        lambda v: f"{v}.",
    ),
    "substitution in double quotes": (
        'printf %s "x$(printf %s "{{ params.v }}"; printf .)y"',
        lambda v: f"x{v}.y",
    ),
    "backticks": ('printf %s "`printf %s {{ params.v }}; printf .`"', lambda v: f"{v}."),
    "default expansion in double quotes": (
        'printf %s "${KNM_UNSET_X:-{{ params.v }}}"',
        lambda v: v,
    ),
    "here-document": ("cat <<EOF\n<{{ params.v }}>\nEOF", lambda v: f"<{v}>\n"),
    "after a comment": ("# {{ params.v }} 'x\nprintf %s {{ params.v }}", lambda v: v),
    "a step's result": ('printf %s "{{ steps.s.out }}"', lambda v: v),
    "twice": ("printf %s {{ params.v }}'{{ params.v }}'", lambda v: v + v),
}

HOSTILE = [
    "$(echo INJECTED)",
    "hi; uname -n; echo",
    "'; touch /tmp/knm-pwned; '",
    '"; touch /tmp/knm-pwned; "',
    "`id`",
    "a\nrm -rf /nonexistent",
    "${HOME}",
    "\\",
    "'\"'\"",
    "EOF\nid\nEOF",
    "}",
    "*",
    "",
    " spaced  out ",
    "-n",
]


def _check(context: str, value: str) -> None:
    template, expected = CONTEXTS[context]
    command = render_command(template, {"v": value}, {"s": {"out": value}})
    assert sh(command.run) == expected(value), command.run


@pytest.mark.parametrize("context", sorted(CONTEXTS))
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_reach_the_command_as_they_are(context: str, value: str) -> None:
    _check(context, value)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(CONTEXTS)),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=40,
    ),
)
def test_any_value_in_any_quoting_context_is_the_argument_the_command_receives(
    context: str, value: str
) -> None:
    # (Command substitution drops trailing newlines of what it captures; the templates' own
    # ``printf .`` keeps them, so the value is compared whole there too.)
    _check(context, value)


def test_where_no_quoted_reference_exists_rendering_is_refused() -> None:
    with pytest.raises(RenderError, match="arithmetic"):
        render_command("echo $(( {{ params.v }} + 1 ))", {"v": "1"}, {})
    with pytest.raises(RenderError, match="here-document"):
        render_command("cat <<'EOF'\n{{ params.v }}\nEOF", {"v": "1"}, {})


def test_a_whole_command_parameter_is_the_command_and_nowhere_else() -> None:
    types = {"reboot": "command"}
    out = render_command(
        "{{ params.reboot }}", {"reboot": "sudo systemctl reboot"}, {}, types=types
    )
    assert out.run == "sudo systemctl reboot" and out.checked == "sudo systemctl reboot"
    with pytest.raises(RenderError, match="whole command"):
        render_command("nohup {{ params.reboot }} &", {"reboot": "x"}, {}, types=types)
    # The same value in a plain parameter is one word: a program of that name.
    plain = render_command("{{ params.reboot }}", {"reboot": "echo hi"}, {})
    assert "echo hi" not in plain.run.splitlines()[-1]


def test_the_guard_rail_reads_values_inlined_as_words() -> None:
    out = render_command('rm -rf "{{ params.dir }}"', {"dir": "/"}, {})
    assert out.checked == 'rm -rf "/"'
    assert out.values == ["/"]


def test_missing_values_are_errors_and_references_are_found() -> None:
    with pytest.raises(RenderError):
        render("{{ params.nope }}", {}, {})
    with pytest.raises(RenderError):
        render("{{ steps.later.status }}", {}, {})
    assert set(references({"a": ["{{ params.p }}", "{{ steps.s.x }}"]})) == {
        ("params", "p"),
        ("steps", "s.x"),
    }
