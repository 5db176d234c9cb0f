"""Regular expressions written by users (site deny/allow rules, process-name patterns), run
through RE2: linear time in the text, whatever the pattern, so no input can stall a check."""

from __future__ import annotations

import functools
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 8 << 20  # a pattern that needs more is refused, not slow
_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; ``ValueError`` names what is wrong with it (backreferences and
    look-around are not supported: RE2 guarantees linear time by leaving them out)."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(str(reason)) from None


def pattern_problem(pattern: str) -> str:
    """Why ``pattern`` cannot be used ("" when it can)."""
    try:
        compile_pattern(pattern)
    except ValueError as exc:
        return str(exc)
    return ""
