"""The console's admin pages in a real browser against a real ``knm serve``: users, API tokens
(shown once), credentials (write-only secrets), schedules, notifications and the audit log, each
to the roles the API lets use them.

Each test saves a screenshot of the pages it visits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.receivers import SmtpReceiver, WebhookReceiver

from .conftest import WAIT, Console, api, login_token

pytestmark = pytest.mark.slow

VIEWER = ("looker", "looker-passw0rd")
OPERATOR = ("doer", "doer-passw0rd")
SCHEDULE = "nightly-echo"
HOOK_SECRET = "hook-secret-typed-in-the-browser-7731"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    """``knm serve`` delivering notifications quickly, with a viewer, an operator, a static
    cluster whose one node is never reached (only a yearly schedule names it) and that
    schedule, owned by the admin."""
    env = {
        "KNM_NOTIFY_POLL": "0.2",
        "KNM_NOTIFY_BACKOFF_BASE": "0.1",
        "KNM_NOTIFY_BACKOFF_CAP": "0.2",
    }
    proc = KnmProcess(tmp_path_factory.mktemp("console-admin"), knm_database_url, ["serve"], env)
    proc.start()
    try:
        with api(proc, login_token(proc, "admin", TEST_ADMIN_PASSWORD)) as admin:
            for name, password, role in ((*VIEWER, "viewer"), (*OPERATOR, "operator")):
                made = admin.post(
                    "/users", json={"username": name, "password": password, "role": role}
                )
                assert made.status_code == 201, made.text
            credential = admin.post(
                "/credentials",
                json={
                    "name": "lab-login",
                    "username": "nobody",
                    "auth_type": "password",
                    "password": "never-used-1",
                },
            )
            assert credential.status_code == 201, credential.text
            cluster = admin.post(
                "/clusters",
                json={
                    "name": "lab",
                    "kind": "static",
                    "nodes": [{"name": "n1", "address": "127.0.0.1", "port": 9}],
                    "default_credential_id": credential.json()["data"]["id"],
                },
            )
            assert cluster.status_code == 201, cluster.text
            schedule = admin.post(
                "/schedules",
                json={
                    "name": SCHEDULE,
                    "kind": "ssh",
                    "request": {
                        "cluster_name": "lab",
                        "target_nodes": ["n1"],
                        "command": "echo hi",
                    },
                    "cron": "0 3 1 1 *",
                },
            )
            assert schedule.status_code == 201, schedule.text
        yield proc
    finally:
        proc.stop()


def _eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    end = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def _named(items: list[dict[str, Any]], name: str, key: str = "name") -> dict[str, Any]:
    return next(item for item in items if item[key] == name)


def _text(console: Console, css: str) -> str:
    """The text of ``css`` now ("" while it is absent): read in the page, so a list drawn again
    between finding and reading does not matter."""
    return console.driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css
    )


def _click(console: Console, css: str, times: int = 1) -> None:
    """Clicks ``css`` ``times`` times in a row (a second click confirms what cannot be undone),
    found afresh in the page: a list drawn again meanwhile does not matter."""
    script = "const e = document.querySelector(arguments[0]); if (!e) return false;"
    script += " for (let i = 0; i < arguments[1]; i++) e.click(); return true;"
    console.wait(lambda d: d.execute_script(script, css, times))


def _everything_the_page_holds(console: Console) -> str:
    """The DOM as markup, every field's current value and both storages: where a secret could
    still be after it was sent."""
    return console.driver.execute_script(
        """
        const values = [...document.querySelectorAll("input, textarea, select")].map((e) => e.value);
        const stored = [];
        for (const store of [sessionStorage, localStorage]) {
          for (let i = 0; i < store.length; i++) stored.push(store.key(i), store.getItem(store.key(i)));
        }
        return [document.documentElement.outerHTML, ...values, ...stored].join("\\n");
        """
    )


@pytest.mark.timeout(240)
def test_an_admin_creates_a_user_who_then_logs_in_with_that_role(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.find("#nav-admin").click()
    console.find("#admin-users #users")
    console.find("#user-username").send_keys("newcomer")
    console.find("#user-password").send_keys("newcomer-pass1")
    console.choose("#user-role", "operator")
    console.find("#user-create").click()
    console.wait(lambda d: "newcomer (operator) created" in _text(console, "#user-created"))
    console.wait(
        lambda d: _text(console, "#users tr[data-user='newcomer'] .user-state") == "active"
    )
    # The password typed is nowhere on the page once sent.
    assert "newcomer-pass1" not in _everything_the_page_holds(console)
    console.shot("admin-users")
    users = admin.get("/users", params={"page_size": 100}).json()["data"]["users"]
    assert _named(users, "newcomer", "username")["role"] == "operator"

    console.login("newcomer", "newcomer-pass1")
    assert _text(console, "#whoami") == "newcomer (operator)"
    console.find("#nav-admin").click()
    console.find("#admin-tokens")
    sections = [a.get_attribute("id") for a in console.all("#admin-nav a")]
    assert sections == [
        "admin-nav-tokens",
        "admin-nav-credentials",
        "admin-nav-schedules",
        "admin-nav-notifications",
    ]
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_an_admin_changes_a_role_and_disables_a_user_and_the_api_agrees(
    console: Console, admin: httpx.Client
) -> None:
    made = admin.post(
        "/users", json={"username": "shifter", "password": "shifter-pass1", "role": "viewer"}
    )
    assert made.status_code == 201, made.text
    user_id = made.json()["data"]["id"]
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/admin/users")
    row = "#users tr[data-user='shifter']"
    console.choose(f"{row} select.user-role", "operator")
    _eventually(lambda: admin.get(f"/users/{user_id}").json()["data"]["role"] == "operator")
    _click(console, f"{row} button.user-disable")
    console.wait(lambda d: _text(console, f"{row} .user-state") == "disabled")
    assert admin.get(f"/users/{user_id}").json()["data"]["disabled"] is True
    refused = httpx.post(
        f"{console.server.api}/auth/login",
        json={"username": "shifter", "password": "shifter-pass1"},
    )
    assert refused.status_code == 401
    _click(console, f"{row} button.user-enable")
    console.wait(lambda d: _text(console, f"{row} .user-state") == "active")
    assert admin.get(f"/users/{user_id}").json()["data"]["disabled"] is False
    # The last admin cannot be demoted: the server's refusal shows in the row, the role stays.
    console.choose("#users tr[data-user='admin'] select.user-role", "viewer")
    problem = console.find("#users tr[data-user='admin'] .row-error .problem")
    assert "409" in problem.text and "last active admin" in problem.text
    assert admin.get("/auth/me").json()["data"]["role"] == "admin"
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_bad_input_shows_the_servers_error_at_its_field(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/admin/users")
    console.find("#user-username").send_keys(VIEWER[0])
    console.find("#user-password").send_keys("whatever-pass1")
    console.find("#user-create").click()
    at_name = console.find("#user-form .field-error[data-for='username'] .problem")
    assert "409" in at_name.text and "already exists" in at_name.text
    assert console.find("#user-username").get_attribute("aria-invalid") == "true"
    # The password is emptied once sent, refused or not.
    assert "whatever-pass1" not in _everything_the_page_holds(console)
    console.shot("admin-users-duplicate")
    # The name made unique, the password left empty: now the password is what is wrong.
    console.find("#user-username").send_keys("-two")
    console.find("#user-create").click()
    at_password = console.find("#user-form .field-error[data-for='password'] .problem")
    assert "422" in at_password.text and "at least 8 characters" in at_password.text
    assert console.all("#user-form .field-error[data-for='username'] .problem") == []
    console.shot("admin-users-empty-password")
    users = admin.get("/users", params={"page_size": 100}).json()["data"]["users"]
    assert f"{VIEWER[0]}-two" not in [u["username"] for u in users]
    # A credential without its secret: the server's 400 names the field, shown there.
    console.open("#/admin/credentials")
    console.find("#credential-new").click()
    console.find("#cred-name").send_keys("no-secret")
    console.find("#cred-username").send_keys("root")
    console.find("#cred-submit").click()
    at_secret = console.find("#credential-form .field-error[data-for='password'] .problem")
    assert "400" in at_secret.text and "password" in at_secret.text
    # The password typed is emptied once sent, so it is typed again.
    console.find("#cred-password").send_keys("now-given-1")
    console.find("#cred-port").clear()
    console.find("#cred-port").send_keys("twenty-two")
    console.find("#cred-submit").click()
    at_port = console.find("#credential-form .field-error[data-for='port'] .problem")
    assert "400" in at_port.text and "port: Expected `int`" in at_port.text
    assert "now-given-1" not in _everything_the_page_holds(console)
    # A port that is no number, a token without a name, a webhook without a URL or events.
    console.open("#/admin/tokens")
    console.find("#token-create").click()
    at_token = console.find("#token-form .field-error[data-for='name'] .problem")
    assert "name: Expected `str` of length >= 1" in at_token.text
    console.open("#/admin/notifications")
    console.find("#hook-name").send_keys("no-url")
    console.find("#hook-secret").send_keys("refused-hook-secret")
    console.find("#hook-create").click()
    at_url = console.find("#hook-form .field-error[data-for='target.url'] .problem")
    assert "422" in at_url.text and "must be an http:// or https:// URL" in at_url.text
    assert "refused-hook-secret" not in _everything_the_page_holds(console)
    console.find("#hook-url").send_keys("http://127.0.0.1:9/x")
    console.find("#hook-events input[value='task.failed']").click()
    console.find("#hook-create").click()
    at_events = console.find("#hook-form .field-error[data-for='events'] .problem")
    assert "events: Expected `array` of length >= 1" in at_events.text
    assert console.all("#hook-form .field-error[data-for='target.url'] .problem") == []
    console.shot("admin-notifications-error")
    # Nothing refused was made.
    credentials = admin.get("/credentials", params={"page_size": 100}).json()["data"]
    assert "no-secret" not in [c["name"] for c in credentials["credentials"]]
    tokens = admin.get("/tokens", params={"page_size": 100}).json()["data"]["tokens"]
    assert "" not in [t["name"] for t in tokens]
    subscriptions = admin.get("/notifications/subscriptions").json()["data"]["subscriptions"]
    assert "no-url" not in [s["name"] for s in subscriptions]
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_new_token_is_shown_once_works_and_is_revoked(console: Console) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/admin/tokens")
    console.find("#token-name").send_keys("ci-reader")
    console.choose("#token-role", "viewer")
    console.find("#token-create").click()
    token = console.wait(lambda d: console.find("#token-value").get_attribute("value"))
    assert token.startswith("knm_")
    assert "you will not see it again" in _text(console, "#token-warning")
    assert console.find("#token-value").get_attribute("readonly") is not None
    console.find("#tokens tr[data-token='ci-reader']")
    console.shot("admin-tokens-created")
    with api(console.server, token) as client:
        me = client.get("/auth/me")
        assert me.status_code == 200 and me.json()["data"]["username"] == "admin"
    stored = console.driver.execute_script(
        "return JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])"
    )
    assert token not in stored

    console.driver.refresh()
    console.find("#tokens tr[data-token='ci-reader']")
    assert console.all("#token-value") == []
    assert token not in _everything_the_page_holds(console)
    console.shot("admin-tokens")

    revoke = "#tokens tr[data-token='ci-reader'] .token-revoke"
    _click(console, revoke, times=2)  # the second click confirms
    console.wait(
        lambda d: _text(console, "#tokens tr[data-token='ci-reader'] .token-state") == "revoked"
    )
    with api(console.server, token) as client:
        assert client.get("/auth/me").status_code == 401
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_credentials_secret_typed_in_the_form_is_kept_by_the_server_and_never_shown(
    console: Console, admin: httpx.Client
) -> None:
    secret = "typed-in-the-browser-s3cret-5521"
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/admin/credentials")
    console.find("#credential-new").click()
    console.find("#cred-name").send_keys("browser-made")
    console.find("#cred-username").send_keys("deploy")
    console.find("#cred-password").send_keys(secret)
    console.find("#cred-allowed_clusters").send_keys("lab")
    console.find("#cred-submit").click()
    console.find("#credential-saved")
    has_password = "#credentials tr[data-credential='browser-made'] .has-password"
    console.wait(lambda d: _text(console, has_password) == "yes")
    assert secret not in _everything_the_page_holds(console)
    console.shot("admin-credentials")

    listed = admin.get("/credentials", params={"page_size": 100})
    made = _named(listed.json()["data"]["credentials"], "browser-made")
    one = admin.get(f"/credentials/{made['id']}")
    assert made["has_password"] is True and made["allowed_clusters"] == ["lab"]
    for answer in (listed, one):
        assert secret not in answer.text and "password" not in answer.json()["data"]

    # Editing shows every field but the secrets; a change without one keeps the stored one.
    _click(console, "#credentials tr[data-credential='browser-made'] .credential-edit")
    assert console.find("#cred-name").get_attribute("value") == "browser-made"
    assert console.find("#cred-password").get_attribute("value") == ""
    assert "stored" in console.find("#cred-password").get_attribute("placeholder")
    console.find("#cred-description").send_keys("made in the console")
    console.shot("admin-credentials-edit")
    console.find("#cred-submit").click()
    console.find("#credential-saved")
    changed = admin.get(f"/credentials/{made['id']}").json()["data"]
    assert changed["description"] == "made in the console" and changed["has_password"] is True
    # Only what changed was sent: the audit entry names that one field.
    audited = admin.get("/audit", params={"action": "credential.update", "target": "browser-made"})
    assert [e["detail"]["fields"] for e in audited.json()["data"]["entries"]] == [["description"]]
    assert secret not in _everything_the_page_holds(console)

    delete = "#credentials tr[data-credential='browser-made'] .credential-delete"
    _click(console, delete, times=2)  # the second click confirms
    console.wait(lambda d: not console.all("#credentials tr[data-credential='browser-made']"))
    assert admin.get(f"/credentials/{made['id']}").status_code == 404
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_pausing_a_schedule_shows_in_the_api_and_its_next_fires_go(
    console: Console, admin: httpx.Client
) -> None:
    schedule = _named(admin.get("/schedules").json()["data"]["schedules"], SCHEDULE)
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/admin/schedules")
    row = f"#schedules tr[data-schedule='{SCHEDULE}']"
    _click(console, f"{row} .schedule-show")
    console.wait(lambda d: len(console.all("#schedule-next li")) == 5)
    assert "No runs yet" in _text(console, "#schedule-runs-empty")
    console.shot("admin-schedules")
    _click(console, f"{row} .schedule-pause")
    console.wait(lambda d: _text(console, f"{row} .schedule-state") == "paused")
    shown = admin.get(f"/schedules/{schedule['id']}").json()["data"]
    assert shown["enabled"] is False and shown["next_fire_times"] == []
    console.wait(lambda d: "None while paused" in _text(console, "#schedule-next"))
    console.shot("admin-schedules-paused")
    _click(console, f"{row} .schedule-resume")
    console.wait(lambda d: _text(console, f"{row} .schedule-state") == "active")
    assert admin.get(f"/schedules/{schedule['id']}").json()["data"]["enabled"] is True
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_schedules_runs_show_the_tasks_it_started_until_it_is_paused(
    console: Console, admin: httpx.Client
) -> None:
    # Every two seconds, at a node nothing listens on (each task fails at once, harmlessly).
    made = admin.post(
        "/schedules",
        json={
            "name": "every-two-seconds",
            "kind": "ssh",
            "request": {"cluster_name": "lab", "target_nodes": ["n1"], "command": "echo tick"},
            "interval_seconds": 2,
        },
    )
    assert made.status_code == 201, made.text
    schedule_id = made.json()["data"]["id"]
    try:
        console.login("admin", TEST_ADMIN_PASSWORD)
        console.open("#/admin/schedules")
        row = "#schedules tr[data-schedule='every-two-seconds']"
        _click(console, f"{row} .schedule-show")
        # The open schedule's runs are read again as it fires.
        link = console.find("#schedule-runs tbody tr a[href^='#/tasks/ssh-exec-']")
        task_id = link.text
        runs = admin.get(f"/schedules/{schedule_id}/runs").json()["data"]["runs"]
        assert task_id in [r["task_id"] for r in runs]
        assert "started" in _text(console, "#schedule-runs tbody")
        console.shot("admin-schedules-runs")
        _click(console, f"{row} .schedule-pause")
        console.wait(lambda d: _text(console, f"{row} .schedule-state") == "paused")
        assert admin.get(f"/schedules/{schedule_id}").json()["data"]["enabled"] is False
        # Paused, it starts nothing more.
        fired = admin.get(f"/schedules/{schedule_id}/runs").json()["data"]["total"]
        time.sleep(5)
        assert admin.get(f"/schedules/{schedule_id}/runs").json()["data"]["total"] == fired
        assert console.severe_logs() == []
    finally:
        admin.post(f"/schedules/{schedule_id}/pause")


@pytest.mark.timeout(240)
def test_a_webhooks_test_delivery_arrives_signed_and_shows_in_its_deliveries(
    console: Console, admin: httpx.Client
) -> None:
    with WebhookReceiver(secret=HOOK_SECRET) as receiver:
        console.login("admin", TEST_ADMIN_PASSWORD)
        console.open("#/admin/notifications")
        console.find("#hook-name").send_keys("browser-hook")
        console.find("#hook-url").send_keys(receiver.url)
        console.find("#hook-secret").send_keys(HOOK_SECRET)
        # Not task.failed (checked at first): another test's schedule fails tasks.
        console.find("#hook-events input[value='task.failed']").click()
        console.find("#hook-events input[value='approval.requested']").click()
        console.find("#hook-create").click()
        console.wait(lambda d: "browser-hook created" in _text(console, "#hook-created"))
        assert HOOK_SECRET not in _everything_the_page_holds(console)
        listed = admin.get("/notifications/subscriptions")
        made = _named(listed.json()["data"]["subscriptions"], "browser-hook")
        assert made["has_secret"] is True and made["events"] == ["approval.requested"]
        one = admin.get(f"/notifications/subscriptions/{made['id']}")
        for answer in (listed, one):
            assert HOOK_SECRET not in answer.text

        row = "#subscriptions tr[data-subscription='browser-hook']"
        _click(console, f"{row} .subscription-test")
        delivered = "#deliveries-table tr[data-event='notification.test'][data-state='delivered']"
        console.find(delivered)
        got = _eventually(receiver.snapshot)
        # The secret typed in the form is the one the server signs with.
        assert got[0].signature_ok is True and got[0].json()["event"] == "notification.test"
        console.shot("admin-notifications")

        _click(console, f"{delivered} .delivery-redeliver")
        _eventually(lambda: len(receiver.snapshot()) == 2)
        console.find(delivered)
        deliveries = admin.get(f"/notifications/subscriptions/{made['id']}/deliveries")
        assert [d["state"] for d in deliveries.json()["data"]["deliveries"]] == ["delivered"]
    assert console.severe_logs() == []


SMTP_PASSWORD = "smtp-password-typed-in-the-browser-52"
SLACK_URL = "https://hooks.slack.example/services/T000/B000/typed-in-the-browser-9f"


@pytest.mark.timeout(240)
def test_a_mailbox_subscription_made_in_the_form_mails_its_test_and_a_slack_url_stays_unseen(
    console: Console, admin: httpx.Client
) -> None:
    with SmtpReceiver(username="knm", password=SMTP_PASSWORD) as smtp:
        console.login("admin", TEST_ADMIN_PASSWORD)
        console.open("#/admin/notifications")
        console.find("#hook-name").send_keys("browser-mail")
        console.choose("#hook-type", "email")
        assert console.all("#hook-url") == []  # only the chosen type's fields are in the form
        console.find("#hook-host").send_keys("127.0.0.1")
        console.find("#hook-port").clear()
        console.find("#hook-port").send_keys(str(smtp.port))
        console.choose("#hook-security", "none")
        console.find("#hook-username").send_keys("knm")
        console.find("#hook-password").send_keys(SMTP_PASSWORD)
        console.find("#hook-from").send_keys("knm@example.com")
        console.find("#hook-to").send_keys("ops@example.com, oncall@example.com")
        console.find("#hook-events input[value='task.failed']").click()
        console.find("#hook-events input[value='approval.requested']").click()
        console.shot("admin-notifications-email")
        console.find("#hook-create").click()
        console.wait(lambda d: "browser-mail created" in _text(console, "#hook-created"))
        assert SMTP_PASSWORD not in _everything_the_page_holds(console)
        made = _named(
            admin.get("/notifications/subscriptions").json()["data"]["subscriptions"],
            "browser-mail",
        )
        assert made["target_type"] == "email" and made["has_secret"] is True
        assert made["target"]["to"] == ["ops@example.com", "oncall@example.com"]
        assert made["target"]["port"] == smtp.port

        _click(console, "#subscriptions tr[data-subscription='browser-mail'] .subscription-test")
        _eventually(lambda: smtp.mails)
        # The password typed in the form is the one the server logs in with.
        assert (
            smtp.logins == ["knm"] and smtp.mails[0]["To"] == "ops@example.com, oncall@example.com"
        )

    # A Slack target's URL is its credential: a password field, never shown back.
    console.find("#hook-name").send_keys("browser-slack")
    console.choose("#hook-type", "slack")
    assert console.find("#hook-slack-url").get_attribute("type") == "password"
    console.find("#hook-slack-url").send_keys(SLACK_URL)
    console.find("#hook-events input[value='task.failed']").click()
    console.find("#hook-events input[value='approval.requested']").click()
    console.find("#hook-create").click()
    console.wait(lambda d: "browser-slack created" in _text(console, "#hook-created"))
    assert SLACK_URL not in _everything_the_page_holds(console)
    listed = admin.get("/notifications/subscriptions")
    assert _named(listed.json()["data"]["subscriptions"], "browser-slack")["has_secret"] is True
    assert SLACK_URL not in listed.text

    # A port that is not a number is the server's refusal at the port's field.
    console.find("#hook-name").send_keys("browser-bad-port")
    console.choose("#hook-type", "email")
    console.find("#hook-host").send_keys("127.0.0.1")
    console.find("#hook-port").clear()
    console.find("#hook-port").send_keys("smtp")
    console.find("#hook-from").send_keys("knm@example.com")
    console.find("#hook-to").send_keys("ops@example.com")
    console.find("#hook-create").click()
    console.find("#hook-form .field-error[data-for='target.port'] .problem")
    names = [
        s["name"] for s in admin.get("/notifications/subscriptions").json()["data"]["subscriptions"]
    ]
    assert "browser-bad-port" not in names
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_the_audit_log_shows_a_user_creation_with_its_filters_and_pages(
    console: Console, admin: httpx.Client
) -> None:
    made = admin.post(
        "/users", json={"username": "audited", "password": "audited-pass1", "role": "viewer"}
    )
    assert made.status_code == 201, made.text
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.find("#nav-admin").click()
    console.find("#admin-nav-audit").click()
    console.find("#audit tr[data-action='user.create'][data-target='audited']")
    console.shot("admin-audit")
    console.find("#audit-action").send_keys("user")
    console.find("#audit-target").send_keys("audited")
    console.find("#audit-apply").click()
    console.wait(lambda d: "action=user&target=audited" in d.current_url)
    console.wait(lambda d: len(console.all("#audit tbody tr")) == 1)
    assert "admin" in console.find("#audit tr[data-action='user.create'] td:nth-child(2)").text
    assert "(1 entries)" in _text(console, "#audit-pager-info")
    # Pages of five: the first and the next hold different entries.
    console.open("#/admin/audit?page_size=5")
    total = admin.get("/audit").json()["data"]["total"]
    console.wait(lambda d: f"({total} entries)" in _text(console, "#audit-pager-info"))
    first = [tr.text for tr in console.all("#audit tbody tr")]
    assert len(first) == 5 and console.find("#audit-page_size").get_attribute("value") == "5"
    console.find("#audit-pager-next").click()
    console.wait(lambda d: "page 2 of" in _text(console, "#audit-pager-info"))
    assert [tr.text for tr in console.all("#audit tbody tr")] != first
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_viewer_sees_no_admin_link_and_the_admin_url_is_not_found(console: Console) -> None:
    console.login(*VIEWER)
    console.find("#nav-history")
    assert console.all("#nav-admin") == []
    for fragment in ("#/admin", "#/admin/users", "#/admin/tokens"):
        console.open(fragment)
        console.wait(lambda d: _text(console, "main h1") == "Not found")
    console.shot("admin-viewer-not-found")
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_an_operator_sees_only_what_the_api_lets_an_operator_do(
    console: Console, admin: httpx.Client
) -> None:
    hook = {"name": "admins-hook", "events": ["task.failed"]}
    hook["target"] = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    assert admin.post("/notifications/subscriptions", json=hook).status_code == 201
    with api(console.server, login_token(console.server, *OPERATOR)) as operator:
        theirs = operator.post(
            "/schedules",
            json={
                "name": "doers-echo",
                "kind": "ssh",
                "request": {"cluster_name": "lab", "target_nodes": ["n1"], "command": "echo op"},
                "interval_seconds": 86400,
            },
        )
        assert theirs.status_code == 201, theirs.text
    console.login(*OPERATOR)
    console.open("#/admin/users")
    console.wait(lambda d: _text(console, "main h1") == "Not found")
    console.open("#/admin/audit")
    console.wait(lambda d: _text(console, "main h1") == "Not found")
    console.open("#/admin/credentials")
    console.find("#credentials tr[data-credential='lab-login']")
    assert console.all("#credential-new") == [] and console.all(".credential-edit") == []
    assert console.all(".credential-delete") == []
    # Their own schedule they pause; the admin's they only read.
    console.open("#/admin/schedules")
    _click(console, "#schedules tr[data-schedule='doers-echo'] .schedule-pause")
    console.wait(
        lambda d: (
            _text(console, "#schedules tr[data-schedule='doers-echo'] .schedule-state") == "paused"
        )
    )
    assert admin.get(f"/schedules/{theirs.json()['data']['id']}").json()["data"]["enabled"] is False
    admins = f"#schedules tr[data-schedule='{SCHEDULE}']"
    assert [b.text for b in console.all(f"{admins} button")] == ["Runs and next fires"]
    console.shot("admin-operator-schedules")
    console.open("#/admin/tokens")
    console.find("#token-form")
    roles = [o.get_attribute("value") for o in console.all("#token-role option")]
    assert roles == ["viewer", "operator"]
    # They create webhooks; the admin's they may only read, with its deliveries.
    console.open("#/admin/notifications")
    console.find("#hook-form")
    row = "#subscriptions tr[data-subscription='admins-hook']"
    console.find(row)
    assert [b.text for b in console.all(f"{row} button")] == ["Deliveries"]
    console.shot("admin-operator-notifications")
    assert console.severe_logs() == []


#: The page's fetch answering 404 for schedules and notifications, as a build without those
#: routes would (this build has both), installed before the console's scripts run.
WITHOUT_SCHEDULES_AND_NOTIFICATIONS = """
const real = window.fetch;
window.fetch = (input, init) => {
  const url = String(input instanceof Request ? input.url : input);
  if (/\\/api\\/v1\\/(schedules|notifications)(\\/|\\?|$)/.test(url)) {
    const body = JSON.stringify({code: 404, message: "not found", error: "no such route"});
    return Promise.resolve(
      new Response(body, {status: 404, headers: {"Content-Type": "application/json"}}));
  }
  return real(input, init);
};
"""


@pytest.mark.timeout(240)
def test_sections_whose_routes_answer_404_are_not_shown(console: Console) -> None:
    added = console.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": WITHOUT_SCHEDULES_AND_NOTIFICATIONS}
    )
    try:
        console.login("admin", TEST_ADMIN_PASSWORD)
        console.open("#/admin")
        console.find("#admin-users #users")
        sections = [a.get_attribute("id") for a in console.all("#admin-nav a")]
        assert sections == [
            "admin-nav-users",
            "admin-nav-tokens",
            "admin-nav-credentials",
            "admin-nav-audit",
        ]
        console.open("#/admin/schedules")
        console.wait(lambda d: _text(console, "main h1") == "Not found")
        assert console.severe_logs() == []
    finally:
        console.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
        )
