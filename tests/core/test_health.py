"""The probes: /healthz says the process answers, /readyz says it can serve (database, migrations,
the LISTEN connection, the runner) and names what is wrong, both without a token and under the
host's prefix; /api/v1/version says what runs, to any valid token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

import knm
from knm import KnmPlugin
from knm.core import health, listen
from knm.core.app import create_app
from knm.core.db import MigrationSet, connect_one
from knm.testing import database
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.tasks import eventually

EVERY_CHECK_OK = {"database": "ok", "migrations": "ok", "listen": "ok", "runner": "ok"}


def _knm(client: ApiClient) -> Any:
    return client.http.app.state["knm"]  # type: ignore[attr-defined]


async def _checks(http: httpx.AsyncClient, path: str = "/readyz") -> tuple[int, dict[str, str]]:
    response = await http.get(path)
    body = assert_envelope(response, response.status_code)
    return response.status_code, body["data"]["checks"]


async def _until_ready(http: httpx.AsyncClient, path: str = "/readyz") -> None:
    async def ready() -> bool:
        return (await http.get(path)).status_code == 200

    await eventually(ready, deadline=30)


async def test_healthz_answers_200_without_a_token(knm_client: ApiClient) -> None:
    response = await knm_client.http.get("/healthz")
    body = assert_envelope(response, 200)
    assert body["data"] == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


async def test_readyz_answers_200_without_a_token_when_every_check_is_ok(
    knm_client: ApiClient,
) -> None:
    await _until_ready(knm_client.http)
    response = await knm_client.http.get("/readyz")
    body = assert_envelope(response, 200)
    assert body["data"] == {"status": "ok", "checks": EVERY_CHECK_OK}


async def test_readyz_answers_503_naming_listen_until_the_listener_listens_again(
    knm_client: ApiClient, knm_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    knm = _knm(knm_client)
    listener = knm.listener
    monkeypatch.setattr(listen, "RELISTEN_DELAY", 0.05)
    # Hold reconnects back until the 503 has been seen, so the test never races the listener.
    allowed = asyncio.Event()
    real_connect = listener._connect

    async def connect_when_allowed() -> Any:
        if not allowed.is_set():
            raise OSError("not yet")
        return await real_connect()

    monkeypatch.setattr(listener, "_connect", connect_when_allowed)
    await _until_ready(knm_client.http)
    conn = await connect_one(knm_database_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", listener.server_pid)
    finally:
        await conn.close()

    async def listen_down() -> bool:
        status, checks = await _checks(knm_client.http)
        return status == 503 and checks["listen"].startswith("down")

    await eventually(listen_down, deadline=30)
    response = await knm_client.http.get("/readyz")
    body = assert_envelope(response, 503)
    assert body["message"] == "not ready"
    assert body["error"].startswith("listen: down")
    assert body["data"]["status"] == "unavailable"
    assert body["data"]["checks"]["database"] == "ok"
    allowed.set()
    await _until_ready(knm_client.http)


async def test_readyz_answers_503_naming_database_when_the_database_does_not_answer_in_time(
    knm_client: ApiClient, knm_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READY_TIMEOUT", 0.5)
    await _until_ready(knm_client.http)
    conn = await connect_one(knm_database_url)
    try:
        # The probe's round trip reads this table; a lock held elsewhere makes it hang.
        async with conn.transaction():
            await conn.execute("LOCK TABLE knm_migrations IN ACCESS EXCLUSIVE MODE")
            status, checks = await _checks(knm_client.http)
        assert status == 503
        assert checks["database"] == "down: no answer within 0.5s"
        assert checks["migrations"].startswith("unknown")
    finally:
        await conn.close()
    await _until_ready(knm_client.http)


async def test_readyz_answers_503_when_a_declared_migration_is_not_applied(
    knm_client: ApiClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    knm = _knm(knm_client)
    (tmp_path / "0001_gauges.sql").write_text("CREATE TABLE gauges (id int);")
    declared = knm.migration_sets()
    # As after upgrading a plugin whose new migration this database has not seen yet.
    monkeypatch.setattr(knm, "migration_sets", lambda: [*declared, MigrationSet("dials", tmp_path)])
    response = await knm_client.http.get("/readyz")
    body = assert_envelope(response, 503)
    assert body["data"]["checks"]["database"] == "ok"
    assert body["data"]["checks"]["migrations"] == "pending: dials/0001_gauges.sql"
    assert body["error"] == "migrations: pending: dials/0001_gauges.sql"
    monkeypatch.undo()
    await _until_ready(knm_client.http)


async def test_the_runner_check_is_down_when_a_runner_loop_has_ended(
    knm_client: ApiClient,
) -> None:
    runner = _knm(knm_client).runner
    await _until_ready(knm_client.http)

    async def end_the_claim_loop() -> asyncio.Task[None]:
        claim = next(task for task in runner._tasks if task.get_name() == "knm-claim")
        claim.cancel()
        await asyncio.wait([claim])
        return claim

    ended = await knm_client.on_app(end_the_claim_loop)
    try:
        status, checks = await _checks(knm_client.http)
        assert status == 503
        assert checks["runner"] == "down: knm-claim loop ended"
    finally:

        async def start_it_again() -> None:
            runner._tasks.remove(ended)
            runner._tasks.append(asyncio.create_task(runner._claim_loop(), name="knm-claim"))

        await knm_client.on_app(start_it_again)
    await _until_ready(knm_client.http)


async def test_the_runner_check_is_down_without_a_recent_heartbeat_and_ok_once_it_beats(
    knm_client: ApiClient,
) -> None:
    runner = _knm(knm_client).runner

    async def check_with_an_old_heartbeat() -> str:
        # Set and read in one step on the app's loop, before the loop can beat again.
        runner.heartbeat = time.monotonic() - 1000 * runner.beat_interval
        return health._runner_check(runner)

    assert (await knm_client.on_app(check_with_an_old_heartbeat)).startswith(
        "down: no heartbeat for"
    )
    await _until_ready(knm_client.http)


async def test_readyz_answers_503_naming_database_when_it_cannot_be_reached(
    knm_server_url: str, knm_template_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listen, "RELISTEN_DELAY", 0.1)
    # A database of this test's own: refusing its connections leaves every other test alone.
    name = await database.clone_database(knm_server_url, knm_template_db)
    admin = await connect_one(knm_server_url)
    try:
        url = database.with_database(knm_server_url, name)
        app = create_app(database.config_for_tests(url))
        async with AsyncTestClient(app=app, raise_server_exceptions=False) as http:
            await _until_ready(http)
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )

            async def database_down() -> bool:
                status, checks = await _checks(http)
                return status == 503 and checks["database"].startswith("down")

            await eventually(database_down, deadline=30)
            response = await http.get("/readyz")
            body = assert_envelope(response, 503)
            assert body["data"]["checks"]["migrations"] == "unknown: database down"
            assert "database: down" in body["error"]
            # Nothing about where the database is or who connects to it.
            assert name not in response.text and "@" not in response.text
            assert_envelope(await http.get("/healthz"), 200)
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            await _until_ready(http)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
        await database.drop_database(knm_server_url, name)


async def test_a_process_that_does_not_claim_tasks_is_ready_on_its_reapers_heartbeat(
    knm_database_url: str,
) -> None:
    app = create_app(database.config_for_tests(knm_database_url, runner=False))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as http:
        runner = app.state["knm"].runner
        assert not runner.claim_enabled
        beat = runner.heartbeat

        async def beaten() -> bool:
            return runner.heartbeat > beat

        await eventually(beaten, deadline=30)
        await _until_ready(http)
        assert (await _checks(http)) == (200, EVERY_CHECK_OK)


@pytest.fixture
async def embedded(knm_database_url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = Litestar(
        plugins=[KnmPlugin(database.config_for_tests(knm_database_url, path_prefix="/knm"))]
    )
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


async def test_both_probes_live_under_the_prefix_when_knm_is_embedded(
    embedded: AsyncTestClient[Litestar],
) -> None:
    assert_envelope(await embedded.get("/knm/healthz"), 200)
    await _until_ready(embedded, "/knm/readyz")
    assert (await _checks(embedded, "/knm/readyz")) == (200, EVERY_CHECK_OK)
    assert (await embedded.get("/healthz")).status_code == 404
    assert (await embedded.get("/readyz")).status_code == 404


async def test_version_needs_a_token_and_any_role_may_read_it(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    assert_envelope(await knm_client.get("/version"), 401)
    viewer = await knm_client.create_user(admin_headers, "version-viewer", "viewer")
    data = assert_envelope(await knm_client.get("/version", headers=viewer), 200)["data"]
    assert data["version"] == knm.__version__
    assert data["python"].count(".") == 2
    names = [plugin["name"] for plugin in data["plugins"]]
    assert names == sorted(names) and "ssh" in names
    assert all(set(plugin) == {"name", "version"} for plugin in data["plugins"])
