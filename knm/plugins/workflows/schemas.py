"""Workflow plugin settings and definition structs."""

from __future__ import annotations

from knm.core.features import ExecutorSettings


class WorkflowsSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: steps of one workflow running at once."""

    timeout: int = 86_400
    max_concurrent: int = 10
    max_steps: int = 200

    def problems(self) -> list[str]:
        found = super().problems()
        if not 1 <= self.max_steps <= 10_000:
            found.append("max_steps must be between 1 and 10000")
        return found
