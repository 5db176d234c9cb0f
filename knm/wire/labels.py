"""Kubernetes' rules for label keys and values, which the server and the CLI both check.

Here rather than in ``knm.core.selectors`` (which re-exports them) so that the CLI's
``knm k8s label`` checks its words before a request without needing the server installed.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return (
            f"label key {key!r}: the prefix must be a lowercase DNS subdomain "
            "of at most 253 characters"
        )
    if not NAME.fullmatch(name):
        return (
            f"label key {key!r}: the name must be 1-63 characters of letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value (the empty value is valid), or None."""
    if value and not NAME.fullmatch(value):
        return (
            f"label value {value!r}: must be empty or 1-63 characters of letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit"
        )
    return None
