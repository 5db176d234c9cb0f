"""Ansible plugin settings and request/response structs."""

from __future__ import annotations

import shutil

from knm.core.features import ExecutorSettings, executable_problem


def _default_binary() -> str:
    return shutil.which("ansible-playbook") or "/usr/bin/ansible-playbook"


class AnsibleSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: ansible-playbook runs at once in one process."""

    binary_path: str = ""
    temp_dir: str = "/tmp/ansible-runs"
    timeout: int = 3600
    max_concurrent: int = 10

    def __post_init__(self) -> None:
        if not self.binary_path:
            self.binary_path = _default_binary()

    def problems(self) -> list[str]:
        found = super().problems()
        if not self.temp_dir.startswith("/"):
            found.append("temp_dir must be an absolute path")
        if self.enabled:
            problem = executable_problem(self.binary_path)
            if problem:
                found.append(f"binary_path: {problem}; ansible cannot be enabled")
        return found
