"""History: newest first, filters, paging, bad filters, children hidden unless asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import start_task, wait_for_task


async def test_history_lists_newest_first_with_the_contracts_fields(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    ids = []
    for cluster in ("alpha", "beta", "alpha"):
        data = await start_task(
            knm_client, admin_headers, cluster_name=cluster, target_nodes=["n1"]
        )
        await wait_for_task(knm_client, admin_headers, data["task_id"])
        ids.append(data["task_id"])
    body = assert_envelope(
        await knm_client.get("/automation/test/history", headers=admin_headers), 200
    )
    executions = body["data"]["executions"]
    assert [e["task_id"] for e in executions[:3]] == ids[::-1]
    first = executions[0]
    for field in (
        "id",
        "task_id",
        "status",
        "success_count",
        "failed_count",
        "start_time",
        "end_time",
        "duration",
        "user_id",
        "username",
    ):
        assert field in first
    # The kind's display fields sit at the top level of each row, as in the status answer.
    assert "echo" in first and "summary" not in first
    alpha = (
        await knm_client.get("/automation/test/history?cluster_name=alpha", headers=admin_headers)
    ).json()
    assert alpha["data"]["total"] == 2
    page = (
        await knm_client.get("/automation/test/history?page=2&page_size=1", headers=admin_headers)
    ).json()
    assert page["data"]["executions"][0]["task_id"] == ids[1]
    today = datetime.now(UTC).date()
    ranged = await knm_client.get(
        f"/tasks?kind=test&start_date={today - timedelta(days=1)}&end_date={today}",
        headers=admin_headers,
    )
    assert ranged.json()["data"]["total"] == 3
    future = await knm_client.get(
        f"/tasks?start_date={today + timedelta(days=2)}", headers=admin_headers
    )
    assert future.json()["data"]["total"] == 0


async def test_bad_history_filters_are_400(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    for query in (
        "start_date=yesterday",
        "page=0",
        "page_size=500",
        "status=done",
        "start_date=2025-02-10&end_date=2025-02-01",
    ):
        assert_envelope(
            await knm_client.get(f"/automation/test/history?{query}", headers=admin_headers), 400
        )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(
        st.sampled_from(
            ["cluster_name", "status", "start_date", "end_date", "page", "page_size", "kind"]
        ),
        st.one_of(st.text(max_size=12), st.integers(-5, 200).map(str), st.dates().map(str)),
        max_size=4,
    )
)
async def test_no_history_filter_makes_a_500(
    knm_client: ApiClient, admin_headers: dict[str, str], query: dict[str, str]
) -> None:
    response = await knm_client.get("/tasks", params=query, headers=admin_headers)
    assert response.status_code in (200, 400), response.text
    assert response.json()["code"] == response.status_code


@pytest.mark.slow
async def test_history_queries_use_indexes_at_scale(
    knm_client: ApiClient, knm_database_url: str
) -> None:
    import asyncpg

    conn = await asyncpg.connect(knm_database_url)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, kind, status, cluster_name, created_at)
               SELECT 'bulk-exec-' || g || '-aaaaaa', (ARRAY['ssh','ansible','script'])[g % 3 + 1],
                      'completed', 'c' || (g % 50), now() - make_interval(secs => g)
               FROM generate_series(1, 100000) g"""
        )
        await conn.execute("ANALYZE tasks")
        plans = []
        for sql in (
            "SELECT * FROM tasks WHERE parent_task_id IS NULL ORDER BY created_at DESC, id DESC LIMIT 20",
            "SELECT * FROM tasks WHERE parent_task_id IS NULL AND kind = 'ssh' ORDER BY created_at DESC, id DESC LIMIT 20",
            "SELECT * FROM tasks WHERE cluster_name = 'c7' ORDER BY created_at DESC, id DESC LIMIT 20",
        ):
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}"))
            plans.append(plan)
        await conn.execute("DELETE FROM tasks WHERE task_id LIKE 'bulk-exec-%'")
    finally:
        await conn.close()
    for plan in plans:
        assert "Index" in plan and "Seq Scan" not in plan, plan
