"""``knm notification`` against a real server and real receivers on loopback (an HTTP server
that checks signatures, an SMTP server): subscriptions made with their secret from a file,
stdin or the environment, listed, shown, edited, tested, their deliveries listed and one
redelivered; bad input refused naming the option, and the secret never in argv or output."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knm.cli.remote.notifications import fields_of
from knm.cli.remote.session import in_options
from knm.testing.plugin import TEST_EXECUTOR
from knm.testing.receivers import SmtpReceiver, WebhookReceiver

from .conftest import Knm

SECRET = "cli-webhook-secret-4f1a"


@pytest.fixture(scope="module")
def knm_server_env() -> dict[str, str]:
    # Retries come quickly and give up after two attempts, so a dead delivery is seconds away.
    return {
        "KNM_PLUGINS": TEST_EXECUTOR,
        "KNM_NOTIFY_POLL": "0.2",
        "KNM_NOTIFY_BACKOFF_BASE": "0.1",
        "KNM_NOTIFY_BACKOFF_CAP": "0.2",
        "KNM_NOTIFY_MAX_ATTEMPTS": "2",
    }


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    return str(path)


def test_a_webhook_subscription_is_made_tested_listed_edited_and_deleted(
    knm: Knm, receiver: WebhookReceiver, secret_file: str
) -> None:
    made = knm("notification", "create", "cli-hook", "--event", "task.failed",
               "--event", "node.failed", "--webhook-url", receiver.url,
               "--secret-file", secret_file, "--kind", "test", "--json")  # fmt: skip
    assert made.code == 0, made.err
    subscription = made.json()
    assert subscription["has_secret"] is True and subscription["events"] == [
        "task.failed",
        "node.failed",
    ]
    assert subscription["target"] == {"url": receiver.url} and subscription["kinds"] == ["test"]
    listed = knm("notification", "list")
    assert listed.code == 0 and "cli-hook" in listed.out and "webhook" in listed.out
    names = knm("notification", "list", "-o", "name").out.splitlines()
    assert f"subscription/{subscription['id']}" in names
    shown = knm("notification", "show", f"subscription/{subscription['id']}", "-o", "yaml")
    assert shown.code == 0 and "has_secret: true" in shown.out
    for said in (made, listed, shown, knm("notification", "list", "-o", "wide")):
        assert SECRET not in said.out + said.err

    tested = knm("notification", "test", "cli-hook", "--wait")
    assert tested.code == 0, tested.out + tested.err
    assert "delivered, answered 200" in tested.out
    seen = receiver.snapshot()
    assert len(seen) == 1 and seen[0].signature_ok is True
    assert seen[0].headers["x-knm-event"] == "notification.test"

    table = knm("notification", "deliveries", "cli-hook", "--state", "delivered")
    assert table.code == 0 and "notification.test" in table.out and "delivered" in table.out
    found = knm("notification", "deliveries", "cli-hook", "-o", "json").json()
    assert found["total"] == 1
    delivery = found["deliveries"][0]
    assert delivery["idempotency_key"] == seen[0].headers["idempotency-key"]
    assert knm("notification", "deliveries", "cli-hook", "--state", "dead", "--json").json() == {
        "total": 0,
        "deliveries": [],
    }
    one = knm("notification", "delivery", str(delivery["id"]))
    assert one.code == 0 and "STATUS CODE" in one.out and "200" in one.out

    edited = knm("notification", "edit", "cli-hook", "--disable", "--any-kind",
                 "--status", "failed", "--json")  # fmt: skip
    assert edited.code == 0, edited.err
    changed = edited.json()
    assert (
        changed["enabled"] is False and changed["kinds"] == [] and changed["statuses"] == ["failed"]
    )
    # A new URL alone keeps the stored secret; --no-secret removes it.
    moved = knm("notification", "edit", "cli-hook", "--webhook-url", receiver.url + "2", "--json")
    assert moved.json()["has_secret"] is True and moved.json()["target"]["url"].endswith("hook2")
    bare = knm("notification", "edit", "cli-hook", "--no-secret", "--json").json()
    assert bare["has_secret"] is False and bare["target"]["url"].endswith("hook2")

    deleted = knm("notification", "delete", "cli-hook", "-y")
    assert deleted.code == 0 and deleted.out.startswith("deleted subscription")
    assert knm("notification", "show", "cli-hook").code == 4


def test_a_dead_delivery_is_redelivered(knm: Knm, secret_file: str) -> None:
    with WebhookReceiver(secret=SECRET, plan=[503, 503], then=200) as flaky:
        made = knm("notification", "create", "cli-flaky", "--event", "task.failed",
                   "--webhook-url", flaky.url, "--secret-file", secret_file)  # fmt: skip
        assert made.code == 0, made.err
        dead = knm("notification", "test", "cli-flaky", "--wait", "--json")
        assert dead.code == 1 and dead.json()["state"] == "dead"
        delivery_id = dead.json()["id"]
        listed = knm("notification", "deliveries", "cli-flaky", "--state", "dead", "-o", "name")
        assert listed.out.splitlines() == [f"delivery/{delivery_id}"]
        again = knm("notification", "redeliver", f"delivery/{delivery_id}", "--wait")
        assert again.code == 0, again.out + again.err
        assert again.out.startswith(f"delivery {delivery_id} (notification.test) delivered")
        keys = {seen.headers["idempotency-key"] for seen in flaky.snapshot()}
        assert len(keys) == 1 and len(flaky.snapshot()) == 3
    knm("notification", "delete", "cli-flaky", "-y")


def test_an_email_subscription_takes_its_password_from_stdin(knm: Knm) -> None:
    password = "smtp-pw-9d2c"
    with SmtpReceiver("knm-mailer", password) as smtp:
        made = knm("notification", "create", "cli-mail", "--type", "email",
                   "--event", "task.failed", "--host", "127.0.0.1", "--port", str(smtp.port),
                   "--security", "none", "--username", "knm-mailer",
                   "--from-addr", "knm@example.com", "--to", "ops@example.com",
                   "--secret-file", "-", "--json", stdin=password + "\n")  # fmt: skip
        assert made.code == 0, made.err
        assert password not in made.out and made.json()["has_secret"] is True
        assert made.json()["target"]["to"] == ["ops@example.com"]
        tested = knm("notification", "test", "cli-mail", "--wait")
        assert tested.code == 0, tested.out + tested.err
        end = time.monotonic() + 30
        while not smtp.mails:
            assert time.monotonic() < end
            time.sleep(0.1)
        assert smtp.logins == ["knm-mailer"] and smtp.mails[0]["To"] == "ops@example.com"
        # Another recipient keeps the host, the sender and the stored password.
        edited = knm("notification", "edit", "cli-mail", "--to", "oncall@example.com", "--json")
        assert edited.code == 0, edited.err
        target = edited.json()["target"]
        assert target["to"] == ["oncall@example.com"] and target["host"] == "127.0.0.1"
        assert edited.json()["has_secret"] is True
    knm("notification", "delete", "cli-mail", "-y")


def test_a_slack_url_comes_from_the_environment_and_is_never_shown(
    knm: Knm, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack_url = "https://hooks.slack.example.com/services/T000/B000/s3cr3tpath"
    monkeypatch.setenv("KNM_TEST_SLACK_URL", slack_url)
    made = knm("notification", "create", "cli-slack", "--type", "slack",
               "--event", "approval.requested", "--secret-env", "KNM_TEST_SLACK_URL")  # fmt: skip
    assert made.code == 0, made.err
    for shown in (
        made,
        knm("notification", "show", "cli-slack", "-o", "json"),
        knm("notification", "show", "cli-slack"),
        knm("notification", "list", "-o", "wide"),
        knm("notification", "list", "-o", "yaml"),
    ):
        assert shown.code == 0 and "s3cr3tpath" not in shown.out + shown.err
    in_argv = knm("notification", "create", "cli-slack2", "--type", "slack",
                  "--event", "task.failed", "--webhook-url", slack_url)  # fmt: skip
    assert in_argv.code == 2 and "--webhook-url" in in_argv.err and "--secret-" in in_argv.err
    assert "s3cr3tpath" not in in_argv.out + in_argv.err
    no_url = knm(
        "notification", "create", "cli-slack2", "--type", "slack", "--event", "task.failed"
    )
    assert no_url.code == 2 and "--secret-file or --secret-env" in no_url.err
    # There is no option that takes a secret in argv.
    assert knm("notification", "create", "x", "--event", "task.failed", "--secret", "s").code == 2
    knm("notification", "delete", "cli-slack", "-y")


def test_bad_input_is_refused_naming_the_option(knm: Knm, tmp_path: Path) -> None:
    unknown = knm("notification", "create", "cli-bad", "--event", "task.exploded",
                  "--webhook-url", "http://127.0.0.1:9/hook")  # fmt: skip
    assert unknown.code == 2 and "--event" in unknown.err and "'task.failed'" in unknown.err
    no_event = knm("notification", "create", "cli-bad", "--webhook-url", "http://127.0.0.1:9/")
    assert no_event.code == 2 and "--event" in no_event.err
    no_url = knm("notification", "create", "cli-bad", "--event", "task.failed")
    assert no_url.code == 2 and "--webhook-url" in no_url.err
    mail = knm("notification", "create", "cli-bad", "--type", "email", "--event", "task.failed",
               "--host", "127.0.0.1", "--to", "ops@example.com")  # fmt: skip
    assert mail.code == 2 and "--from-addr" in mail.err
    stray = knm("notification", "create", "cli-bad", "--event", "task.failed",
                "--webhook-url", "http://127.0.0.1:9/", "--host", "mail")  # fmt: skip
    assert stray.code == 2 and "--host" in stray.err
    unset = knm("notification", "create", "cli-bad", "--event", "task.failed",
                "--webhook-url", "http://127.0.0.1:9/", "--secret-env", "KNM_NO_SUCH_VAR")  # fmt: skip
    assert unset.code == 2 and "--secret-env" in unset.err and "KNM_NO_SUCH_VAR" in unset.err
    two = knm("notification", "create", "cli-bad", "--event", "task.failed",
              "--webhook-url", "http://127.0.0.1:9/", "--secret-file", "-",
              "--secret-env", "HOME")  # fmt: skip
    assert two.code == 2 and "--secret-env: not allowed with argument --secret-file" in two.err
    empty = tmp_path / "empty"
    empty.write_text("\n")
    blank = knm("notification", "create", "cli-bad", "--event", "task.failed",
                "--webhook-url", "http://127.0.0.1:9/", "--secret-file", str(empty))  # fmt: skip
    assert blank.code == 2 and "is empty" in blank.err
    missing = knm("notification", "create", "cli-bad", "--event", "task.failed",
                  "--webhook-url", "http://127.0.0.1:9/", "--secret-file", str(tmp_path / "no"))  # fmt: skip
    assert missing.code == 2 and "No such file" in missing.err
    # What only the server knows comes back in the options' words.
    scheme = knm("notification", "create", "cli-bad", "--event", "task.failed",
                 "--webhook-url", "ftp://127.0.0.1/hook")  # fmt: skip
    assert scheme.code == 4 and "--webhook-url must be an http://" in scheme.err
    kind = knm("notification", "create", "cli-bad", "--event", "task.failed",
               "--webhook-url", "http://127.0.0.1:9/", "--kind", "nonsense")  # fmt: skip
    assert kind.code == 4 and "--kind: unknown value 'nonsense'" in kind.err
    assert knm("notification", "list", "-o", "name").out.count("cli-bad") == 0
    made = knm("notification", "create", "cli-edit", "--event", "task.failed",
               "--webhook-url", "http://127.0.0.1:9/")  # fmt: skip
    assert made.code == 0, made.err
    nothing = knm("notification", "edit", "cli-edit")
    assert nothing.code == 2 and "nothing to change" in nothing.err
    both = knm("notification", "edit", "cli-edit", "--kind", "test", "--any-kind")
    assert both.code == 2 and "--any-kind" in both.err
    assert knm("notification", "deliveries", "cli-edit", "--state", "lost").code == 2
    assert knm("notification", "delivery", "abc").code == 2
    knm("notification", "delete", "cli-edit", "-y")


def test_events_lists_the_names_a_subscription_may_use(knm: Knm) -> None:
    listed = knm("notification", "events")
    assert listed.code == 0
    assert "task.failed" in listed.out.splitlines() and "notification.test" not in listed.out
    assert "schedule.misfired" in knm("notification", "events", "--json").json()["events"]


def test_server_fields_are_named_as_the_options_that_set_them() -> None:
    def named(text: str, target_type: str) -> str:
        return in_options(text, argparse.Namespace(type=target_type), fields_of(target_type))

    text = "events: unknown event 'x'; valid events: task.failed"
    assert named(text, "webhook") == "--event: unknown event 'x'; valid events: task.failed"
    assert named("target.to entries must be a plain e-mail", "email").startswith("--to must")
    assert named("target.url: required for a slack target", "slack").startswith(
        "--secret-file or --secret-env: required"
    )
    assert named("target.url: required", "webhook") == "--webhook-url: required"
    assert named("name: too long", "webhook") == "name: too long"


def asked(knm: Knm, *words: str) -> list[str]:
    """What ``knm __complete`` prints for the last of ``knm words...``."""
    result = knm("__complete", str(len(words)), "knm", *words)
    assert result.code == 0 and result.err == ""
    return result.out.splitlines()


def test_the_commands_events_and_subscription_names_complete(knm: Knm) -> None:
    assert {"list", "create", "test", "deliveries", "redeliver", "events"} <= set(
        asked(knm, "notification", "")
    )
    assert asked(knm, "notific") == ["notification"]
    assert asked(knm, "notification", "create", "x", "--event", "task.f") == ["task.failed"]
    assert asked(knm, "notification", "deliveries", "x", "--state", "d") == [
        "delivered",
        "dead",
    ]
    made = knm("notification", "create", "cli-complete-me", "--event", "task.failed",
               "--webhook-url", "http://127.0.0.1:9/")  # fmt: skip
    assert made.code == 0, made.err
    assert asked(knm, "notification", "show", "cli-complete") == ["cli-complete-me"]
    assert asked(knm, "notification", "test", "cli-complete") == ["cli-complete-me"]
    knm("notification", "delete", "cli-complete-me", "-y")
