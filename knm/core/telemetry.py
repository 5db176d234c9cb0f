"""What one process measures about itself for ``/metrics``: HTTP request durations by route
template and status, and the process's own CPU, memory and file descriptors.

One :class:`Telemetry` per app (a host may mount several knm apps in one process), each with its
own ``prometheus_client`` registry, so nothing is shared through the library's global one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: Request durations: from 1 ms (a cached status) to 30 s (a large upload on a slow link).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Snapshot(Collector):
    """Families read from the database just before rendering (``collect`` cannot await)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Histogram(
            "knm_http_request_duration_seconds",
            "HTTP requests answered by this process, by method, route template and status.",
            ("method", "route", "status"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)

    def middleware(self) -> Callable[[ASGIApp], ASGIApp]:
        """For a router's ``middleware=[...]``: times every HTTP request routed to knm
        (WebSockets are long-lived: not timed). A plain function, because Litestar deep-copies
        its middleware and a bound method would drag the registry's locks along."""
        histogram = self.http_requests

        def wrap(app: ASGIApp) -> ASGIApp:
            return _timed(app, histogram)

        return wrap


def _timed(app: ASGIApp, histogram: Histogram) -> ASGIApp:
    # Each (method, route, status)'s child, found once: ``labels()`` validates and locks on
    # every call, a sizeable share of a request answered from memory. Bounded by the routes.
    children: dict[tuple[str, str, int], Any] = {}

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, watch)
        finally:
            # The template, not the path: ids in paths would make a series per task.
            route = scope.get("path_template") or "unmatched"
            key = (scope.get("method", ""), route, status)
            child = children.get(key)
            if child is None:
                child = children[key] = histogram.labels(key[0], route, str(status))
            child.observe(time.perf_counter() - started)

    return timed
