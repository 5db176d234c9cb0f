"""SSH plugin settings and request/response structs."""

from __future__ import annotations

from typing import Literal

from knm.core.features import ExecutorSettings


class SshSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: simultaneous SSH sessions in one process, across every task and kind
    that uses the SSH transport. ``connection_pool_size``: idle connections kept for reuse."""

    timeout: int = 300
    max_concurrent: int = 50
    connection_pool_size: int = 20
    host_key_policy: Literal["tofu", "strict", "off"] = "tofu"

    def problems(self) -> list[str]:
        found = super().problems()
        if not 0 <= self.connection_pool_size <= 10_000:
            found.append("connection_pool_size must be between 0 and 10000")
        return found
