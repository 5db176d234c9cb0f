"""knm's own suite: which modules ``-m "not slow"`` leaves out besides the tests that use the
real-server fixtures (``knm.testing.plugin.SLOW_FIXTURES``): modules that start servers of
their own (sshd fleets, knm processes, Ansible runs, a terminal)."""

from __future__ import annotations

from pathlib import Path

import pytest

SLOW_MODULES = (
    "cli/test_remote_interrupt.py",
    "cli/test_remote_users.py",
    "client/test_watch.py",
    "contract/",
    "contrib/",
    "core/tasks/test_scale_out.py",
    "core/tasks/test_shutdown.py",
    "core/test_embedded_pg.py",
    "core/test_progress.py",
    "core/test_progress_memory.py",
    "core/test_progress_split.py",
    "plugins/ansible/",
    "plugins/scripts/",
    "plugins/ssh/",
    "plugins/workflows/test_recovery.py",
    "test_readme.py",
    "testing/test_fleet_server.py",
    "testing/test_sshfleet.py",
)

_ROOT = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(_ROOT).as_posix()
        if where.startswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
