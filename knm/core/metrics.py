"""``GET /metrics``: Prometheus text. Needs a token (an API token with the viewer role is the
usual choice for a scraper) unless ``metrics_public`` is set."""

from __future__ import annotations

import itertools
import platform
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from knm import __version__
from knm.core import metric_store
from knm.core.auth.middleware import authenticate, bearer_token
from knm.core.envelope import error_response
from knm.core.errors import KnmError
from knm.core.metric_store import Series
from knm.core.telemetry import Telemetry

if TYPE_CHECKING:
    from knm.core.state import Knm


def _histograms(
    name: str, doc: str, labels: tuple[str, ...], series: list[Series]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    merged: dict[tuple[str, ...], tuple[list[float], list[int], float]] = {}
    for s in series:
        key = tuple(getattr(s, label) for label in labels)
        if key in merged:
            bounds, counts, total = merged[key]
            counts = [a + b for a, b in zip(counts, s.counts, strict=True)]
            merged[key] = (bounds, counts, total + s.sum)
        else:
            merged[key] = (s.bounds, s.counts, s.sum)
    for key, (bounds, counts, total) in merged.items():
        cumulative = list(itertools.accumulate(counts))
        buckets = [(floatToGoString(b), c) for b, c in zip(bounds, cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        family.add_metric(list(key), buckets, total)
    return family


async def _database_families(knm: Knm) -> list[Metric]:
    pool = knm.pool
    async with pool.acquire() as conn:
        series = await metric_store.read(conn)
        # Only the unfinished, which partial indexes find: counting every row scraped a table
        # of a million tasks each time. Finished tasks are the histograms' counts.
        active = await conn.fetch(
            """SELECT kind, status, count(*) AS n FROM tasks
               WHERE status IN ('pending', 'running') GROUP BY kind, status"""
        )
    by_metric: dict[str, list[Series]] = {}
    for s in series:
        by_metric.setdefault(s.metric, []).append(s)
    tasks = GaugeMetricFamily(
        "knm_tasks", "Unfinished tasks by kind and status.", labels=["kind", "status"]
    )
    queue = GaugeMetricFamily("knm_queue_depth", "Pending tasks by kind.", labels=["kind"])
    for row in active:
        tasks.add_metric([row["kind"], row["status"]], row["n"])
        if row["status"] == "pending":
            queue.add_metric([row["kind"]], row["n"])
    nodes = by_metric.get("node_duration", [])
    failures = CounterMetricFamily(
        "knm_node_failures",
        "Nodes that ended failed, by task kind and reason.",
        labels=["kind", "reason"],
    )
    failed: dict[tuple[str, str], int] = {}
    for s in nodes:
        if s.status == "failed":
            key = (s.kind, s.reason or "unknown")
            failed[key] = failed.get(key, 0) + sum(s.counts)
    for (kind, reason), n in sorted(failed.items()):
        failures.add_metric([kind, reason], n)
    return [
        tasks,
        queue,
        _histograms(
            "knm_task_duration_seconds",
            "Finished tasks by kind and final status: time from start to end (0 for tasks "
            "cancelled before they started).",
            ("kind", "status"),
            by_metric.get("task_duration", []),
        ),
        _histograms(
            "knm_task_queue_wait_seconds",
            "Time tasks waited from creation until a worker claimed them, by kind.",
            ("kind",),
            by_metric.get("queue_wait", []),
        ),
        _histograms(
            "knm_node_duration_seconds",
            "Node work finished, by task kind and node status.",
            ("kind", "status"),
            nodes,
        ),
        failures,
    ]


def _process_families(knm: Knm) -> list[Metric]:
    build = GaugeMetricFamily(
        "knm_build_info",
        "Always 1; the labels say which knm and Python run.",
        labels=["version", "python"],
    )
    build.add_metric([__version__, platform.python_version()], 1)
    families: list[Metric] = [build]
    hub = knm.progress
    if hub is not None:
        for name, doc, value in (
            ("knm_events_published", "Events handed to this process's subscribers.", hub.published),
            ("knm_events_delivered", "Events queued to WebSocket connections.", hub.delivered),
            ("knm_events_dropped", "Events dropped for slow WebSocket consumers.", hub.dropped),
            ("knm_events_lagged", "`lagged` notices sent to slow WebSocket consumers.", hub.lagged),
        ):
            families.append(CounterMetricFamily(name, doc, value=value))
        families.append(
            GaugeMetricFamily(
                "knm_websocket_connections",
                "Open progress WebSocket connections.",
                value=hub.connections,
            )
        )
    runner = knm.runner
    if runner is not None:
        families.append(
            CounterMetricFamily(
                "knm_lease_reaps",
                "Tasks this process failed because their worker was lost.",
                value=runner.reaped,
            )
        )
        families.append(
            GaugeMetricFamily(
                "knm_running_tasks", "Tasks running in this process.", value=len(runner.running)
            )
        )
    return families


async def render(knm: Knm) -> bytes:
    telemetry: Telemetry = knm.telemetry
    families = _process_families(knm) + await _database_families(knm)
    # No await between setting the snapshot and rendering it: concurrent scrapes cannot mix.
    telemetry.snapshot.families = families
    return generate_latest(telemetry.registry)


@get(
    "/metrics",
    opt={"public": True},
    include_in_schema=True,
    summary="Prometheus metrics",
    responses={
        200: ResponseSpec(
            data_container=str,
            media_type="text/plain; version=0.0.4; charset=utf-8",
            description="Prometheus text exposition format 0.0.4",
        )
    },
)
async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    knm = request.app.state["knm"]
    if not knm.config.metrics_public:
        try:
            await authenticate(knm, bearer_token(request))
        except KnmError as exc:
            return error_response(exc.status_code, exc.message, exc.error or exc.message)
    # The classic text format: what every Prometheus server parses (the library's newer
    # content type names a version older scrapers refuse).
    return Response(await render(knm), media_type="text/plain; version=0.0.4; charset=utf-8")
