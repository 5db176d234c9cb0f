"""Every ``python`` block of ``docs/*.md`` runs in the suite, as written.

The plugins the docs write are loaded from the docs' text as modules (``ping_plugin``, the
minimal executor; ``uptime_plugin``, the one running shell on nodes) into a real app: the first
as the docs' own ``knm_extra_plugins`` fixture registers it, the second as ``KNM_PLUGINS``
names one. The docs' test examples are this module's tests: their fixtures and test functions
are what the blocks define, collected by pytest like any other. Each block is run where
:data:`RUN_BY` says (here, or a test file that reads it), and
:func:`test_every_python_example_in_the_docs_is_run` fails for a block that is not.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster
from knm.testing.tasks import start_task, wait_for_task

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))


@dataclass(frozen=True)
class PythonBlock:
    doc: str
    line: int
    heading: str
    code: str

    @property
    def key(self) -> str:
        return f"{self.doc}: {self.heading}"


def heading_at(text: str, offset: int) -> str:
    """The ``##`` section, and its ``###`` one if any, that ``offset`` of a doc is in."""
    outside = re.sub(r"^ *```.*?^ *```", "", text[:offset], flags=re.S | re.M)
    section, sub = "", ""
    for level, title in re.findall(r"^(#{2,3}) (.*)$", outside, re.M):
        section, sub = (title, "") if level == "##" else (section, title)
    return f"{section} / {sub}" if sub else section


def python_blocks() -> list[PythonBlock]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            found.append(PythonBlock(doc.name, line, heading_at(text, match.start()), match[1]))
    return found


def block(key: str) -> PythonBlock:
    [found] = [b for b in python_blocks() if b.key == key]
    return found


def run_block(key: str, namespace: dict[str, Any]) -> dict[str, Any]:
    found = block(key)
    # Tracebacks name the doc's own lines.
    code = "\n" * found.line + found.code
    exec(compile(code, str(ROOT / "docs" / found.doc), "exec"), namespace)
    return namespace


def module_of(name: str, key: str) -> types.ModuleType:
    """The block as an importable module ``name``, as a plugin's module is."""
    module = types.ModuleType(name)
    module.__file__ = str(ROOT / "docs" / block(key).doc)
    sys.modules[name] = module
    run_block(key, module.__dict__)
    return module


MINIMAL = "plugins.md: A minimal executor"
SHELL = "plugins.md: Running shell on nodes"
TESTING = "plugins.md: Testing a plugin"
WAITING = "plugins.md: Testing a plugin / Waiting for a task"
FIXTURES = "plugins.md: Testing a plugin / Fixtures"
SIGNATURE = "notifications.md: What a webhook receives / Verifying the signature"

ping_plugin = module_of("ping_plugin", MINIMAL)
uptime_plugin = module_of("uptime_plugin", SHELL)

# The docs' fixtures and tests, collected here: ``knm_extra_plugins`` (ping_plugin),
# ``test_ping_adds_its_routes``, ``test_ping_runs_until_every_node_answered``, ``ping`` and
# ``test_ping_answers_on_every_node``.
for _key in (TESTING, WAITING, FIXTURES):
    for _name, _value in run_block(_key, {}).items():
        if _name.startswith(("test_", "knm_")) or _name == "ping":
            globals()[_name] = _value

#: Where each python block of the docs runs: a test of this module, or a test file that reads
#: the block itself.
RUN_BY = {
    MINIMAL: "test_the_minimal_executor_is_a_workflow_step_too",
    SHELL: "test_the_uptime_executor_runs_shell_on_every_node_as_a_task_and_a_step",
    TESTING: "test_ping_adds_its_routes",
    WAITING: "test_ping_runs_until_every_node_answered",
    FIXTURES: "test_ping_answers_on_every_node",
    SIGNATURE: "tests/core/notifications/test_signing.py",
}


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    # The docs' other way to register a plugin: KNM_PLUGINS=module (here, a setting).
    return {"plugins": ["uptime_plugin"]}


def test_every_python_example_in_the_docs_is_run() -> None:
    keys = [b.key for b in python_blocks()]
    assert len(keys) == len(set(keys)), "two python blocks under one heading"
    assert sorted(keys) == sorted(RUN_BY)
    for key, runner in RUN_BY.items():
        if runner.startswith("tests/"):
            source = (ROOT / runner).read_text()
            assert block(key).doc in source and "```python" in source, runner
        else:
            assert callable(globals().get(runner)), runner


async def test_the_minimal_executor_is_a_workflow_step_too(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    nodes = [{"name": "a", "address": "127.0.0.3"}, {"name": "b", "address": "127.0.0.4"}]
    cluster = {"name": "pings", "kind": "static", "nodes": nodes}
    assert_envelope(await knm_client.post("/clusters", json=cluster, headers=admin_headers), 201)
    body = {"name": "pings", "definition": {"steps": [{"id": "ping", "type": "ping"}]}}
    response = await knm_client.post("/automation/workflows", json=body, headers=admin_headers)
    workflow = assert_envelope(response, 201)["data"]["id"]
    data = await start_task(
        knm_client, admin_headers, "workflows",
        workflow_id=workflow, cluster_name="pings", target_nodes=["a", "b"],
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert status["status"] == "completed", status
    step = next(s for s in status["steps"] if s["id"] == "ping")
    child = await wait_for_task(knm_client, admin_headers, step["task_id"])
    assert child["kind"] == "ping" and child["success_count"] == 2
    results = {result["node"]: result for result in child["results"]}
    assert results["a"]["stdout"] == "pinging 127.0.0.3\n"
    assert results["b"]["stdout"] == "pinging 127.0.0.4\n"


async def test_the_uptime_executor_runs_shell_on_every_node_as_a_task_and_a_step(
    knm_client: ApiClient, admin_headers: dict[str, str], ssh_fleet_cluster: FleetCluster
) -> None:
    fleet = ssh_fleet_cluster
    data = await start_task(
        knm_client, admin_headers, "uptime",
        cluster_name=fleet.cluster_name, credential_id=fleet.credential_id,
        target_nodes=fleet.nodes,
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)
    assert status["success_count"] == len(fleet.nodes), status
    for result in status["results"]:
        assert re.match(r"^\d+\.\d+ \d+\.\d+\n$", result["stdout"]), result

    body = {"name": "up", "definition": {"steps": [{"id": "up", "type": "uptime"}]}}
    response = await knm_client.post("/automation/workflows", json=body, headers=admin_headers)
    workflow = assert_envelope(response, 201)["data"]["id"]
    data = await start_task(
        knm_client, admin_headers, "workflows",
        workflow_id=workflow, cluster_name=fleet.cluster_name,
        credential_id=fleet.credential_id, target_nodes=fleet.nodes,
    )  # fmt: skip
    status = await wait_for_task(knm_client, admin_headers, data["task_id"], deadline=90)
    assert status["status"] == "completed", status
    step = next(s for s in status["steps"] if s["id"] == "up")
    child = await wait_for_task(knm_client, admin_headers, step["task_id"])
    assert child["kind"] == "uptime" and child["success_count"] == len(fleet.nodes)


async def test_the_uptime_executor_asks_the_guard_rail_before_any_task_exists(
    knm_client: ApiClient, admin_headers: dict[str, str], ssh_fleet_cluster: FleetCluster
) -> None:
    fleet = ssh_fleet_cluster
    rules = {"deny_rules": [{"name": "no-uptime", "pattern": "/proc/uptime"}]}
    assert_envelope(
        await knm_client.put("/features/automation/ssh", json=rules, headers=admin_headers), 200
    )
    try:
        response = await knm_client.post(
            "/automation/uptime/execute",
            json={
                "cluster_name": fleet.cluster_name,
                "credential_id": fleet.credential_id,
                "target_nodes": fleet.nodes,
            },
            headers=admin_headers,
        )
    finally:
        reset = {"deny_rules": []}
        await knm_client.put("/features/automation/ssh", json=reset, headers=admin_headers)
    assert "dangerous command blocked" in assert_envelope(response, 422)["error"]
