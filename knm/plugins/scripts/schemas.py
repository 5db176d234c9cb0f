"""Scripts plugin settings and request/response structs."""

from __future__ import annotations

from knm.core.features import ExecutorSettings


class ScriptsSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: simultaneous script sessions (they share the SSH session limit too)."""

    timeout: int = 300
    max_concurrent: int = 50
