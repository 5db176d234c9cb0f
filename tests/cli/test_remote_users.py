"""``knm user``, ``knm token`` and ``knm audit`` against a real server: passwords only from files,
stdin or a terminal prompt (never argv), a token shown once and usable at once, the audit log's
filters, ``--json`` everywhere, and error answers as messages with exit code 4."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pexpect
import pytest

from knm.client import Client, Unauthorized
from knm.testing.process import KnmProcess

from .conftest import Knm

PASSWORD = "correct-horse-battery"


def login(server: KnmProcess, username: str, password: str) -> Client:
    client = Client(server.base_url)
    try:
        client.login(username, password)
    except BaseException:
        client.close()  # a refused login leaves no open connection behind
        raise
    return client


def secret_file(tmp_path: Path, text: str, name: str = "pw") -> str:
    path = tmp_path / name
    path.write_text(text + "\n")
    return str(path)


def test_admins_create_list_show_and_update_users(
    knm: Knm, server: KnmProcess, tmp_path: Path
) -> None:
    created = knm("user", "create", "alice", "--role", "operator",
                  "--password-file", secret_file(tmp_path, PASSWORD), "--json")  # fmt: skip
    assert created.code == 0, created.err
    alice = created.json()
    assert (alice["username"], alice["role"], alice["disabled"]) == ("alice", "operator", False)
    assert PASSWORD not in created.out + created.err
    # The newline that ends the file is not part of the password.
    login(server, "alice", PASSWORD).close()

    listed = knm("user", "list", "--json").json()
    assert {"admin", "alice"} <= {u["username"] for u in listed["users"]}
    assert listed["total"] == len(listed["users"])
    table = knm("user", "list").out
    assert "alice" in table and "operator" in table
    assert knm("user", "show", "alice", "--json").json()["id"] == alice["id"]
    assert "operator" in knm("user", "show", str(alice["id"])).out

    disabled = knm("user", "update", "alice", "--role", "viewer", "--disable")
    assert disabled.code == 0, disabled.err
    assert disabled.out.strip() == f"updated user {alice['id']} (alice, viewer, disabled)"
    with pytest.raises(Unauthorized):
        login(server, "alice", PASSWORD)
    enabled = knm("user", "update", "alice", "--enable", "--json")
    assert enabled.code == 0 and enabled.json()["disabled"] is False
    login(server, "alice", PASSWORD).close()


def test_a_password_comes_from_stdin_and_users_reset_and_change_passwords(
    knm: Knm, server: KnmProcess, tmp_path: Path
) -> None:
    made = knm("user", "create", "bob", "--password-file", "-", stdin=PASSWORD + "\n")
    assert made.code == 0, made.err
    assert made.out.startswith("created user ") and "(bob, viewer)" in made.out
    reset = knm("user", "reset-password", "bob",
                "--password-file", secret_file(tmp_path, "reset-by-admin"))  # fmt: skip
    assert reset.code == 0, reset.err
    with login(server, "bob", "reset-by-admin") as bob:
        assert knm("user", "me", "--json", token=bob.token).json()["username"] == "bob"
        new = secret_file(tmp_path, "chosen-by-bob", "new")
        old = secret_file(tmp_path, "not-it", "old")
        wrong = knm("user", "change-password", "--current-password-file", old,
                    "--new-password-file", new, token=bob.token)  # fmt: skip
        assert wrong.code == 4, wrong.err
        changed = knm("user", "change-password", "--current-password-file", "-",
                      "--new-password-file", new, token=bob.token, stdin="reset-by-admin\n")  # fmt: skip
        assert changed.code == 0, changed.err
        assert "this session stays signed in" in changed.out
        assert knm("user", "me", "--json", token=bob.token).json()["username"] == "bob"
    login(server, "bob", "chosen-by-bob").close()


def test_a_password_is_never_read_from_argv_nor_asked_without_a_terminal(knm: Knm) -> None:
    no_terminal = knm("user", "create", "carol")
    assert no_terminal.code == 2 and "no terminal" in no_terminal.err
    # Options are never abbreviated: this is not taken for --password-file.
    in_argv = knm("user", "create", "carol", "--password", PASSWORD)
    assert in_argv.code == 2
    unreadable = knm("user", "create", "carol", "--password-file", "/nonexistent/pw")
    assert unreadable.code == 2 and "No such file" in unreadable.err
    assert "Traceback" not in unreadable.err
    assert knm("user", "change-password", "--current-password-file", "-",
               "--new-password-file", "-").code == 2  # fmt: skip
    assert knm("user", "update", "admin").code == 2  # nothing to change
    assert knm("user", "show", "carol").code == 4


def test_a_terminal_is_asked_for_the_password_twice(server: KnmProcess, admin: Client) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    env |= {"KNM_URL": server.base_url, "KNM_TOKEN": admin.token or "", "NO_COLOR": "1"}
    args = ["-m", "knm.cli.main", "user", "create", "dave", "--role", "operator"]
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=30)
    try:
        child.expect("Password for dave: ")
        child.sendline(PASSWORD)
        child.expect(r"Password for dave \(again\): ")
        child.sendline(PASSWORD)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "created user" in (child.before or "") and PASSWORD not in (child.before or "")
    login(server, "dave", PASSWORD).close()


def test_errors_render_as_messages_and_exit_4(knm: Knm, server: KnmProcess, tmp_path: Path) -> None:
    pw = secret_file(tmp_path, PASSWORD)
    assert knm("user", "create", "erin", "--password-file", pw).code == 0
    duplicate = knm("user", "create", "erin", "--password-file", pw, "--json")
    assert duplicate.code == 4 and duplicate.json()["code"] == 409
    assert "Traceback" not in duplicate.err and duplicate.err.startswith("knm: ")
    short = knm("user", "create", "frank", "--password-file", secret_file(tmp_path, "short"))
    assert short.code == 4 and "at least 8 characters" in short.err
    missing = knm("user", "show", "999999", "--json")
    assert missing.code == 4 and missing.json()["code"] == 404
    with login(server, "erin", PASSWORD) as erin:
        forbidden = knm("user", "list", "--json", token=erin.token)
        assert forbidden.code == 4 and forbidden.json()["code"] == 403
        assert knm("audit", "list", token=erin.token).code == 4
    unauthenticated = knm("user", "me", token="not-a-token")
    assert unauthenticated.code == 4 and "knm login" in unauthenticated.err


def test_a_token_is_shown_once_works_at_once_and_stops_when_revoked(
    knm: Knm, server: KnmProcess, tmp_path: Path
) -> None:
    assert knm("user", "create", "gina", "--role", "operator",
               "--password-file", secret_file(tmp_path, PASSWORD)).code == 0  # fmt: skip
    with login(server, "gina", PASSWORD) as gina:
        created = knm("token", "create", "ci", "--expires-in", "7", token=gina.token)
        assert created.code == 0, created.err
        token = created.out.strip()
        assert token and "\n" not in token and "shown only this once" in created.err
        me = knm("user", "me", "--json", token=token).json()
        assert (me["username"], me["role"]) == ("gina", "operator")

        listed = knm("token", "list", "--json", token=gina.token).json()
        assert [t["name"] for t in listed["tokens"]] == ["ci"]
        (ci,) = listed["tokens"]
        assert token not in knm("token", "list", token=gina.token).out
        expires = datetime.fromisoformat(ci["expires_at"])
        assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)

        above = knm("token", "create", "root", "--role", "admin", "--json", token=gina.token)
        assert above.code == 4 and above.json()["code"] == 403
        viewer = knm("token", "create", "read-only", "--role", "viewer", "--json",
                     token=gina.token)  # fmt: skip
        assert viewer.code == 0 and viewer.json()["token"].startswith("knm_")

        revoked = knm("token", "revoke", "ci", token=gina.token)
        assert revoked.code == 0 and revoked.out.strip() == f"revoked API token {ci['id']}"
        refused = knm("user", "me", token=token)
        assert refused.code == 4 and "knm login" in refused.err
        assert knm("token", "revoke", "no-such-token", token=gina.token).code == 4
        # Admins see everyone's tokens.
        everyone = knm("token", "list", "--json").json()["tokens"]
        assert {"ci", "read-only"} <= {t["name"] for t in everyone}
    past = knm("token", "create", "old", "--expires-at", "2001-01-01")
    assert past.code == 4 and "future" in past.err
    assert knm("token", "create", "bad", "--expires-at", "soon").code == 2


def test_the_audit_log_lists_mutations_with_the_apis_filters(knm: Knm, tmp_path: Path) -> None:
    pw = secret_file(tmp_path, PASSWORD)
    assert knm("user", "create", "hank", "--password-file", pw).code == 0
    assert knm("user", "update", "hank", "--role", "operator").code == 0
    hank = knm("audit", "list", "--target", "hank", "--json")
    assert hank.code == 0, hank.err
    actions = [e["action"] for e in hank.json()["entries"]]
    assert actions == ["user.update", "user.create"]  # newest first
    family = knm("audit", "list", "--action", "user", "--page-size", "100", "--json").json()
    assert family["entries"] and all(e["action"].startswith("user.") for e in family["entries"])
    by_admin = knm("audit", "list", "--user", "admin", "--action", "user.create", "--json").json()
    assert "hank" in {e["target"] for e in by_admin["entries"]}
    assert all(e["username"] == "admin" for e in by_admin["entries"])
    today = datetime.now(UTC).date()
    window = knm("audit", "list", "--target", "hank", "--since", str(today), "--until", str(today),
                 "--json")  # fmt: skip
    assert window.json()["total"] == 2
    later = str(today + timedelta(days=1))
    assert knm("audit", "list", "--target", "hank", "--since", later, "--json").json()["total"] == 0
    table = knm("audit", "list", "--target", "hank")
    assert "user.create" in table.out and "2 of 2" in table.err
    backwards = knm("audit", "list", "--since", str(today), "--until", "2001-01-01", "--json")
    assert backwards.code == 4 and backwards.json()["code"] == 400
    assert knm("audit", "list", "--since", "yesterday").code == 2
    assert PASSWORD not in knm("audit", "list", "--page-size", "100", "--json").out
