"""A command's options and operands, read the way GNU tools read them
(``knm.core.shell.options``)."""

from __future__ import annotations

from knm.core.shell.options import Args
from knm.core.shell.values import Word


def _args(*texts: str, with_value: str = "", long_with_value: tuple[str, ...] = ()) -> Args:
    return Args([Word.plain(t) for t in texts], with_value, long_with_value)


def test_short_options_bundle_and_operands_stay_in_order() -> None:
    args = _args("-rf", "/a", "/b")
    assert args.has("r") and args.has("f") and not args.has("i")
    assert [w.value for w in args.operands] == ["/a", "/b"]


def test_an_option_taking_a_value_takes_the_rest_of_its_word_or_the_next_word() -> None:
    assert _args("-o/etc/passwd", with_value="o").values["o"] == "/etc/passwd"
    assert _args("-o", "/etc/passwd", "in", with_value="o").values["o"] == "/etc/passwd"


def test_a_long_option_is_known_by_any_unambiguous_prefix_of_three_or_more() -> None:
    assert _args("--recur", "/x").has("", "recursive")
    assert not _args("--re", "/x").has("", "recursive")


def test_a_long_option_takes_its_value_after_an_equals_sign_or_as_the_next_word() -> None:
    assert _args("--output=/x").values["output"] == "/x"
    assert _args("--output", "/x", long_with_value=("output",)).values["output"] == "/x"


def test_everything_after_a_double_dash_is_an_operand() -> None:
    args = _args("--", "-rf", "/")
    assert not args.has("r") and [w.value for w in args.operands] == ["-rf", "/"]
