"""The console of a knm embedded under a prefix (``KnmPlugin`` in a host's Litestar app, served
by uvicorn in a process of its own): the page, its API calls and its WebSocket all live under
the prefix, beside the host's own routes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.plugin import TEST_EXECUTOR
from knm.testing.process import KnmProcess

from .conftest import Console, login_token

pytestmark = pytest.mark.slow

PREFIX = "/ops"

HOST = textwrap.dedent(
    """
    from litestar import Litestar, get

    from knm.core.config import KnmConfig
    from knm.core.litestar_plugin import KnmPlugin


    @get("/")
    async def home() -> str:
        return "the host's home"


    app = Litestar(route_handlers=[home], plugins=[KnmPlugin(KnmConfig.from_env())])
    """
)


class EmbeddedKnm(KnmProcess):
    """A host app with knm under ``PREFIX``, served by uvicorn (the waits of ``KnmProcess``)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self, wait: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "host.py").write_text(HOST)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "host:app", "--app-dir", str(self.workdir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.wait_ready()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    env = {"KNM_PATH_PREFIX": PREFIX, "KNM_PLUGINS": TEST_EXECUTOR}
    proc = EmbeddedKnm(tmp_path_factory.mktemp("embedded"), knm_database_url, ["serve"], env)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


@pytest.mark.timeout(180)
def test_the_console_works_under_the_prefix_beside_the_hosts_routes(
    console: Console, server: KnmProcess
) -> None:
    host = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=30)
    assert host.text == "the host's home"
    console.login("admin", TEST_ADMIN_PASSWORD)
    token = login_token(server, "admin", TEST_ADMIN_PASSWORD)
    body = {
        "cluster_name": "lab",
        "target_nodes": ["a", "b", "c"],
        "sleep": 1.0,
        "echo": "hi {node}",
    }
    started = httpx.post(
        f"{server.api}/automation/test/execute",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    task_id = started.json()["data"]["task_id"]
    console.open(f"#/tasks/{task_id}")
    console.wait(lambda d: len(console.cells("success")) == 3)
    console.find("#grid .cell[data-node='b']").click()
    console.wait(lambda d: "hi b" in console.find("#output-stdout").text)
    urls = console.urls()
    assert f"ws://127.0.0.1:{server.port}{PREFIX}/api/v1/progress/ws" in urls
    assert all(
        url.startswith(f"http://127.0.0.1:{server.port}{PREFIX}/")
        for url in urls
        if url.startswith("http")
    )
    console.wait(lambda d: "completed" in console.find("#task-status").text)
    assert console.severe_logs() == []
