"""Contexts: ``knm login`` into named contexts, ``knm config`` to list, pick, change, rename
and delete them, and ``--context``/``KNM_CONTEXT`` to pick one per command — against a real
server, logging in through the real ``knm login`` (the password on stdin), with ``KNM_URL`` and
``KNM_TOKEN`` unset unless a test sets them (they override every context)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from knm.cli.main import main
from knm.client import Client
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

BOB_PASSWORD = "bob-s3cret-password"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Run = Callable[..., Result]


@pytest.fixture(scope="module")
def bob(admin: Client) -> str:
    """A second user of the server, a viewer."""
    return admin.create_user("bob", BOB_PASSWORD, "viewer").username


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def knm(
    server: KnmProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config_dir: Path,
) -> Run:
    """``knm(*args, stdin="")`` in-process, with only the contexts to say where and who."""
    for name in ("KNM_URL", "KNM_TOKEN", "KNM_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_dir))

    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def two_logins(knm: Run, server: KnmProcess, bob: str) -> None:
    """Contexts ``as-admin`` and ``as-bob`` on the same server; ``as-admin`` current."""
    for context, user, password in (("as-bob", bob, BOB_PASSWORD),
                                    ("as-admin", "admin", TEST_ADMIN_PASSWORD)):  # fmt: skip
        done = knm("login", server.base_url, "--user", user, "--context", context,
                   "--password-stdin", stdin=password + "\n")  # fmt: skip
        assert done.code == 0, done.err


def whoami(knm: Run, *args: str) -> str:
    done = knm("user", "me", "--json", *args)
    assert done.code == 0, done.err
    return str(done.json()["username"])


def stored(config_dir: Path) -> dict[str, Any]:
    return dict(json.loads((config_dir / "knm" / "credentials.json").read_text()))


def host_port(url: str) -> str:
    return urlsplit(url).netloc


def test_switching_between_two_users_contexts_changes_who_you_are(
    knm: Run, two_logins: None, bob: str
) -> None:
    assert knm("config", "current-context").out == "as-admin\n"
    assert whoami(knm) == "admin"
    switched = knm("config", "use-context", "as-bob")
    assert switched.code == 0 and "as-bob" in switched.out
    assert knm("config", "current-context").out == "as-bob\n"
    assert whoami(knm) == bob
    assert knm("config", "use-context", "as-admin").code == 0
    assert whoami(knm) == "admin"


def test_get_contexts_lists_name_server_and_user_and_marks_the_current_one(
    knm: Run, two_logins: None, server: KnmProcess, bob: str
) -> None:
    listed = knm("config", "get-contexts", "--json").json()
    assert listed["current_context"] == "as-admin"
    rows = {row["name"]: row for row in listed["contexts"]}
    assert rows["as-admin"]["current"] and not rows["as-bob"]["current"]
    assert rows["as-bob"]["server"] == server.base_url and rows["as-bob"]["user"] == bob
    assert rows["as-bob"]["logged_in"] is True
    table = knm("config", "get-contexts").out.splitlines()
    assert [word for word in table[0].split() if word.isalpha()] == [
        "CURRENT",
        "NAME",
        "SERVER",
        "USER",
    ]
    admin_row = next(line for line in table if "as-admin" in line)
    bob_row = next(line for line in table if "as-bob" in line)
    assert "*" in admin_row and "*" not in bob_row and bob in bob_row


def test_context_option_and_knm_context_override_the_current_context(
    knm: Run, two_logins: None, bob: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert whoami(knm, "--context", "as-bob") == bob
    monkeypatch.setenv("KNM_CONTEXT", "as-bob")
    assert whoami(knm) == bob
    # --context beats KNM_CONTEXT; neither changes the current context.
    assert whoami(knm, "--context", "as-admin") == "admin"
    assert stored_current(knm) == "as-admin"
    note = knm("config", "current-context")
    assert note.out == "as-admin\n" and "KNM_CONTEXT=as-bob overrides" in note.err


def stored_current(knm: Run) -> str:
    return str(knm("config", "get-contexts", "--json").json()["current_context"])


def test_knm_url_and_knm_token_override_every_context(
    knm: Run, two_logins: None, server: KnmProcess, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNM_URL", server.base_url)
    monkeypatch.setenv("KNM_TOKEN", admin.token or "")
    monkeypatch.setenv("KNM_CONTEXT", "as-bob")
    assert whoami(knm, "--context", "as-bob") == "admin"


def test_login_to_a_url_makes_a_current_context_named_after_its_host_and_port(
    knm: Run, server: KnmProcess, config_dir: Path
) -> None:
    done = knm("login", server.base_url, "--user", "admin", "--password-stdin",
               stdin=TEST_ADMIN_PASSWORD + "\n")  # fmt: skip
    assert done.code == 0, done.err
    name = host_port(server.base_url)
    assert f"context {name} is current" in done.out
    assert knm("config", "current-context").out == f"{name}\n"
    assert stored(config_dir)["contexts"][name]["server"] == server.base_url
    assert whoami(knm) == "admin"


def test_an_old_single_login_file_is_read_as_a_context_and_rewritten_on_the_next_change(
    knm: Run, server: KnmProcess, admin: Client, config_dir: Path
) -> None:
    path = config_dir / "knm" / "credentials.json"
    path.parent.mkdir(parents=True)
    old = {"url": server.base_url, "token": admin.token, "username": "admin",
           "expires_at": "2999-01-01T00:00:00Z"}  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(old, out)
    name = host_port(server.base_url)
    assert whoami(knm) == "admin"
    assert knm("config", "current-context").out == f"{name}\n"
    assert stored(config_dir) == old, "reading alone must not rewrite the file"
    assert knm("config", "set-context", "other", "--server", "https://knm.example.com").code == 0
    migrated = stored(config_dir)
    assert migrated["current_context"] == name
    assert migrated["contexts"][name]["token"] == admin.token
    assert migrated["contexts"]["other"]["server"] == "https://knm.example.com"
    assert whoami(knm) == "admin"


def test_the_file_stays_private_even_under_a_permissive_umask(
    knm: Run, server: KnmProcess, bob: str, config_dir: Path
) -> None:
    previous = os.umask(0)
    try:
        done = knm("login", server.base_url, "--user", bob, "--password-stdin",
                   stdin=BOB_PASSWORD + "\n")  # fmt: skip
        assert done.code == 0, done.err
        assert knm("config", "rename-context", host_port(server.base_url), "bob").code == 0
    finally:
        os.umask(previous)
    folder = config_dir / "knm"
    assert [p.name for p in folder.iterdir()] == ["credentials.json"], "no temporary file left"
    assert stat.S_IMODE((folder / "credentials.json").stat().st_mode) == 0o600
    assert BOB_PASSWORD not in (folder / "credentials.json").read_text()


def test_no_config_command_prints_a_token(
    knm: Run, two_logins: None, config_dir: Path, server: KnmProcess
) -> None:
    tokens = [c["token"] for c in stored(config_dir)["contexts"].values()]
    assert all(tokens)
    commands = [
        ("config", "get-contexts"), ("config", "get-contexts", "--json"),
        ("config", "current-context"), ("config", "current-context", "--json"),
        ("config", "use-context", "as-bob"), ("config", "use-context", "as-bob", "--json"),
        ("config", "set-context", "as-bob", "--server", server.base_url),
        ("config", "set-context", "as-bob", "--json"),
        ("config", "rename-context", "as-bob", "bob"),
        ("config", "rename-context", "bob", "as-bob", "--json"),
        ("config", "use-context", "nope"), ("config", "delete-context", "as-bob"),
        ("config", "delete-context", "as-admin", "--json"),
    ]  # fmt: skip
    for args in commands:
        done = knm(*args)
        for token in tokens:
            assert token not in done.out + done.err, args


def test_unknown_contexts_are_refused_with_the_known_ones_named(
    knm: Run, two_logins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in (
        ("config", "use-context", "prod"),
        ("config", "delete-context", "prod"),
        ("config", "rename-context", "prod", "production"),
        ("user", "me", "--context", "prod"),
        ("logout", "--context", "prod"),
        ("login", "--context", "prod", "--password-stdin"),
    ):
        done = knm(*args)
        assert done.code == 2, args
        assert "no context 'prod'; the contexts are: as-admin, as-bob" in done.err, args
    monkeypatch.setenv("KNM_CONTEXT", "prod")
    assert "the contexts are: as-admin, as-bob" in knm("task", "list").err
    taken = knm("config", "rename-context", "as-bob", "as-admin")
    assert taken.code == 2 and "already a context 'as-admin'" in taken.err
    assert stored_current(knm) == "as-admin"


def test_logout_forgets_the_token_and_login_alone_logs_into_the_context_again(
    knm: Run, two_logins: None, bob: str, config_dir: Path
) -> None:
    out = knm("logout", "--context", "as-bob")
    assert out.code == 0 and "logged out" in out.out and "as-bob" in out.out
    assert stored(config_dir)["contexts"]["as-bob"]["token"] == ""
    assert whoami(knm) == "admin", "the other context keeps its login"
    refused = knm("user", "me", "--context", "as-bob")
    assert refused.code == 2 and "knm login --context as-bob" in refused.err
    # The context remembers server and user: only the password is asked.
    again = knm("login", "--context", "as-bob", "--password-stdin", stdin=BOB_PASSWORD + "\n")
    assert again.code == 0, again.err
    assert whoami(knm) == bob and stored_current(knm) == "as-bob"
    assert knm("logout").code == 0
    assert knm("logout", "--json").json() == {"logged_out": False, "context": "as-bob"}


def test_set_context_creates_or_changes_a_context_without_logging_in(
    knm: Run, server: KnmProcess, two_logins: None, bob: str, config_dir: Path
) -> None:
    new = knm("config", "set-context", "lab")
    assert new.code == 2 and "--server URL" in new.err
    assert knm("config", "set-context", "lab", "--server", "ftp://lab").code == 2
    made = knm("config", "set-context", "lab", "--server", server.base_url, "--user", bob)
    assert made.code == 0 and "knm login --context lab" in made.out
    assert stored_current(knm) == "as-admin", "set-context does not switch"
    assert knm("user", "me", "--context", "lab").code == 2
    assert knm("login", "--context", "lab", "--password-stdin",
               stdin=BOB_PASSWORD + "\n").code == 0  # fmt: skip
    assert whoami(knm) == bob
    # Another user's login is not this one's: changing the user forgets the token.
    assert knm("config", "set-context", "as-admin", "--user", bob).code == 0
    assert stored(config_dir)["contexts"]["as-admin"]["token"] == ""
    assert knm("config", "set-context", "lab", "--server", server.base_url + "/").code == 0
    assert stored(config_dir)["contexts"]["lab"]["token"], "the same server keeps the login"


def test_deleting_the_current_context_leaves_none_current(knm: Run, two_logins: None) -> None:
    done = knm("config", "delete-context", "as-admin")
    assert done.code == 0 and "it was the current context" in done.err
    assert knm("config", "current-context").code == 2
    refused = knm("user", "me")
    assert refused.code == 2 and "knm config use-context" in refused.err and "as-bob" in refused.err


def test_knm_context_picks_the_context_of_a_real_knm_process(
    knm: Run, two_logins: None, bob: str, config_dir: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    env |= {"XDG_CONFIG_HOME": str(config_dir), "KNM_CONTEXT": "as-bob"}
    done = subprocess.run(
        [sys.executable, "-m", "knm.cli.main", "user", "me", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["username"] == bob


def test_a_login_about_to_expire_is_refreshed_into_its_own_context(
    knm: Run, two_logins: None, config_dir: Path
) -> None:
    path = config_dir / "knm" / "credentials.json"
    saved = stored(config_dir)
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    saved["contexts"]["as-bob"]["expires_at"] = soon
    path.write_text(json.dumps(saved))
    assert whoami(knm, "--context", "as-bob") == "bob"
    after = stored(config_dir)["contexts"]
    assert after["as-bob"]["expires_at"] != soon and after["as-bob"]["token"]
    assert after["as-admin"] == saved["contexts"]["as-admin"], "other contexts are left alone"
