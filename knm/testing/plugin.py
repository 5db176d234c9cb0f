"""knm's pytest plugin (entry point ``pytest11``): fixtures for knm's own tests and for
third-party plugin authors.

- ``knm_server_url``: a PostgreSQL server for the session (embedded, or ``KNM_TEST_DATABASE_URL``).
- ``knm_database_url``: a fresh migrated database per test module.
- ``knm_pool``: an asyncpg pool of that database on the test's own event loop.
- ``knm_config``: settings for a knm under test on that database.
- ``knm_app`` / ``knm_client``: the app, and an HTTP client that runs its lifespan.
- ``admin_token``/``admin_headers``: logged in as the bootstrap admin.
- ``knm_process``: a factory that starts real ``knm serve`` processes on free ports.
- ``knm_server``: one real ``knm serve`` for the module (settings from ``knm_server_env``;
  the test executor, route ``test``, by default), and ``sdk_admin``: an SDK client
  (``knm.client.Client``) of it, logged in as the bootstrap admin.
- ``knm_fleet_runner``: ``knm_fleet_runner(route, fleet)`` makes a ``FleetRunner`` whose
  ``start(**body)``/``run(**body)`` start a task of that executor on the fleet and run it to
  its end (``knm.testing.tasks``; waits follow the task's events, never poll).
- ``ssh_fleet``/``ssh_fleet_cluster``: real OpenSSH nodes on loopback addresses, and a cluster
  and credential for them (``knm.testing.fleet``).
- ``kube_standin``: a Kubernetes API stand-in over a real socket (``knm.testing.kube``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from knm.testing import database
from knm.testing.client import ApiClient
from knm.testing.k8s import kube_standin
from knm.testing.process import KnmProcess, ProcessFactory
from knm.testing.ssh import ssh_fleet, ssh_fleet_cluster
from knm.testing.tasks import FleetRunner

#: The plugin ``knm_server`` loads unless ``knm_server_env`` says otherwise: an executor whose
#: tasks sleep, echo, fail or hang as their body asks, with no SSH (route ``test``).
TEST_EXECUTOR = "knm.testing.executor:TestExecutorPlugin"

#: Hypothesis profiles for knm's suite and for plugin authors' (``--hypothesis-profile`` or
#: ``KNM_HYPOTHESIS_PROFILE``): ``ci`` is deterministic and bounded (the same examples every
#: run, no example database to carry state between runs), ``dev`` explores new examples each
#: run, ``soak`` runs long. Tests that set ``max_examples`` themselves keep their own bound.
HYPOTHESIS_PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"derandomize": True, "database": None, "deadline": None, "print_blob": True},
    "dev": {"deadline": None, "max_examples": 50},
    "soak": {"deadline": None, "max_examples": 5_000},
}


def _register_hypothesis_profiles() -> None:
    try:
        from hypothesis import settings
    except ImportError:  # a plugin author's suite without hypothesis
        return
    for name, options in HYPOTHESIS_PROFILES.items():
        settings.register_profile(name, **options)


# At import, before hypothesis's own plugin reads ``--hypothesis-profile`` in its configure.
_register_hypothesis_profiles()


#: Fixtures that start real servers (sshd fleets, ``knm serve`` processes): a test that uses
#: one, directly or through another fixture, is marked ``slow``.
SLOW_FIXTURES = frozenset({"ssh_fleet", "knm_process", "knm_server"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    # Whatever starts a knm without saying where its data goes (a settings file read from the
    # environment, a subprocess) writes it in the session's temp dir, not in /var/lib/knm.
    os.environ.setdefault("KNM_DATA_DIR", database.data_dir_for_tests())
    config.addinivalue_line(
        "markers",
        "slow: real servers (sshd fleets, knm processes, installs, benchmarks' smokes, "
        "scale-out, rolls), seconds-long CPU checks and API fuzzing over every route; "
        'left out with -m "not slow"',
    )
    profile = os.environ.get("KNM_HYPOTHESIS_PROFILE")
    chosen = config.getoption("hypothesis_profile", default=None)
    if profile and not chosen:
        from hypothesis import settings

        settings.load_profile(profile)


@pytest.fixture(scope="session")
def knm_server_url() -> Iterator[str]:
    # Not under pytest's tmp_path: pytest prunes old base directories, and a concurrent session
    # would delete this server's data directory under it.
    database.sweep_stale_servers()
    base = Path(tempfile.mkdtemp(prefix=database.SERVER_PREFIX))
    try:
        with database.server_for_tests(base) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
async def knm_template_db(knm_server_url: str) -> AsyncIterator[str]:
    name = await database.create_template(knm_server_url)
    yield name
    await database.drop_database(knm_server_url, name)


@pytest.fixture(scope="module")
async def knm_database_url(knm_server_url: str, knm_template_db: str) -> AsyncIterator[str]:
    name = await database.clone_database(knm_server_url, knm_template_db)
    yield database.with_database(knm_server_url, name)
    await database.drop_database(knm_server_url, name)


@pytest.fixture
async def knm_fresh_database_url(knm_server_url: str, knm_template_db: str) -> AsyncIterator[str]:
    """A database of this test's own, cloned from the template (a fraction of a second): for
    tests whose state must not reach, or come from, any other test of the module."""
    name = await database.clone_database(knm_server_url, knm_template_db)
    yield database.with_database(knm_server_url, name)
    await database.drop_database(knm_server_url, name)


@pytest.fixture
async def knm_pool(knm_database_url: str) -> AsyncIterator[Any]:
    """A pool of the module's database on the test's own event loop (``knm_app`` runs its own
    pool on another): for reading or arranging the stored state a test asserts on."""
    from knm.core import db

    pool = await db.connect(knm_database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def knm_config_overrides() -> dict[str, Any]:
    """Override in a test module to change the settings of ``knm_config``."""
    return {}


@pytest.fixture(scope="module")
def knm_config(knm_database_url: str, knm_config_overrides: dict[str, Any]) -> Any:
    return database.config_for_tests(knm_database_url, **knm_config_overrides)


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    """Override in a test module to register extra plugin objects (test executors, …)."""
    return []


@pytest.fixture(scope="module")
def knm_app(knm_config: Any, knm_extra_plugins: list[Any]) -> Any:
    from knm.core.app import create_app
    from knm.core.manager import make_plugin_manager
    from knm.core.runtime import Knm

    pm = make_plugin_manager(
        blocked=knm_config.blocked_plugins,
        load_entrypoints=knm_config.load_entrypoints,
        extra_plugins=knm_extra_plugins,
        named_plugins=knm_config.plugins,
    )
    return create_app(knm=Knm(knm_config, pm))


@pytest.fixture(scope="module")
async def knm_client(knm_app: Any) -> AsyncIterator[ApiClient]:
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=knm_app, raise_server_exceptions=False) as client:
        yield ApiClient(client, knm_app.state["knm"].config.api_prefix)


@pytest.fixture(scope="module")
async def admin_token(knm_client: ApiClient) -> str:
    return await knm_client.login("admin", database.TEST_ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def knm_process(tmp_path: Path, knm_database_url: str) -> Iterator[ProcessFactory]:
    processes: list[KnmProcess] = []

    def start(*args: str, **env: str) -> KnmProcess:
        proc = KnmProcess(tmp_path / f"knm-{len(processes)}", knm_database_url, list(args), env)
        processes.append(proc)
        proc.start()
        return proc

    yield start
    for proc in processes:
        proc.stop()


@pytest.fixture(scope="module")
def knm_fleet_runner(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> Callable[..., FleetRunner]:
    """``knm_fleet_runner(route, fleet, path="execute", status_path=…, deadline=90)``: a
    ``FleetRunner`` for the executor at ``/automation/{route}/{path}``, as the admin."""

    def make(route: str, target: Any, **options: Any) -> FleetRunner:
        return FleetRunner(knm_client, admin_headers, route, target, **options)

    return make


@pytest.fixture(scope="module")
def knm_server_env() -> dict[str, str]:
    """Override in a test module to give ``knm_server`` other settings (``KNM_*``)."""
    return {"KNM_PLUGINS": TEST_EXECUTOR}


@pytest.fixture(scope="module")
def knm_server(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, knm_server_env: dict[str, str]
) -> Iterator[KnmProcess]:
    """A real ``knm serve`` over loopback on the module's database (``.base_url``, ``.api``)."""
    proc = KnmProcess(tmp_path_factory.mktemp("knm-server"), knm_database_url, ["serve"],
                      knm_server_env)  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sdk_admin(knm_server: KnmProcess) -> Iterator[Any]:
    """An SDK client (``knm.client.Client``) of ``knm_server``, logged in as the admin."""
    from knm.client import Client

    with Client(knm_server.base_url) as client:
        client.login("admin", database.TEST_ADMIN_PASSWORD)
        yield client


__all__ = ["kube_standin", "ssh_fleet", "ssh_fleet_cluster"]
