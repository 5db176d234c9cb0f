"""/metrics in Prometheus text, behind a token unless made public."""

from __future__ import annotations

import platform
import re
from typing import Any

import pytest

import knm
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import start_task, wait_for_task


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


async def test_metrics_need_a_token_and_a_viewer_api_token_is_enough(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    assert_envelope(await knm_client.http.get("/metrics"), 401)
    token = assert_envelope(
        await knm_client.post(
            "/tokens", json={"name": "prom", "role": "viewer"}, headers=admin_headers
        ),
        201,
    )["data"]["token"]
    data = await start_task(knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    response = await knm_client.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'knm_tasks{kind="test",status="completed"} 1' in text
    for family in (
        "knm_queue_depth",
        "knm_task_duration_seconds",
        "knm_events_published_total",
        "knm_events_dropped_total",
        "knm_websocket_connections",
        "knm_lease_reaps_total",
    ):
        assert f"# TYPE {family}" in text


def _parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text by hand (prometheus_client is not a dependency): every sample line must
    parse, and each sample's family must have been declared by a ``# TYPE`` line before it."""
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
    declared: set[str] = set()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        match = sample.match(line)
        assert match, f"not a sample: {line!r}"
        name, inner, value = match.groups()
        labels = dict(label.findall(inner or ""))
        assert any(name == f or name.startswith(f"{f}_") for f in declared), line
        samples.setdefault(name, []).append((labels, float(value)))
    return samples


async def test_build_info_names_the_knm_and_python_versions(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.http.get("/metrics", headers=admin_headers)
    assert response.status_code == 200
    assert "# TYPE knm_build_info gauge" in response.text
    samples = _parse(response.text)
    assert samples["knm_build_info"] == [
        ({"python": platform.python_version(), "version": knm.__version__}, 1.0)
    ]
