"""``GET /metrics``: Prometheus text. Needs a token (an API token with the viewer role is the
usual choice for a scraper) unless ``metrics_public`` is set."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get

from knm import __version__
from knm.core.auth.middleware import authenticate, bearer_token
from knm.core.envelope import error_response
from knm.core.errors import KnmError

if TYPE_CHECKING:
    from knm.core.state import Knm


def _line(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


async def render(knm: Knm) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    family("knm_build_info", "gauge", "Always 1; the labels say which knm and Python run.")
    lines.append(_line("knm_build_info", 1, version=__version__, python=platform.python_version()))
    pool = knm.pool
    family("knm_tasks", "gauge", "Tasks by kind and state.")
    for row in await pool.fetch(
        "SELECT kind, status, count(*) AS n FROM tasks GROUP BY kind, status"
    ):
        lines.append(_line("knm_tasks", row["n"], kind=row["kind"], status=row["status"]))
    family("knm_queue_depth", "gauge", "Pending tasks by kind.")
    for row in await pool.fetch(
        "SELECT kind, count(*) AS n FROM tasks WHERE status = 'pending' GROUP BY kind"
    ):
        lines.append(_line("knm_queue_depth", row["n"], kind=row["kind"]))
    family("knm_task_duration_seconds", "summary", "Durations of tasks finished in the last hour.")
    for row in await pool.fetch(
        """SELECT kind, count(*) AS n,
                  coalesce(sum(extract(epoch FROM end_time - start_time)), 0) AS total
           FROM tasks WHERE end_time > now() - interval '1 hour' AND start_time IS NOT NULL
           GROUP BY kind"""
    ):
        lines.append(_line("knm_task_duration_seconds_count", row["n"], kind=row["kind"]))
        lines.append(_line("knm_task_duration_seconds_sum", float(row["total"]), kind=row["kind"]))
    family(
        "knm_node_duration_seconds", "summary", "Durations of node work finished in the last hour."
    )
    for row in await pool.fetch(
        """SELECT t.kind, n.status, count(*) AS n,
                  coalesce(sum(extract(epoch FROM n.end_time - n.start_time)), 0) AS total
           FROM task_nodes n JOIN tasks t ON t.task_id = n.task_id
           WHERE t.end_time > now() - interval '1 hour' AND n.start_time IS NOT NULL
           GROUP BY t.kind, n.status"""
    ):
        labels = {"kind": row["kind"], "status": row["status"]}
        lines.append(_line("knm_node_duration_seconds_count", row["n"], **labels))
        lines.append(_line("knm_node_duration_seconds_sum", float(row["total"]), **labels))
    hub = knm.progress
    if hub is not None:
        family(
            "knm_events_published_total", "counter", "Events handed to this process's subscribers."
        )
        lines.append(_line("knm_events_published_total", hub.published))
        family("knm_events_delivered_total", "counter", "Events queued to WebSocket connections.")
        lines.append(_line("knm_events_delivered_total", hub.delivered))
        family(
            "knm_events_dropped_total", "counter", "Events dropped for slow WebSocket consumers."
        )
        lines.append(_line("knm_events_dropped_total", hub.dropped))
        family("knm_websocket_connections", "gauge", "Open progress WebSocket connections.")
        lines.append(_line("knm_websocket_connections", hub.connections))
    runner = knm.runner
    if runner is not None:
        family(
            "knm_lease_reaps_total",
            "counter",
            "Tasks this process failed because their worker was lost.",
        )
        lines.append(_line("knm_lease_reaps_total", runner.reaped))
        family("knm_running_tasks", "gauge", "Tasks running in this process.")
        lines.append(_line("knm_running_tasks", len(runner.running)))
    return "\n".join(lines) + "\n"


@get("/metrics", opt={"public": True}, include_in_schema=True, summary="Prometheus metrics")
async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    knm = request.app.state["knm"]
    if not knm.config.metrics_public:
        try:
            await authenticate(knm, bearer_token(request))
        except KnmError as exc:
            return error_response(exc.status_code, exc.message, exc.error or exc.message)
    return Response(await render(knm), media_type="text/plain; version=0.0.4; charset=utf-8")
