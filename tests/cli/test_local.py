"""Local commands act on the server's own database without a running server."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from knm.testing.database import TEST_SECRET
from knm.testing.process import ProcessFactory, clean_environ

pytestmark = pytest.mark.timeout(180)


def knm(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = clean_environ()
    env.update(
        KNM_DATABASE_URL=database_url,
        KNM_SECRET_KEY=TEST_SECRET,
        KNM_ARGON2_TIME_COST="1",
        KNM_ARGON2_MEMORY_COST="8",
        KNM_ARGON2_PARALLELISM="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "knm.cli.main", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_admin_user_create_takes_the_password_from_stdin_and_the_user_can_log_in(
    knm_database_url: str, knm_process: ProcessFactory
) -> None:
    created = knm(
        knm_database_url,
        "admin",
        "user",
        "create",
        "carol",
        "--role",
        "operator",
        "--password-stdin",
        stdin="carols-password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created user carol (operator)" in created.stdout
    server = knm_process()
    login = httpx.post(
        f"{server.api}/auth/login", json={"username": "carol", "password": "carols-password"}
    )
    assert login.status_code == 200 and login.json()["data"]["user"]["role"] == "operator"


def test_reset_password_revives_a_locked_out_admin(knm_database_url: str) -> None:
    result = knm(
        knm_database_url,
        "admin",
        "user",
        "reset-password",
        "admin",
        "--password-stdin",
        stdin="a-brand-new-password\n",
    )
    assert result.returncode == 0, result.stderr
    listed = knm(knm_database_url, "admin", "user", "list")
    assert "admin\tadmin\tactive" in listed.stdout


def test_unknown_users_and_short_passwords_fail_with_a_message(knm_database_url: str) -> None:
    missing = knm(
        knm_database_url,
        "admin",
        "user",
        "reset-password",
        "ghost",
        "--password-stdin",
        stdin="whatever-pass\n",
    )
    assert missing.returncode == 1 and "no user 'ghost'" in missing.stderr
    short = knm(
        knm_database_url, "admin", "user", "create", "dave", "--password-stdin", stdin="x\n"
    )
    assert short.returncode == 1 and "at least 8" in short.stderr


def test_migrate_is_idempotent(knm_database_url: str) -> None:
    for _ in range(2):
        result = knm(knm_database_url, "migrate")
        assert result.returncode == 0, result.stderr


def test_no_command_prints_help_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "knm.cli.main"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "serve" in result.stdout


@pytest.mark.slow
def test_serve_keeps_an_idle_connection_open_past_the_clients_keepalive_expiry(
    knm_process: ProcessFactory,
) -> None:
    import http.client
    import select

    from knm.client.http import KEEPALIVE_EXPIRY

    server = knm_process()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        sock = conn.sock
        # A server closing an idle connection as a client reuses it loses that request: knm's
        # SDKs and httpx let theirs go after KEEPALIVE_EXPIRY, so the server must hold on longer.
        closed = select.select([sock], [], [], KEEPALIVE_EXPIRY + 1)[0]
        assert not closed
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200 and conn.sock is sock
    finally:
        conn.close()
