"""/metrics in Prometheus text, behind a token unless made public: histograms with buckets,
monotonic counters, route templates, process metrics — read with prometheus_client's parser."""

from __future__ import annotations

import platform
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import knm
from knm.core.tasks.retention import prune
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import start_task, wait_for_task


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [TestExecutorPlugin()]


async def _scrape(client: ApiClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def _value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    if family not in families:
        return 0.0
    found = [
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found)


def _buckets(families: dict[str, Any], family: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in families[family].samples
        if s.name == f"{family}_bucket" and all(s.labels.get(k) == v for k, v in labels.items())
    ]


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
    response = await knm_client.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families["knm_task_duration_seconds"] == "histogram"
    assert families["knm_node_duration_seconds"] == "histogram"
    assert families["knm_task_queue_wait_seconds"] == "histogram"
    assert families["knm_http_request_duration_seconds"] == "histogram"
    assert families["knm_node_failures"] == "counter"
    assert families["knm_events_dropped"] == "counter"
    assert families["knm_events_lagged"] == "counter"
    assert families["knm_lease_reaps"] == "counter"
    assert families["knm_queue_depth"] == "gauge"
    assert families["knm_websocket_connections"] == "gauge"
    assert families["process_resident_memory_bytes"] == "gauge"


async def test_build_info_names_the_knm_and_python_versions(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    families = await _scrape(knm_client, admin_headers)
    [sample] = families["knm_build_info"].samples
    assert sample.labels == {"python": platform.python_version(), "version": knm.__version__}
    assert sample.value == 1


async def test_finished_tasks_and_nodes_are_counted_in_histogram_buckets_by_kind_status_and_reason(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    before = await _scrape(knm_client, admin_headers)
    done = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"]
    )
    bad = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1", "n2"], fail_nodes=["n2"]
    )
    await wait_for_task(knm_client, admin_headers, done["task_id"])
    await wait_for_task(knm_client, admin_headers, bad["task_id"])
    after = await _scrape(knm_client, admin_headers)

    def delta(family: str, sample: str, **labels: str) -> float:
        return _value(after, family, sample, **labels) - _value(before, family, sample, **labels)

    tasks = "knm_task_duration_seconds"
    assert delta(tasks, f"{tasks}_count", kind="test", status="completed") == 1
    assert delta(tasks, f"{tasks}_count", kind="test", status="failed") == 1
    nodes = "knm_node_duration_seconds"
    assert delta(nodes, f"{nodes}_count", kind="test", status="success") == 3
    assert delta(nodes, f"{nodes}_count", kind="test", status="failed") == 1
    assert (
        delta("knm_node_failures", "knm_node_failures_total", kind="test", reason="exit_code") == 1
    )
    wait = "knm_task_queue_wait_seconds"
    assert delta(wait, f"{wait}_count", kind="test") == 2
    # Buckets are cumulative and end at +Inf, which equals the count.
    buckets = _buckets(after, tasks, kind="test", status="completed")
    counts = [b.value for b in buckets]
    assert counts == sorted(counts)
    assert buckets[-1].labels["le"] == "+Inf"
    assert counts[-1] == _value(after, tasks, f"{tasks}_count", kind="test", status="completed")


async def test_counts_never_go_down_when_retention_deletes_finished_tasks(
    knm_app: Any, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    before = await _scrape(knm_client, admin_headers)

    async def prune_everything_finished(knm_: Any) -> Any:
        async with knm_.pool.acquire() as conn:
            return await prune(conn, task_days=0, event_days=0, output_max_bytes=0)

    report = await knm_client.on_app(prune_everything_finished, knm_app.state["knm"])
    assert report.tasks >= 1
    after = await _scrape(knm_client, admin_headers)
    for family, sample in (
        ("knm_task_duration_seconds", "knm_task_duration_seconds_count"),
        ("knm_node_duration_seconds", "knm_node_duration_seconds_count"),
        ("knm_task_queue_wait_seconds", "knm_task_queue_wait_seconds_count"),
    ):
        assert _value(after, family, sample) >= _value(before, family, sample) > 0


async def test_http_durations_are_labelled_by_route_template_not_by_path(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    data = await start_task(knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"])
    await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert_envelope(await knm_client.get("/tasks/no-such-task", headers=admin_headers), 404)
    families = await _scrape(knm_client, admin_headers)
    samples = families["knm_http_request_duration_seconds"].samples
    routes = {s.labels["route"] for s in samples if s.name.endswith("_count")}
    assert not any(data["task_id"] in route for route in routes)
    status_route = next(r for r in routes if r.startswith("/api/v1/tasks/{"))
    assert (
        _value(
            families,
            "knm_http_request_duration_seconds",
            "knm_http_request_duration_seconds_count",
            route=status_route,
            method="GET",
            status="404",
        )
        >= 1
    )
    assert (
        _value(
            families,
            "knm_http_request_duration_seconds",
            "knm_http_request_duration_seconds_count",
            route=status_route,
            method="GET",
            status="200",
        )
        >= 1
    )
