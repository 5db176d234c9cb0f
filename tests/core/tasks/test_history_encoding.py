"""History pages are read in one statement and encoded straight from the records
(``store.history``); they must go out byte for byte as the two statements, ``TaskSummary`` rows
and Litestar's encoding of the envelope used to send them — pages with and without filters,
past the end, and the same 400 envelopes for bad parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Request, get

from knm.core.auth.guards import VIEWER
from knm.core.envelope import Envelope, PageNo, PageSize, offset, ok
from knm.core.errors import BadRequest
from knm.core.hookspecs import hookimpl
from knm.core.tasks import counts, store
from knm.core.tasks.schemas import HistoryItem, HistoryPage
from knm.testing.client import ApiClient
from knm.testing.executor import TestExecutorPlugin
from knm.testing.tasks import start_task, wait_for_task
from knm.wire import TaskState


async def _history_before(
    conn: Any, where: store.HistoryFilter, limit: int, skip: int
) -> tuple[int, list[HistoryItem]]:
    """``store.history`` as it was: the total and the page in two statements, into structs."""
    sql_where, args = where.sql(
        not_child="parent_task_id IS NULL",
        since="created_at >= ?::date",
        until="created_at < ?::date + 1",
    )
    total = await counts.total(conn, where, sql_where, args)
    records = await conn.fetch(
        f"""SELECT id, task_id, kind, status, cluster_name, target_nodes, success_count,
                   failed_count, coalesce(start_time, created_at) AS start_time, end_time,
                   user_id, username, parent_task_id,
                   created_at, summary,
                   CASE WHEN start_time IS NULL THEN NULL
                        ELSE extract(epoch FROM coalesce(end_time, now()) - start_time)::int
                   END AS duration
            FROM tasks {sql_where}
            ORDER BY created_at DESC, id DESC LIMIT {int(limit)} OFFSET {int(skip)}""",
        *args,
    )
    items = []
    for record in records:
        values = dict(record)
        summary = values.pop("summary")
        items.append(HistoryItem(**values, extra=summary))
    return total, items


@get("/test/history-before", guards=[VIEWER])
async def history_before(
    request: Request[Any, Any, Any],
    kind: str | None = None,
    cluster_name: str | None = None,
    status: TaskState | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    include_children: bool = False,
    parent_task_id: str | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Envelope[HistoryPage]:
    """``GET /tasks`` built as it was: a guard, two statements, rows through ``to_wire``, the
    envelope through Litestar's serializer."""
    where = store.HistoryFilter(
        kind=kind,
        cluster_name=cluster_name,
        status=status,
        start_date=start_date,
        end_date=end_date,
        include_children=include_children,
        parent_task_id=parent_task_id,
    )
    if where.start_date and where.end_date and where.end_date < where.start_date:
        raise BadRequest("end_date is before start_date")
    pool = request.app.state["knm"].pool
    total, items = await _history_before(pool, where, page_size, offset(page, page_size))
    body = {"total": total, "executions": [item.to_wire() for item in items]}
    return ok(msgspec.Raw(msgspec.json.encode(body)))


class ReferencePlugin:
    @hookimpl
    def knm_routes(self) -> list[Any]:
        return [history_before]


@pytest.fixture(scope="module")
def knm_extra_plugins(test_plugin: TestExecutorPlugin) -> list[Any]:
    return [test_plugin, ReferencePlugin()]


@pytest.fixture(scope="module")
async def history(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> dict[str, Any]:
    """Real tasks, and rows no executor makes today: children, a pending task (no start
    time), a summary naming a declared field, text that JSON escapes, several days."""
    finished = []
    for cluster in ("alpha", "beta", "alpha"):
        data = await start_task(
            knm_client, admin_headers, cluster_name=cluster, target_nodes=["n1", "n2"]
        )
        await wait_for_task(knm_client, admin_headers, data["task_id"])
        finished.append(data["task_id"])
    conn = await asyncpg.connect(knm_database_url)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, target_nodes, summary,
                                  success_count, failed_count, user_id, username,
                                  parent_task_id, created_at, start_time, end_time)
               SELECT 'enc-' || g, (ARRAY['ssh', 'script', 'workflow'])[g % 3 + 1],
                      (ARRAY['completed', 'failed', 'cancelled', 'cancelled'])[g % 4 + 1],
                      (ARRAY['alpha', 'beta', 'gamma'])[g % 3 + 1],
                      ARRAY['n' || g, 'ü"\\'], jsonb_build_object(
                          'command', 'echo "' || g || '" ✓', 'status', 'from the summary',
                          'extra', g, 'nested', jsonb_build_object('a', ARRAY[1.5, null])),
                      g % 5, g % 2, CASE WHEN g % 6 = 0 THEN NULL ELSE 1 END,
                      CASE WHEN g % 6 = 0 THEN NULL ELSE 'admin' END,
                      CASE WHEN g % 7 = 0 THEN 'enc-1' END,
                      now() - make_interval(hours => g * 5),
                      CASE WHEN g % 4 = 3 THEN NULL ELSE now() - make_interval(hours => g * 5) END,
                      CASE WHEN g % 4 = 3 THEN NULL
                           ELSE now() - make_interval(hours => g * 5, secs => -g) END
               FROM generate_series(1, 60) g"""
        )
        # Timestamps at the edges of what is sent as text: fractions of a second either side
        # of 2000 (whole seconds, rounded down), year 5, infinity (sent as Python's largest),
        # and a recent run shorter than a second — older than the real tasks above however
        # long they took, so that those stay the newest.
        await conn.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, created_at, start_time,
                                  end_time)
               VALUES ('enc-edge-1', 'ssh', 'completed', 'gamma', '1999-12-31 23:59:59.7Z',
                       '1999-12-31 23:59:59.7Z', '2000-01-01 00:00:00.2Z'),
                      ('enc-edge-2', 'ssh', 'cancelled', 'gamma', '0005-03-01 12:00:00.5Z',
                       NULL, 'infinity'),
                      ('enc-edge-3', 'ssh', 'failed', 'gamma', now() - interval '1 h 0.4 s',
                       now() - interval '1 h 0.3 s', now() - interval '1 h 0.1 s')"""
        )
    finally:
        await conn.close()
    return {"finished": finished}


def _queries() -> list[str]:
    today = datetime.now(UTC).date()
    week = f"start_date={today - timedelta(days=7)}&end_date={today - timedelta(days=1)}"
    return [
        "",
        "page=2&page_size=7",
        "page_size=100",
        "page=40",  # past the end: no rows, the total still exact
        "cluster_name=alpha",
        "cluster_name=alpha&status=failed&" + week,
        "status=cancelled&include_children=true",
        "kind=script&page=2&page_size=3",
        "kind=test",
        f"start_date={today}",
        f"end_date={today - timedelta(days=2)}",
        "parent_task_id=enc-1",
        "parent_task_id=enc-1&status=completed",
        "cluster_name=nowhere",
        "cluster_name=gamma&kind=ssh&page_size=100",
        "include_children=true&page_size=100&page=1",
        # bad parameters: the same 400 envelopes
        "page=0",
        "page=abc",
        "page_size=500",
        "status=done",
        "start_date=yesterday",
        "start_date=2025-02-10&end_date=2025-02-01",
        "include_children=maybe",
        "cluster_name=a%00b",
        "start_date=9999-12-31",
    ]


@pytest.mark.parametrize("query", _queries())
async def test_a_history_page_is_sent_byte_for_byte_as_before(
    knm_client: ApiClient, admin_headers: dict[str, str], history: dict[str, Any], query: str
) -> None:
    before = await knm_client.get(f"/test/history-before?{query}", headers=admin_headers)
    after = await knm_client.get(f"/tasks?{query}", headers=admin_headers)
    assert after.status_code == before.status_code
    assert after.headers.raw == before.headers.raw
    assert after.content == before.content
    assert after.json()["code"] == after.status_code


async def test_the_pages_hold_the_rows_asked_for(
    knm_client: ApiClient, admin_headers: dict[str, str], history: dict[str, Any]
) -> None:
    # Not an empty comparison: the fixture's rows are there, the newest first.
    data = (await knm_client.get("/tasks?page_size=100", headers=admin_headers)).json()["data"]
    assert data["total"] == len(data["executions"]) > 50
    assert data["executions"][0]["task_id"] == history["finished"][-1]
    row = next(r for r in data["executions"] if r["task_id"] == "enc-2")
    # The summary's fields sit beside the row's; a declared field keeps the row's value.
    assert row["command"] == 'echo "2" ✓' and row["status"] == "cancelled" and row["extra"] == 2
    past = (await knm_client.get("/tasks?page=40", headers=admin_headers)).json()["data"]
    assert past == {"total": data["total"], "executions": []}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("page=0", "page: Expected `int` >= 1"),
        ("status=done", "status: Invalid enum value 'done'"),
        ("start_date=x", "start_date: Invalid RFC3339 encoded date"),
        ("page_size=500", "page_size: Expected `int` <= 100"),
    ],
)
async def test_bad_history_parameters_keep_their_envelope(
    knm_client: ApiClient, admin_headers: dict[str, str], query: str, error: str
) -> None:
    for path in ("/tasks", "/automation/test/history"):
        response = await knm_client.get(f"{path}?{query}", headers=admin_headers)
        assert response.status_code == 400
        assert response.json() == {"code": 400, "message": "invalid request", "error": error}
    reversed_dates = "start_date=2025-02-10&end_date=2025-02-01"
    response = await knm_client.get(f"/tasks?{reversed_dates}", headers=admin_headers)
    assert response.json() == {
        "code": 400,
        "message": "bad request",
        "error": "end_date is before start_date",
    }


async def test_an_executors_history_is_the_same_page_as_tasks_of_its_kind(
    knm_client: ApiClient, admin_headers: dict[str, str], history: dict[str, Any]
) -> None:
    for query in ("", "cluster_name=alpha&page_size=2", "page=9"):
        own = await knm_client.get(f"/automation/test/history?{query}", headers=admin_headers)
        before = await knm_client.get(
            f"/test/history-before?kind=test&{query}", headers=admin_headers
        )
        assert own.status_code == 200
        assert own.headers.raw == before.headers.raw
        assert own.content == before.content
