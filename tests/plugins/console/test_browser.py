"""The console in a real browser (the OS's Chromium, driven by Selenium through the OS's
chromedriver, headless, nothing downloaded) against a real ``knm serve`` and sshd nodes.

Each test saves a screenshot of the pages it visits in its temporary directory."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess
from knm.testing.sshfleet import SshFleet

from .conftest import WAIT, Console, api, login_token

pytestmark = pytest.mark.slow

CLUSTER = "fleet"
VIEWER = ("watcher", "watcher-passw0rd")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, ssh_fleet: SshFleet
) -> Iterator[KnmProcess]:
    """``knm serve`` with the plugins a plain install has, a cluster of three sshd nodes (its
    default credential the fleet's user) and a viewer."""
    proc = KnmProcess(tmp_path_factory.mktemp("console"), knm_database_url, ["serve"], {})
    proc.start()
    try:
        with api(proc, login_token(proc, "admin", TEST_ADMIN_PASSWORD)) as admin:
            credential = admin.post(
                "/credentials",
                json={
                    "name": "console-fleet",
                    "username": ssh_fleet.username,
                    "auth_type": "password",
                    "password": ssh_fleet.password,
                },
            )
            assert credential.status_code == 201, credential.text
            nodes = [
                {"name": n.name, "address": n.address, "port": n.port} for n in ssh_fleet.nodes
            ]
            cluster = admin.post(
                "/clusters",
                json={
                    "name": CLUSTER,
                    "kind": "static",
                    "nodes": nodes,
                    "default_credential_id": credential.json()["data"]["id"],
                },
            )
            assert cluster.status_code == 201, cluster.text
            viewer = admin.post(
                "/users", json={"username": VIEWER[0], "password": VIEWER[1], "role": "viewer"}
            )
            assert viewer.status_code == 201, viewer.text
        yield proc
    finally:
        proc.stop()


def _execute(admin: httpx.Client, command: str, nodes: list[str] | None = None) -> str:
    body = {"cluster_name": CLUSTER, "target_nodes": nodes or ["node1"], "command": command}
    answer = admin.post("/automation/ssh/execute", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


def _wait_status(admin: httpx.Client, task_id: str, wanted: set[str]) -> dict[str, Any]:
    end = time.monotonic() + WAIT
    while True:
        data = admin.get(f"/tasks/{task_id}").json()["data"]
        if data["status"] in wanted:
            return data
        assert time.monotonic() < end, data
        time.sleep(0.2)


#: Counts the page's uses of the locale machinery: the first one in a page loads its data, a
#: 70-140 ms long task on a small machine (the speed target is 50 ms).
INTL_WATCH = """
window.__intl = 0;
const counted = (owner, name) => {
  const original = owner[name];
  owner[name] = function (...args) { window.__intl += 1; return original.apply(this, args); };
};
for (const name of ["toLocaleString", "toLocaleDateString", "toLocaleTimeString"]) counted(Date.prototype, name);
counted(Number.prototype, "toLocaleString");
counted(String.prototype, "localeCompare");
for (const name of ["DateTimeFormat", "Collator", "NumberFormat", "RelativeTimeFormat"]) counted(Intl, name);
"""


@pytest.mark.timeout(240)
def test_an_operator_runs_a_command_on_three_nodes_and_watches_them_finish(
    console: Console, ssh_fleet: SshFleet
) -> None:
    watch = console.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": INTL_WATCH}
    )
    try:
        watch_the_run(console)
    finally:
        console.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": watch["identifier"]}
        )


def watch_the_run(console: Console) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.find("#clusters tr[data-cluster='fleet']")
    console.wait(lambda d: console.find("#clusters tr[data-cluster='fleet'] td.num").text == "3")
    console.shot("dashboard")
    console.find("#nav-run").click()
    console.choose("#run-cluster", CLUSTER)
    console.wait(lambda d: "3 nodes" in console.find("#node-note").text)
    console.find("#run-command").send_keys("sleep 1; echo console-says-hello")
    console.shot("run")
    console.find("#run-submit").click()
    console.wait(lambda d: "#/tasks/ssh-exec-" in d.current_url)
    console.wait(lambda d: len(console.cells("success")) == 3)
    assert console.wait(lambda d: "completed" in console.find("#task-status").text)
    assert "3 succeeded, 0 failed" in console.find("#task-counts").text
    assert console.find("#task-progress").get_attribute("value") == "100"
    console.find("#grid .cell[data-node='node2']").click()
    console.wait(lambda d: "console-says-hello" in console.find("#output-stdout").text)
    assert console.find("#node-state").text == "success"
    shot = console.shot("task")
    assert shot.stat().st_size > 0
    assert console.severe_logs() == []
    # Times are written out by the page itself, never through Intl.
    started = console.driver.find_element(
        By.XPATH, "//dl[contains(@class, 'facts')]/dt[.='started']/following-sibling::dd[1]"
    ).text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", started), started
    assert console.driver.execute_script("return window.__intl") == 0


@pytest.mark.timeout(240)
def test_the_guard_rails_refusal_is_shown_in_the_run_form_and_a_node_picked_by_name_runs(
    console: Console,
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/run")
    console.wait(lambda d: "3 nodes" in console.find("#node-note").text)
    console.find("#run-command").send_keys("rm -rf /")
    console.find("#run-submit").click()
    problem = console.find("#run-problem .problem")
    assert "422" in problem.text and "dangerous command blocked" in problem.text
    assert console.driver.current_url.endswith("#/run")
    console.shot("run-refused")
    # Corrected, on one node picked by name, it runs.
    console.find("#scope-some").click()
    console.choose("#run-nodes", "node2")
    console.find("#run-command").clear()
    console.find("#run-command").send_keys("echo picked")
    console.find("#run-submit").click()
    console.wait(lambda d: "#/tasks/ssh-exec-" in d.current_url)
    console.wait(lambda d: len(console.cells("success")) == 1)
    assert [c.get_attribute("data-node") for c in console.all("#grid .cell")] == ["node2"]


@pytest.mark.timeout(240)
def test_a_running_task_is_cancelled_from_its_page(console: Console, admin: httpx.Client) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    task_id = _execute(admin, "sleep 30", ["node1", "node2"])
    console.open(f"#/tasks/{task_id}")
    console.wait(lambda d: len(console.cells("running")) == 2)
    console.shot("task-running")
    console.find("#cancel").click()
    console.wait(lambda d: d.switch_to.alert).accept()
    console.wait(lambda d: "cancelled" in console.find("#task-status").text)
    console.wait(lambda d: len(console.cells("failed")) == 2)
    assert "cancelled" in console.find("#failures").text
    assert console.all("#cancel") == []
    assert _wait_status(admin, task_id, {"cancelled"})["status"] == "cancelled"
    console.shot("task-cancelled")


@pytest.mark.timeout(240)
def test_failed_nodes_show_their_reasons_and_can_be_rerun(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    task_id = _execute(admin, "echo bad >&2; exit 3", ["node1", "node3"])
    _wait_status(admin, task_id, {"failed"})
    console.open(f"#/tasks/{task_id}")
    console.wait(lambda d: len(console.cells("failed")) == 2)
    reasons = console.find("#failures").text
    assert "exit_code" in reasons and "node3" in reasons
    console.find("#grid .cell[data-node='node3']").click()
    console.wait(lambda d: "bad" in console.find("#output-stderr").text)
    assert console.find("#node-reason").text == "exit_code"
    console.find("#rerun-failed").click()
    console.wait(lambda d: "#/tasks/" in d.current_url and task_id not in d.current_url)
    console.wait(lambda d: len(console.cells("failed")) == 2)
    assert task_id in console.find(".facts").text  # "rerun of"


XSS = "<script>window.__owned=1</script><img src=x onerror=window.__owned=2>"


@pytest.mark.timeout(240)
def test_markup_in_node_output_is_shown_as_text_and_terminal_colors_as_colors(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    colored = "printf '\\033[1;31m%s\\033[0m plain\\n' '<b>red</b>'"
    task_id = _execute(admin, f"printf '%s\\n' '{XSS}'; printf '%s' '{XSS}' >&2; {colored}; exit 1")
    _wait_status(admin, task_id, {"failed"})
    console.open(f"#/tasks/{task_id}")
    console.find("#grid .cell[data-node='node1']").click()
    console.wait(lambda d: XSS in console.find("#output-stdout").text)
    console.wait(lambda d: XSS in console.find("#output-stderr").text)
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        console.driver.switch_to.alert.text  # noqa: B018
    assert console.driver.execute_script("return window.__owned") is None
    for pre in ("#output-stdout", "#output-stderr"):
        assert console.all(f"{pre} script") == [] and console.all(f"{pre} img") == []
    assert console.all("main img") == []
    # Terminal colors become a span of fixed classes around the text; the markup stays text.
    red = console.find("#output-stdout span.fg-1.ansi-bold")
    assert red.text == "<b>red</b>"
    assert console.all("#output-stdout b") == []
    assert "\x1b" not in console.find("#output-stdout").text
    assert "<b>red</b> plain" in console.find("#output-stdout").text
    console.shot("task-markup")


@pytest.mark.timeout(240)
def test_a_viewer_sees_no_run_cancel_or_rerun_buttons(
    console: Console, admin: httpx.Client
) -> None:
    failed = _execute(admin, "exit 1")
    _wait_status(admin, failed, {"failed"})
    task_id = _execute(admin, "sleep 30")
    try:
        console.login(*VIEWER)
        assert "watcher (viewer)" in console.find("#whoami").text
        console.find("#nav-history")
        assert console.all("#nav-run") == []
        console.open(f"#/tasks/{task_id}")
        console.wait(lambda d: len(console.cells("running")) == 1)
        assert console.all("#task-actions button") == []
        console.shot("viewer-task")
        console.open(f"#/tasks/{failed}")
        console.wait(lambda d: len(console.cells("failed")) == 1)
        assert console.all("#task-actions button") == []
        console.open("#/run")
        console.wait(lambda d: "Not found" in console.find("main h1").text)
        assert console.all("#run-form") == []
    finally:
        admin.post(f"/automation/ssh/cancel/{task_id}")
    _wait_status(admin, task_id, {"cancelled", "completed", "failed"})


@pytest.mark.timeout(240)
def test_history_filters_and_pages_through_theapi(console: Console, admin: httpx.Client) -> None:
    for _ in range(3):
        _execute(admin, "true")
    failed = _execute(admin, "exit 2")
    _wait_status(admin, failed, {"failed"})
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/history")
    console.find("#kind").send_keys("ssh")
    console.choose("#status", "failed")
    console.choose("#page_size", "10")
    console.find("#history-apply").click()
    console.wait(lambda d: "status=failed" in d.current_url and "kind=ssh" in d.current_url)
    console.find(f"#history-results tr[data-task='{failed}']")
    rows = console.all("#history-results tbody tr")
    assert rows and all("failed" in row.text for row in rows)
    console.shot("history")
    total = admin.get("/tasks", params={"page_size": 1}).json()["data"]["total"]
    assert total > 2
    console.open("#/history?page_size=2")
    console.wait(lambda d: f"page 1 of {(total + 1) // 2}" in console.find("#page-info").text)
    first = [r.get_attribute("data-task") for r in console.all("#history-results tbody tr")]
    console.find("#page-next").click()
    console.wait(lambda d: "page 2 of" in console.find("#page-info").text)
    second = [r.get_attribute("data-task") for r in console.all("#history-results tbody tr")]
    assert len(first) == 2 and second and not set(first) & set(second)
    assert console.severe_logs() == []


@pytest.mark.timeout(120)
def test_the_token_stays_out_of_urls_and_logging_out_forgets_it(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    assert "knm.console.session" in console.driver.execute_script(
        "return Object.keys(sessionStorage).join(',')"
    )
    assert "token" not in console.driver.current_url
    token = console.driver.execute_script(
        "return JSON.parse(sessionStorage.getItem('knm.console.session')).token"
    )
    # A running task's page opens the WebSocket: the token goes in its first message.
    task_id = _execute(admin, "sleep 3")
    console.open(f"#/tasks/{task_id}")
    console.wait(lambda d: len(console.cells("success")) == 1)
    urls = console.urls()
    assert any(url.endswith("/api/v1/progress/ws") for url in urls), urls
    assert any("/api/v1/tasks/" in url for url in urls), urls
    assert not [url for url in urls if token in url or "token=" in url]
    console.find("#logout").click()
    console.find("#login-form")
    assert (
        console.driver.execute_script("return sessionStorage.getItem('knm.console.session')")
        is None
    )
    console.open("#/history")
    console.find("#login-form")


@pytest.mark.timeout(120)
def test_the_console_is_absent_when_its_plugin_is_blocked(
    tmp_path: Path, knm_database_url: str
) -> None:
    proc = KnmProcess(
        tmp_path / "blocked", knm_database_url, ["serve"], {"KNM_BLOCKED_PLUGINS": "console"}
    )
    proc.start()
    try:
        page = httpx.get(f"{proc.base_url}/", timeout=30)
        asset = httpx.get(f"{proc.base_url}/console/app.js", timeout=30)
        features = httpx.get(f"{proc.api}/features", timeout=30)
    finally:
        proc.stop()
    assert page.status_code == 404 and page.json()["code"] == 404
    assert asset.status_code == 404
    assert features.status_code == 200


@pytest.mark.timeout(120)
def test_a_wrong_password_is_refused_in_the_form(console: Console) -> None:
    console.open()
    console.driver.execute_script("sessionStorage.clear()")
    console.driver.refresh()
    console.find("#username").send_keys("admin")
    console.find("#password").send_keys("not-the-password")
    console.find("#login").click()
    problem = console.find("#login-form .problem")
    assert "401" in problem.text and "invalid username or password" in problem.text
    assert console.all("#nav-dashboard") == []


@pytest.mark.timeout(240)
def test_the_dashboard_shows_running_tasks_and_failures_first(
    console: Console, admin: httpx.Client
) -> None:
    failed = _execute(admin, "exit 4")
    _wait_status(admin, failed, {"failed"})
    completed = _execute(admin, "true")
    _wait_status(admin, completed, {"completed"})
    running = _execute(admin, "sleep 30")
    try:
        console.login("admin", TEST_ADMIN_PASSWORD)
        console.find(f"#running tr[data-task='{running}']")
        order = [r.get_attribute("data-task") for r in console.all("#recent tbody tr")]
        assert order.index(failed) < order.index(completed)
        statuses = [
            r.find_element("css selector", ".badge").text for r in console.all("#recent tbody tr")
        ]
        assert statuses == sorted(statuses, key=lambda s: {"failed": 0, "cancelled": 1}.get(s, 2))
        console.shot("dashboard-busy")
    finally:
        admin.post(f"/automation/ssh/cancel/{running}")
    _wait_status(admin, running, {"cancelled", "completed", "failed"})
    # The page follows along: the cancelled task leaves the running list by itself.
    console.wait(lambda d: console.all(f"#running tr[data-task='{running}']") == [])


SPLIT_COLORS = """
const done = arguments[arguments.length - 1];
import(new URL("console/ansi.js", document.baseURI).href).then(({ AnsiWriter }) => {
  const pre = document.createElement("pre");
  const writer = new AnsiWriter(pre);
  // Escapes cut between chunks (a color, a title), 256 colors and a reset.
  for (const chunk of ["a \\u001b[3", "2mgreen\\u001b", "[0m b \\u001b]0;", "t\\u0007", "\\u001b[38;5;4m<i>x</i>\\u001b[m"]) {
    writer.write(chunk);
  }
  done([...pre.childNodes].map((n) => [n.nodeName, n.className || "", n.textContent]));
});
"""


@pytest.mark.timeout(120)
def test_terminal_colors_cut_between_chunks_still_color_and_other_escapes_vanish(
    console: Console,
) -> None:
    console.open()
    console.find("#view")
    nodes = console.driver.execute_async_script(SPLIT_COLORS)
    assert nodes == [
        ["#text", "", "a "],
        ["SPAN", "fg-2", "green"],
        ["#text", "", " b "],
        ["SPAN", "fg-4", "<i>x</i>"],
    ]


@pytest.mark.timeout(180)
def test_a_revoked_session_returns_to_the_login_and_then_to_the_same_page(
    console: Console, admin: httpx.Client
) -> None:
    users = admin.get("/users", params={"page_size": 100}).json()["data"]["users"]
    viewer_id = next(u["id"] for u in users if u["username"] == VIEWER[0])
    console.login(*VIEWER)
    console.open("#/history?status=failed")
    console.find("#history-results")
    # An admin resets the viewer's password: every session of theirs is revoked.
    new_password = "watcher-new-passw0rd"
    reset = admin.put(f"/users/{viewer_id}/password", json={"password": new_password})
    assert reset.status_code == 200, reset.text
    try:
        console.choose("#status", "completed")
        console.click("#history-apply")
        console.find("#login-form")
        console.find("#username").send_keys(VIEWER[0])
        console.find("#password").send_keys(new_password)
        console.find("#login").click()
        console.wait(lambda d: d.current_url.endswith("#/history?status=completed"))
        console.find("#history-results table, #history-results p")
    finally:
        restored = admin.put(f"/users/{viewer_id}/password", json={"password": VIEWER[1]})
        assert restored.status_code == 200, restored.text


LATE_401 = """
const [username, password, done] = arguments;
import(new URL("console/api.js", document.baseURI).href).then(async (api) => {
  // The answers to /tasks arrive late, as a slow page's would.
  const fetchNow = window.fetch;
  window.fetch = async (url, options) => {
    const answer = await fetchNow(url, options);
    if (String(url).includes("/api/v1/tasks")) await new Promise((r) => setTimeout(r, 1500));
    return answer;
  };
  try {
    const late = api.request("GET", "tasks").then(() => "answered", (e) => e.status);
    await api.login(username, password);
    const status = await late;
    done({ status, user: api.user() && api.user().username, kept: !!sessionStorage.getItem("knm.console.session") });
  } finally {
    window.fetch = fetchNow;
  }
});
"""


@pytest.mark.timeout(180)
def test_a_late_401_for_a_revoked_session_does_not_log_out_the_session_made_since(
    console: Console, admin: httpx.Client
) -> None:
    users = admin.get("/users", params={"page_size": 100}).json()["data"]["users"]
    viewer_id = next(u["id"] for u in users if u["username"] == VIEWER[0])
    console.login(*VIEWER)
    new_password = "watcher-later-passw0rd"
    reset = admin.put(f"/users/{viewer_id}/password", json={"password": new_password})
    assert reset.status_code == 200, reset.text
    try:
        seen = console.driver.execute_async_script(LATE_401, VIEWER[0], new_password)
    finally:
        restored = admin.put(f"/users/{viewer_id}/password", json={"password": VIEWER[1]})
        assert restored.status_code == 200, restored.text
    # The old session's request was refused, and the new session stays.
    assert seen == {"status": 401, "user": VIEWER[0], "kept": True}
