"""Ansible plugin settings and request structs."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec

from knm.core.features import ExecutorSettings, executable_problem
from knm.core.tasks import ExecRequest

#: Forks never exceed this, whatever ``--forks`` or the node count ask for.
MAX_FORKS = 50
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def default_binary() -> str:
    """The ansible-core installed with knm (a dependency), beside the running interpreter; else
    the first on PATH. PATH's may be another version, or a shim: pyenv's runs ~0.15 s of bash
    before every playbook."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ansible-playbook") or "/usr/bin/ansible-playbook"


class AnsibleSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: ansible-playbook runs at once in one process; ``timeout``: seconds a
    whole run may take. Each run gets a directory in ``temp_dir``, removed afterwards unless
    ``keep_artifacts``. ``run_user``: the unprivileged OS user ansible-playbook runs as
    (created with ``useradd --system`` when knm runs as root). ``pipelining``: modules are fed
    to the remote Python on stdin instead of copied first (one SSH round trip per task instead
    of several); it needs no ``requiretty`` in the nodes' sudoers for ``become``. Without a
    terminal a remote command outlives its connection, so a cancelled run's remote processes
    are killed by knm itself (see ``remote.py``)."""

    binary_path: str = ""
    #: Where runs get their directories; empty: ``<data_dir>/ansible-runs``.
    temp_dir: str = ""
    timeout: int = 3600
    max_concurrent: int = 10
    keep_artifacts: bool = False
    run_user: str = "knm-ansible"
    pipelining: bool = True
    #: Seconds ``ansible-playbook --syntax-check`` may take when a playbook is saved.
    syntax_check_timeout: int = 30
    #: Plays that run on the knm host itself (``hosts: localhost``, ``connection: local``,
    #: ``delegate_to: localhost`` …, see ``targets_host.py``) are refused unless this is true.
    allow_local_plays: bool = False

    def __post_init__(self) -> None:
        if not self.binary_path:
            self.binary_path = default_binary()

    def problems(self) -> list[str]:
        found = super().problems()
        if self.temp_dir and not self.temp_dir.startswith("/"):
            found.append("temp_dir must be an absolute path")
        if not _USER_NAME.fullmatch(self.run_user) or self.run_user == "root":
            found.append("run_user must be a plain user name, not root")
        if not 1 <= self.syntax_check_timeout <= 600:
            found.append("syntax_check_timeout must be between 1 and 600 seconds")
        if self.enabled:
            problem = executable_problem(self.binary_path)
            if problem:
                found.append(f"binary_path: {problem}; ansible cannot be enabled")
        return found


class AnsibleRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    """``POST /automation/ansible/run``: a stored playbook run against a cluster's nodes.

    ``timeout`` bounds the whole run (default: the settings' ``timeout``)."""

    playbook_id: int
    extra_args: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    extra_vars: dict[str, Any] = msgspec.field(default_factory=dict)
