"""knm's own suite: what ``-m "not slow"`` leaves out besides the tests that use the real-server
fixtures (``knm.testing.plugin.SLOW_FIXTURES``), each with the reason. ``bash scripts/test.sh``
runs all of it; the quick run is meant to take under 3 minutes on an idle 2-core machine."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Modules (or folders) whose every test is slow, and why.
SLOW_MODULES = {
    "cli/test_local.py": "runs the knm CLI as a fresh Python process per command",
    "cli/test_remote_interrupt.py": "a real knm serve and a CLI on a pty, interrupted",
    "cli/test_remote_users.py": "the CLI as processes against a real knm serve",
    "client/test_watch.py": "API and worker as separate processes, the API restarted",
    "contract/": "a fresh install under a real knm serve with sshd nodes",
    "contrib/": "sshd nodes, and a plugin installed with pip",
    "core/tasks/test_scale_out.py": "several knm processes on one database",
    "core/tasks/test_shutdown.py": "knm processes sent SIGTERM",
    "core/test_embedded_pg.py": "knm serve starting, crashing and recovering its PostgreSQL",
    "core/test_progress.py": "the WebSocket stream of a real server over loopback",
    "core/test_progress_memory.py": "full-size tasks streamed to measure the server's memory",
    "core/test_progress_split.py": "a knm worker and a knm serve at full event rate",
    "plugins/ansible/": "ansible-playbook runs against sshd nodes",
    "plugins/scripts/": "scripts run on sshd nodes",
    "plugins/ssh/": "sshd nodes",
    "plugins/workflows/test_recovery.py": "workers killed and taken over",
    "plugins/workflows/test_safety.py": "whole maintenance rolls, waiting on simulated reboots",
    "test_readme.py": "the README's session in bash against knm serve and sshd nodes",
    "testing/test_fleet_server.py": "an SSH server on many loopback addresses",
    "testing/test_sshfleet.py": "a real OpenSSH fleet",
}

#: Single tests (``module::function``, every parametrization) that are slow, and why.
SLOW_TESTS = {
    "core/test_shellparse_split.py::test_a_destructive_command_anywhere_in_a_64_kib_shape_is_refused": (
        "every 64 KiB shape checked whole several times: seconds of CPU each"
    ),
    "core/test_shellparse_split.py::test_each_64_kib_shape_runs_the_same_commands_as_in_the_full_walk": (
        "every 64 KiB shape parsed whole and walked twice: seconds of CPU each"
    ),
    "core/test_schema_ui.py::test_the_document_is_valid_openapi": (
        "full OpenAPI validation of the whole document"
    ),
    "testing/test_k8s_standin.py::test_runs_as_a_separate_process": (
        "starts the stand-in as a Python process of its own"
    ),
    "core/test_bad_input.py::test_random_json_bodies_never_make_a_500": "API fuzzing over every route",
    "core/test_bad_input.py::test_raw_bytes_never_make_a_500": "API fuzzing over every route",
    "core/test_bad_input.py::test_random_paths_and_query_strings_never_make_a_500": (
        "API fuzzing over every route"
    ),
    "core/test_bad_input.py::test_boundary_values_in_bodies_never_make_a_500": (
        "API fuzzing over every route"
    ),
    "core/test_bad_input.py::test_boundary_ids_in_paths_and_values_in_queries_never_make_a_500": (
        "API fuzzing over every route"
    ),
}

_ROOT = Path(__file__).parent


def slow_reason(item: pytest.Item) -> str | None:
    """Why ``item`` is slow by this table, or None."""
    where = item.path.relative_to(_ROOT).as_posix()
    for prefix, reason in SLOW_MODULES.items():
        if where.startswith(prefix):
            return reason
    name = getattr(item, "originalname", item.name)
    return SLOW_TESTS.get(f"{where}::{name}")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if slow_reason(item) is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def ansible_temp_dir() -> Iterator[str]:
    """A ``temp_dir`` for Ansible's settings that knm may make its own, removed afterwards:
    the contract's example (``/tmp/ansible-runs``) would be made, and left, in the machine's
    /tmp."""
    path = tempfile.mkdtemp(prefix="knm-test-ansible-runs-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
