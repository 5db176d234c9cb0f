"""The console's library pages in a real browser against a real ``knm serve``: playbooks,
scripts and workflows listed, read, created, edited with the server's errors at their line,
cloned, compared across versions, rolled back and deleted, builtins read-only and a viewer
without a button. Workflows are written, shown and compared as YAML (JSON still loads), a
syntax error marked by the browser without a request, a refused step at its line.

Each test saves screenshots of the states it visits (``KNM_CONSOLE_SCREENSHOTS`` keeps them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

from .conftest import Console, api, login_token

pytestmark = pytest.mark.slow

VIEWER = ("reader", "reader-passw0rd")
PLAYBOOKS = "/automation/ansible/playbooks"
SCRIPTS = "/automation/scripts"
WORKFLOWS = "/automation/workflows"

GOOD = """- name: look around
  hosts: all
  gather_facts: false
  tasks:
    - name: uptime
      ansible.builtin.command: uptime
"""
# Line 5 opens a flow sequence that never closes: YAML's parser says where.
BROKEN = """- name: look around
  hosts: all
  gather_facts: false
  tasks:
    - name: [uptime
      ansible.builtin.command: uptime
"""
FIXED = GOOD.replace("command: uptime", "command: hostname")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, knm_database_url: str) -> Iterator[KnmProcess]:
    """``knm serve`` with the plugins a plain install has (its builtin content) and a viewer."""
    proc = KnmProcess(tmp_path_factory.mktemp("library"), knm_database_url, ["serve"], {})
    proc.start()
    try:
        with api(proc, login_token(proc, "admin", TEST_ADMIN_PASSWORD)) as admin:
            viewer = admin.post(
                "/users", json={"username": VIEWER[0], "password": VIEWER[1], "role": "viewer"}
            )
            assert viewer.status_code == 201, viewer.text
        yield proc
    finally:
        proc.stop()


def _playbook(admin: httpx.Client, name: str, content: str = GOOD) -> dict[str, Any]:
    answer = admin.post(PLAYBOOKS, json={"name": name, "content": content})
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]


def _type(console: Console, css: str, text: str) -> None:
    """Replaces a textarea's or input's text as typing would (an input event follows)."""
    console.driver.execute_script(
        "const el = arguments[0]; el.value = arguments[1];"
        "el.dispatchEvent(new Event('input', {bubbles: true}));",
        console.find(css),
        text,
    )


def _requests(console: Console) -> list[tuple[str, str]]:
    """(method, URL) of every request the page made since the last look."""
    found = []
    for entry in console.driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            request = message["params"]["request"]
            found.append((request["method"], request["url"]))
    return found


def _caret_line(console: Console, css: str) -> int:
    return console.driver.execute_script(
        "const t = arguments[0]; return t.value.slice(0, t.selectionStart).split('\\n').length;",
        console.find(css),
    )


@pytest.mark.timeout(240)
def test_the_library_lists_each_kind_with_builtins_marked_and_filters_by_name(
    console: Console, admin: httpx.Client
) -> None:
    _playbook(admin, "list-me-alpha")
    _playbook(admin, "list-me-beta")
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.find("#nav-library").click()
    builtin = console.find("#library-table tr[data-id='1']")
    assert builtin.get_attribute("data-builtin") == "true"
    assert "builtin" in builtin.find_element("css selector", ".lib-builtin").text
    assert console.find("#library-table tr[data-name='list-me-alpha']").is_displayed()
    console.shot("library-list")
    console.find("#library-filter").send_keys("ME-AL")
    console.wait(lambda d: not console.find("tr[data-name='list-me-beta']").is_displayed())
    assert console.find("tr[data-name='list-me-alpha']").is_displayed()
    assert not console.find("tr[data-id='1']").is_displayed()
    assert "q=ME-AL" in console.driver.current_url  # the filtered list is linkable
    console.find("#library-filter").clear()
    console.choose("#library-origin", "builtin")
    console.wait(lambda d: not console.find("tr[data-name='list-me-alpha']").is_displayed())
    assert console.find("tr[data-id='1']").is_displayed()
    # Scripts and workflows have their tabs, with their builtins.
    console.find("#tab-scripts").click()
    console.wait(lambda d: "kind=scripts" in d.current_url)
    scripts = {
        r["name"] for r in admin.get(SCRIPTS, params={"page_size": 100}).json()["data"]["scripts"]
    }
    console.wait(
        lambda d: (
            {r.get_attribute("data-name") for r in console.all("#library-table tbody tr")}
            == scripts
        )
    )
    console.find("#tab-workflows").click()
    console.find("#library-table tr[data-id='1'][data-builtin='true']")
    console.shot("library-workflows")
    assert console.severe_logs() == []


@pytest.mark.timeout(300)
def test_a_playbook_saved_with_an_error_shows_it_at_its_line_and_saves_once_fixed(
    console: Console, admin: httpx.Client
) -> None:
    item = _playbook(admin, "edit-me")
    # What the server says of the broken body (a refused PUT changes nothing).
    refused = admin.put(f"{PLAYBOOKS}/{item['id']}", json={"content": BROKEN})
    assert refused.status_code == 422, refused.text
    line = next(d["line"] for d in refused.json()["details"] if d["line"])
    assert admin.get(f"{PLAYBOOKS}/{item['id']}").json()["data"]["version"] == item["version"]

    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open(f"#/library/playbooks/{item['id']}")
    console.find("#item-edit").click()
    console.wait(lambda d: d.current_url.endswith(f"#/library/playbooks/{item['id']}/edit"))
    _type(console, "#edit-body-text", BROKEN)
    console.find("#edit-save").click()
    marked = console.find("#edit-body .ln.err")
    assert int(marked.get_attribute("data-line")) == line
    assert marked.text == str(line)
    assert [int(m.get_attribute("data-line")) for m in console.all("#edit-body .ed-band")] == [line]
    listed = console.find("#edit-body-problems li")
    assert listed.get_attribute("data-line") == str(line)
    assert f"line {line}" in listed.text and "YAML" in listed.text
    assert _caret_line(console, "#edit-body-text") == line
    assert "422" in console.find("#edit-problem .problem").text
    assert "1 problem in the body" in console.find("#edit-problem .problem").text
    console.shot("library-editor-error")
    current = admin.get(f"{PLAYBOOKS}/{item['id']}").json()["data"]
    assert current["version"] == item["version"] and current["content"] == GOOD

    _type(console, "#edit-body-text", FIXED)
    console.find("#edit-save").click()
    saved = item["version"] + 1
    notice = console.find("#library-notice")
    assert f"Saved as version {saved}" in notice.text
    assert console.driver.current_url.endswith(f"#/library/playbooks/{item['id']}?saved={saved}")
    current = admin.get(f"{PLAYBOOKS}/{item['id']}").json()["data"]
    assert current["version"] == saved and current["content"] == FIXED
    assert console.find("#item-body-text").get_attribute("value") == FIXED
    assert console.severe_logs() == []


@pytest.mark.timeout(300)
def test_an_operator_creates_a_script_with_a_parameter_and_a_workflow(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/library?kind=scripts")
    console.find("#library-new").click()
    console.find("#edit-name").send_keys("say-hello")
    console.find("#edit-description").send_keys("greets whoever is named")
    console.find("#param-add").click()
    console.find("#edit-parameters .param-name").send_keys("WHO")
    console.find("#edit-parameters .param-default").send_keys("world")
    _type(console, "#edit-body-text", '#!/bin/bash\necho "hello $WHO"\n')
    console.shot("library-new-script")
    console.find("#edit-save").click()
    console.find("#library-notice")
    script_id = int(console.driver.current_url.split("/library/scripts/")[1].split("?")[0])
    stored = admin.get(f"{SCRIPTS}/{script_id}").json()["data"]
    assert stored["name"] == "say-hello" and stored["content"] == '#!/bin/bash\necho "hello $WHO"\n'
    assert [(p["name"], p["default"]) for p in stored["parameters"]] == [("WHO", "world")]
    assert console.find("#item-parameters tr[data-parameter='WHO']").is_displayed()

    # A shell syntax error far down the script: marked at bash's line, scrolled into view.
    long = "".join(f"echo line {n}\n" for n in range(1, 45)) + "fi\n" + "echo end\n" * 10
    refused = admin.put(f"{SCRIPTS}/{script_id}", json={"content": long})
    assert refused.status_code == 422, refused.text
    line = next(d["line"] for d in refused.json()["details"] if d["line"])
    assert line == 45
    console.find("#item-edit").click()
    _type(console, "#edit-body-text", long)
    console.find("#edit-save").click()
    assert console.find("#edit-body .ln.err").get_attribute("data-line") == str(line)
    assert _caret_line(console, "#edit-body-text") == line
    assert (
        console.driver.execute_script("return document.getElementById('edit-body-text').scrollTop")
        > 0
    )
    console.shot("library-script-error")
    assert admin.get(f"{SCRIPTS}/{script_id}").json()["data"]["version"] == stored["version"]

    console.open("#/library?kind=workflows")
    console.find("#library-new").click()
    console.find("#edit-name").send_keys("two-steps")
    # A definition pasted as JSON (JSON is YAML). The second step's type is unknown: the server
    # names definition.steps[1], shown at its line in the text.
    broken = (
        '{\n  "steps": [\n    {"id": "one", "name": "first", "type": "ssh", "command": "uptime"},\n'
        '    {"id": "two", "name": "second", "type": "no-such-type", "depends_on": ["one"]}\n'
        "  ]\n}\n"
    )
    _type(console, "#edit-body-text", broken)
    console.find("#edit-save").click()
    marked = console.find("#edit-body .ln.err")
    assert marked.get_attribute("data-line") == "4"
    assert "no-such-type" in console.find("#edit-body-problems").text
    names = {
        w["name"]
        for w in admin.get(WORKFLOWS, params={"page_size": 100}).json()["data"]["workflows"]
    }
    assert "two-steps" not in names
    # JSON the browser cannot parse (a comma missed) is shown at its line without asking the
    # server.
    _requests(console)
    _type(console, "#edit-body-text", '{\n  "steps": [\n    {"id": "one" "type": "ssh"}\n  ]\n}\n')
    console.find("#edit-save").click()
    console.wait(lambda d: console.find("#edit-body .ln.err").get_attribute("data-line") == "3")
    assert not [r for r in _requests(console) if r[0] == "POST"]
    _type(
        console,
        "#edit-body-text",
        broken.replace("no-such-type", "ssh").replace(
            '"depends_on"', '"command": "hostname", "depends_on"'
        ),
    )
    console.find("#edit-save").click()
    console.find("#library-notice")
    workflow_id = int(console.driver.current_url.split("/library/workflows/")[1].split("?")[0])
    stored = admin.get(f"{WORKFLOWS}/{workflow_id}").json()["data"]
    assert stored["name"] == "two-steps"
    assert [s["id"] for s in stored["definition"]["steps"]] == ["one", "two"]
    # Stored, it reads back as YAML: what the server keeps is the definition, not the text.
    shown = console.find("#item-body-text").get_attribute("value")
    assert "no-such-type" not in shown and "  - id: two\n" in shown
    assert yaml.safe_load(shown) == stored["definition"]
    console.shot("library-workflow")
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_builtin_has_no_edit_or_delete_and_is_cloned_into_an_editable_copy(
    console: Console, admin: httpx.Client
) -> None:
    before = admin.get(f"{PLAYBOOKS}/1").json()["data"]
    assert before["is_builtin"]
    console.login("admin", TEST_ADMIN_PASSWORD)
    _requests(console)
    console.open("#/library/playbooks/1")
    console.find("#item-readonly")
    assert console.all("#item-edit") == [] and console.all("#item-delete") == []
    assert console.all("#versions .rollback") == []
    assert console.find("#item-body-text").get_attribute("readonly") is not None
    console.shot("library-builtin")
    # The edit page of a builtin, opened by its URL, offers no save.
    console.open("#/library/playbooks/1/edit")
    console.find("#item-readonly")
    assert console.all("#edit-save") == []
    console.open("#/library/playbooks/1")
    console.find("#item-clone").click()
    name = console.find("#clone-name")
    assert name.get_attribute("value") == f"{before['name']} (copy)"
    name.clear()
    name.send_keys("my diagnostics")
    console.find("#clone-confirm").click()
    console.wait(lambda d: d.current_url.endswith("/edit") and "/playbooks/1/" not in d.current_url)
    assert console.find("#edit-name").get_attribute("value") == "my diagnostics"
    copy_id = int(console.driver.current_url.split("/playbooks/")[1].split("/")[0])
    copy = admin.get(f"{PLAYBOOKS}/{copy_id}").json()["data"]
    assert copy["content"] == before["content"] and not copy["is_builtin"]
    changing = [
        (method, url)
        for method, url in _requests(console)
        if method in {"PUT", "DELETE", "PATCH"}
        or (method == "POST" and "/clone" not in url and "/auth/" not in url)
    ]
    assert changing == []
    assert admin.get(f"{PLAYBOOKS}/1").json()["data"] == before
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_the_diff_between_two_versions_shows_the_changed_lines_and_rolls_back(
    console: Console, admin: httpx.Client
) -> None:
    item = _playbook(admin, "diff-me")
    changed = admin.put(
        f"{PLAYBOOKS}/{item['id']}", json={"content": FIXED, "version": item["version"]}
    )
    assert changed.status_code == 200, changed.text
    v1, v2 = item["version"], changed.json()["data"]["version"]
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open(f"#/library/playbooks/{item['id']}")
    console.wait(lambda d: len(console.all("#versions tbody tr")) == 2)
    assert [r.get_attribute("data-version") for r in console.all("#versions tbody tr")] == [
        str(v2),
        str(v1),
    ]
    console.choose("#diff-from", str(v1))
    console.choose("#diff-to", str(v2))
    console.find("#diff-show").click()
    console.find("#diff .d-add")
    assert [d.text for d in console.all("#diff .d-del")] == [
        "-      ansible.builtin.command: uptime"
    ]
    assert [d.text for d in console.all("#diff .d-add")] == [
        "+      ansible.builtin.command: hostname"
    ]
    assert console.find("#diff .d-hunk").text == "@@ -3,4 +3,4 @@"
    console.shot("library-diff")

    console.find(f"#versions .rollback[data-version='{v1}']").click()
    console.find("#rollback-confirm").click()
    console.wait(lambda d: f"Saved as version {v2 + 1}" in console.find("#library-notice").text)
    current = admin.get(f"{PLAYBOOKS}/{item['id']}").json()["data"]
    assert current["version"] == v2 + 1 and current["content"] == GOOD
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_concurrent_edit_is_refused_with_a_message_and_nothing_is_overwritten(
    console: Console, admin: httpx.Client
) -> None:
    item = _playbook(admin, "two-editors")
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open(f"#/library/playbooks/{item['id']}/edit")
    console.find("#edit-body-text")
    theirs = admin.put(f"{PLAYBOOKS}/{item['id']}", json={"content": FIXED})
    assert theirs.status_code == 200, theirs.text
    _type(console, "#edit-body-text", GOOD.replace("uptime", "whoami"))
    console.find("#edit-save").click()
    conflict = console.find("#conflict")
    assert "someone else changed this playbook" in conflict.text
    assert f"since you opened version {item['version']}" in conflict.text
    assert "Nothing was overwritten" in conflict.text
    # What the user typed is still there to keep.
    assert "whoami" in console.find("#edit-body-text").get_attribute("value")
    console.find("#conflict-diff").click()
    console.find("#conflict-diff-out .d-del")
    assert [d.text for d in console.all("#conflict-diff-out .d-del")] == [
        "-    - name: uptime",
        "-      ansible.builtin.command: hostname",
    ]
    console.shot("library-conflict")
    current = admin.get(f"{PLAYBOOKS}/{item['id']}").json()["data"]
    assert current["content"] == FIXED and current["version"] == item["version"] + 1
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_playbook_is_deleted_after_a_confirmation(console: Console, admin: httpx.Client) -> None:
    item = _playbook(admin, "delete-me")
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open(f"#/library/playbooks/{item['id']}")
    console.find("#item-delete").click()
    console.find("#delete-cancel").click()
    assert console.all("#delete-confirm") == []
    assert admin.get(f"{PLAYBOOKS}/{item['id']}").status_code == 200
    console.find("#item-delete").click()
    console.find("#delete-confirm").click()
    console.wait(lambda d: d.current_url.endswith("#/library?kind=playbooks"))
    console.find("#library-table")
    assert console.all("tr[data-name='delete-me']") == []
    assert admin.get(f"{PLAYBOOKS}/{item['id']}").status_code == 404


@pytest.mark.timeout(240)
def test_a_viewer_reads_the_library_without_any_button_to_change_it(
    console: Console, admin: httpx.Client
) -> None:
    item = _playbook(admin, "viewer-reads")
    assert admin.put(f"{PLAYBOOKS}/{item['id']}", json={"content": FIXED}).status_code == 200
    console.login(*VIEWER)
    console.open("#/library")
    console.find("#library-table tr[data-name='viewer-reads']")
    assert console.all("#library-new") == []
    console.open(f"#/library/playbooks/{item['id']}")
    console.find("#versions")
    for css in ("#item-edit", "#item-clone", "#item-delete", "#versions .rollback"):
        assert console.all(css) == [], css
    assert console.find("#item-body-text").get_attribute("readonly") is not None
    # Comparing versions changes nothing, so a viewer can.
    console.find("#diff-show").click()
    console.find("#diff .d-add")
    console.shot("library-viewer")
    for path in (f"#/library/playbooks/{item['id']}/edit", "#/library/scripts/new"):
        console.open(path)
        console.wait(lambda d: "Not found" in console.find("h1").text)
        assert console.all("#edit-save") == []
    assert console.severe_logs() == []


XSS = "<img src=x onerror=window.__owned=1>"


@pytest.mark.timeout(240)
def test_markup_in_a_playbook_shows_as_text(console: Console, admin: httpx.Client) -> None:
    content = GOOD.replace("look around", f"'{XSS}'")
    item = _playbook(admin, f"xss {XSS}", content)
    later = content.replace("gather_facts: false", "gather_facts: true")
    assert admin.put(f"{PLAYBOOKS}/{item['id']}", json={"content": later}).status_code == 200
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/library")
    row = console.find(f"#library-table tr[data-id='{item['id']}']")
    assert XSS in row.text
    console.open(f"#/library/playbooks/{item['id']}")
    assert console.find("#item-name").text == f"xss {XSS}"
    assert console.find("#item-body-text").get_attribute("value") == later
    console.find("#diff-show").click()
    console.wait(lambda d: XSS in console.find("#diff").text)
    console.open(f"#/library/playbooks/{item['id']}/edit")
    assert console.find("#edit-body-text").get_attribute("value").startswith(f"- name: '{XSS}'")
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        console.driver.switch_to.alert.text  # noqa: B018
    assert console.all("img") == []
    assert console.driver.execute_script("return window.__owned") is None
    assert console.severe_logs() == []


# A workflow as an operator writes it for `knm apply -f`: comments, plain words, a block scalar.
# `default: no` (Norway) and `name: on` stay the words written (YAML 1.1 would make them
# booleans); `batch_size: 2` stays a number.
WORKFLOW_YAML = """# Look around, then say where.
parameters:
  - name: COUNTRY
    description: an ISO code
    default: no
strategy:
  mode: rolling
  batch_size: 2
steps:
  - id: one
    name: on
    type: ssh
    command: uptime

  # The second step runs after the first.
  - id: two
    name: second
    type: ssh
    depends_on: [one]
    command: |
      hostname
      echo done
"""
WORKFLOW_STEPS = [
    {"id": "one", "name": "on", "type": "ssh", "command": "uptime"},
    {
        "id": "two",
        "name": "second",
        "type": "ssh",
        "depends_on": ["one"],
        "command": "hostname\necho done\n",
    },
]
# A key indented under a plain value: YAML cannot read that line (PyYAML refuses it too).
WORKFLOW_UNPARSABLE = WORKFLOW_YAML.replace("    command: uptime", "      command: uptime")
# The server refuses the third step (its type is unknown) and names it: definition.steps[2].
WORKFLOW_REFUSED = (
    WORKFLOW_YAML
    + """
  - id: three
    name: third
    type: no-such-type
    depends_on: [two]
"""
)


def _line_of(text: str, line: str) -> int:
    return text.split("\n").index(line) + 1


def _made_id(console: Console, plural: str) -> int:
    return int(console.driver.current_url.split(f"/library/{plural}/")[1].split("?")[0])


@pytest.mark.timeout(300)
def test_a_workflow_is_written_in_yaml_its_errors_marked_at_their_line_and_stored_as_its_definition(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/library?kind=workflows")
    console.find("#library-new").click()
    assert console.find("#edit-syntax").text == "(YAML)"
    assert console.find("#edit-body-text").get_attribute("value").startswith("steps:\n  - id: ")
    console.find("#edit-name").send_keys("yaml-written")

    # A syntax error: marked at its line by the browser, and nothing is sent.
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(WORKFLOW_UNPARSABLE)
    bad_line = _line_of(WORKFLOW_UNPARSABLE, "      command: uptime")
    _requests(console)
    _type(console, "#edit-body-text", WORKFLOW_UNPARSABLE)
    console.find("#edit-save").click()
    marked = console.find("#edit-body .ln.err")
    assert marked.get_attribute("data-line") == str(bad_line)
    listed = console.find("#edit-body-problems li")
    assert listed.get_attribute("data-line") == str(bad_line)
    assert f"line {bad_line}" in listed.text and "not valid YAML" in listed.text
    assert "bad indentation" in listed.text
    assert "not valid YAML" in console.find("#edit-syntax-problem").text
    assert _caret_line(console, "#edit-body-text") == bad_line
    console.shot("library-workflow-yaml-syntax-error")
    assert [r for r in _requests(console) if r[0] in {"POST", "PUT"}] == []
    # YAML that JSON cannot carry (infinity) is refused the same way, at its line.
    infinite = WORKFLOW_YAML.replace("batch_size: 2", "batch_size: .inf")
    _type(console, "#edit-body-text", infinite)
    console.find("#edit-save").click()
    line = _line_of(infinite, "  batch_size: .inf")
    console.wait(
        lambda d: console.find("#edit-body-problems li").get_attribute("data-line") == str(line)
    )
    assert "strategy.batch_size: .inf" in console.find("#edit-body-problems").text
    assert "not a definition JSON can carry" in console.find("#edit-syntax-problem").text
    assert [r for r in _requests(console) if r[0] in {"POST", "PUT"}] == []

    # A step the server refuses: the server names definition.steps[2], the editor marks the
    # line of that step's `- id: three` in the YAML.
    third = {"id": "three", "name": "third", "type": "no-such-type", "depends_on": ["two"]}
    refused = admin.post(
        WORKFLOWS,
        json={"name": "yaml-written", "definition": {"steps": [*WORKFLOW_STEPS, third]}},
    )
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["details"]] == ["definition.steps[2]"]
    step_line = _line_of(WORKFLOW_REFUSED, "  - id: three")
    _type(console, "#edit-body-text", WORKFLOW_REFUSED)
    console.find("#edit-save").click()
    console.wait(
        lambda d: (
            console.all("#edit-body .ln.err")
            and console.find("#edit-body .ln.err").get_attribute("data-line") == str(step_line)
        )
    )
    assert [int(b.get_attribute("data-line")) for b in console.all("#edit-body .ed-band")] == [
        step_line
    ]
    assert "no-such-type" in console.find("#edit-body-problems").text
    assert "422" in console.find("#edit-problem .problem").text
    assert _caret_line(console, "#edit-body-text") == step_line
    console.shot("library-workflow-yaml-step-error")
    names = {
        w["name"]
        for w in admin.get(WORKFLOWS, params={"page_size": 100}).json()["data"]["workflows"]
    }
    assert "yaml-written" not in names

    # Fixed, it is created: the server holds the definition the YAML says, words as words.
    _requests(console)
    _type(console, "#edit-body-text", WORKFLOW_YAML)
    console.find("#edit-save").click()
    console.find("#library-notice")
    workflow_id = _made_id(console, "workflows")
    sent = [r for r in _requests(console) if r[0] == "POST" and r[1].endswith(WORKFLOWS)]
    assert len(sent) == 1
    stored = admin.get(f"{WORKFLOWS}/{workflow_id}").json()["data"]
    definition = stored["definition"]
    assert definition["steps"] == WORKFLOW_STEPS
    assert [(p["name"], p["default"]) for p in definition["parameters"]] == [("COUNTRY", "no")]
    assert definition["strategy"]["mode"] == "rolling" and definition["strategy"]["batch_size"] == 2

    # Read back as YAML, with the words another reader could take for booleans quoted: the
    # text means the same to PyYAML (`knm apply -f`) as to the console.
    assert (
        console.find("#item-body").find_element("xpath", "preceding-sibling::h2[1]").text
        == "Body (YAML)"
    )
    shown = console.find("#item-body-text").get_attribute("value")
    assert "    name: 'on'\n" in shown and "    default: 'no'\n" in shown
    assert "    command: |\n      hostname\n      echo done\n" in shown
    assert yaml.safe_load(shown) == definition
    console.shot("library-workflow-yaml")
    assert console.severe_logs() == []


@pytest.mark.timeout(300)
def test_a_workflow_edited_as_yaml_saves_a_version_and_its_diff_compares_the_yaml(
    console: Console, admin: httpx.Client
) -> None:
    made = admin.post(
        WORKFLOWS,
        json={"name": "yaml-diff", "definition": {"steps": [dict(s) for s in WORKFLOW_STEPS]}},
    )
    assert made.status_code == 201, made.text
    item = made.json()["data"]
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open(f"#/library/workflows/{item['id']}/edit")
    text = console.find("#edit-body-text").get_attribute("value")
    assert "  - id: one\n" in text and "    command: uptime\n" in text
    _type(console, "#edit-body-text", text.replace("command: uptime", "command: whoami"))
    console.find("#edit-save").click()
    console.wait(
        lambda d: f"Saved as version {item['version'] + 1}" in console.find("#library-notice").text
    )
    steps = admin.get(f"{WORKFLOWS}/{item['id']}").json()["data"]["definition"]["steps"]
    assert steps[0]["command"] == "whoami" and steps[1] == WORKFLOW_STEPS[1]

    console.choose("#diff-from", str(item["version"]))
    console.choose("#diff-to", str(item["version"] + 1))
    console.find("#diff-show").click()
    console.find("#diff .d-add")
    assert [d.text for d in console.all("#diff .d-del")] == ["-    command: uptime"]
    assert [d.text for d in console.all("#diff .d-add")] == ["+    command: whoami"]
    console.shot("library-workflow-yaml-diff")
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_a_builtin_workflow_shows_as_yaml(console: Console, admin: httpx.Client) -> None:
    builtin = admin.get(f"{WORKFLOWS}/1").json()["data"]
    assert builtin["is_builtin"] and builtin["definition"]["steps"]
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/library/workflows/1")
    shown = console.find("#item-body-text").get_attribute("value")
    assert not shown.lstrip().startswith("{")
    for step in builtin["definition"]["steps"]:
        assert f"  - id: {step['id']}\n" in shown, step
    assert yaml.safe_load(shown) == builtin["definition"]
    console.shot("library-builtin-workflow-yaml")
    assert console.severe_logs() == []
