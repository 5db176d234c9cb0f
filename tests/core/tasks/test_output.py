"""Output: capped per node and stream, masked, and downloadable in ranges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import start_task, wait_for_task


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    return {"output_cap": 2000}


async def run(client: ApiClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    data = await start_task(client, headers, cluster_name="lab", target_nodes=["n1"], **body)
    return await wait_for_task(client, headers, data["task_id"])


async def test_output_beyond_the_cap_is_dropped_and_marked_truncated(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    status = await run(knm_client, admin_headers, output_lines=500)
    result = status["results"][0]
    assert result["stdout_truncated"] is True
    assert len(result["stdout"].encode()) == 2000
    assert result["stdout"].startswith("n1 line 0\n")


async def test_secret_values_never_reach_output_events_or_the_request(
    knm_client: ApiClient, admin_headers: dict[str, str], knm_database_url: str
) -> None:
    secret = "hunter2-very-secret"
    status = await run(knm_client, admin_headers, echo="password is {secret} ok", secret=secret)
    assert status["results"][0]["stdout"] == "password is ******** ok\n"
    events = await knm_client.get(f"/tasks/{status['task_id']}/events", headers=admin_headers)
    assert secret not in events.text and "********" in events.text
    import asyncpg

    conn = await asyncpg.connect(knm_database_url)
    try:
        rows = await conn.fetch(
            "SELECT t::text AS row FROM task_output t WHERE task_id = $1 "
            "UNION ALL SELECT e::text FROM task_events e WHERE task_id = $1 "
            "UNION ALL SELECT t::text FROM tasks t WHERE task_id = $1",
            status["task_id"],
        )
    finally:
        await conn.close()
    assert rows and all(secret not in r["row"] for r in rows)


async def test_output_downloads_whole_or_in_ranges(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    status = await run(knm_client, admin_headers, output_lines=20)
    url = f"/tasks/{status['task_id']}/output?node=n1&stream=stdout"
    whole = await knm_client.get(url, headers=admin_headers)
    assert whole.status_code == 200
    assert whole.text == status["results"][0]["stdout"]
    part = await knm_client.get(url, headers={**admin_headers, "Range": "bytes=0-9"})
    assert part.status_code == 206 and part.text == whole.text[:10]
    tail = await knm_client.get(url, headers={**admin_headers, "Range": "bytes=-5"})
    assert tail.text == whole.text[-5:]
    bad = await knm_client.get(url, headers={**admin_headers, "Range": "lines=1-2"})
    assert_envelope(bad, 400)
    missing = await knm_client.get(
        f"/tasks/{status['task_id']}/output?node=zz", headers=admin_headers
    )
    assert_envelope(missing, 404)


async def test_a_running_nodes_output_reads_as_far_as_it_is_stored(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    """The node's size is recorded at its end; before that the stored part is served, so a
    reader following a running node (the console) gets it as it grows, by Range."""
    data = await start_task(
        knm_client, admin_headers, cluster_name="lab", target_nodes=["n1"], echo="first", linger=30
    )
    url = f"/tasks/{data['task_id']}/output?node=n1&stream=stdout"
    try:
        for _ in range(200):
            whole = await knm_client.get(url, headers=admin_headers)
            if whole.text:
                break
            await asyncio.sleep(0.05)
        status = await knm_client.get(f"/tasks/{data['task_id']}", headers=admin_headers)
        assert assert_envelope(status, 200)["data"]["status"] == "running"
        assert whole.status_code == 200 and whole.text == "first\n"
        part = await knm_client.get(url, headers={**admin_headers, "Range": "bytes=2-"})
        assert part.status_code == 206 and part.text == "rst\n"
        assert part.headers["content-range"] == "bytes 2-5/6"
        after = await knm_client.get(url, headers={**admin_headers, "Range": "bytes=6-"})
        assert after.status_code == 206 and after.text == ""
    finally:
        await knm_client.post(f"/automation/test/cancel/{data['task_id']}", headers=admin_headers)
    ended = await wait_for_task(knm_client, admin_headers, data["task_id"])
    assert ended["status"] == "cancelled"
