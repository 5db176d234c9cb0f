"""A console left open outlives its first token: the page swaps the JWT for a fresh one
before it expires (``POST /auth/refresh``), and its WebSocket, closed by the server when the
token it connected with expires (4401), comes back with the new one and misses nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.plugin import TEST_EXECUTOR
from knm.testing.process import KnmProcess

from .conftest import WAIT, Console, api, login_token

pytestmark = pytest.mark.slow

#: Seconds a JWT lives here: the page refreshes it after 80% of that.
TTL = 8

TOKEN = "return JSON.parse(sessionStorage.getItem('knm.console.session') || 'null')?.token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    proc = KnmProcess(
        tmp_path_factory.mktemp("console-session"),
        knm_database_url,
        ["serve"],
        {"KNM_PLUGINS": TEST_EXECUTOR, "KNM_TOKEN_TTL": str(TTL)},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.timeout(180)
def test_the_page_refreshes_its_token_and_its_websocket_follows(
    console: Console, server: KnmProcess
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    first = console.driver.execute_script(TOKEN)
    # The API's token is made after the page's login, which on a loaded machine can take
    # longer than the token lives.
    with api(server, login_token(server, "admin", TEST_ADMIN_PASSWORD)) as admin:
        body = {"cluster_name": "lab", "target_nodes": ["a", "b"], "hang_nodes": ["a", "b"]}
        started = admin.post("/automation/test/execute", json=body)
        assert started.status_code == 200, started.text
        task_id = started.json()["data"]["task_id"]
        console.open(f"#/tasks/{task_id}")
        console.wait(lambda d: len(console.cells("running")) == 2)
        # Two refreshes: the first token has expired by the second.
        tokens = {first}
        deadline = time.monotonic() + 4 * TTL + WAIT
        while len(tokens) < 3:
            assert time.monotonic() < deadline, "the page did not refresh its token"
            tokens.add(console.driver.execute_script(TOKEN))
            time.sleep(0.5)
        # ``admin``'s own token has expired too: a fresh one cancels the task.
        with api(server, login_token(server, "admin", TEST_ADMIN_PASSWORD)) as fresh:
            assert fresh.post(f"/automation/test/cancel/{task_id}").status_code == 200
    console.wait(lambda d: "cancelled" in console.find("#task-status").text)
    console.wait(lambda d: len(console.cells("failed")) == 2)
    assert "stopped" not in console.find("#socket-state").text
    console.open("#/history")
    console.find(f"#history-results tr[data-task='{task_id}']")
    assert console.all("#login-form") == []
    assert console.severe_logs() == []
