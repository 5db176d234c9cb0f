"""The Run page in a real browser against a real ``knm serve``, the sshd fleet and the
Kubernetes stand-in: targets by label selector with a live preview, and each kind of run — a
command, a script with a secret parameter, a playbook with extra vars, a workflow with its
parameters and rolling strategy, a Kubernetes action — each form's screenshot saved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.k8s import KubeStandin, standin
from knm.testing.process import KnmProcess
from knm.testing.sshfleet import SshFleet

from .conftest import WAIT, Console, api, login_token

pytestmark = pytest.mark.slow

FLEET = "fleet"
KUBE = "kube"
VIEWER = ("runviewer", "runviewer-passw0rd")
#: The fleet's nodes' labels: the selector tests' truth.
LABELS = {
    "node1": {"zone": "z1", "tier": "web"},
    "node2": {"zone": "z1", "tier": "db"},
    "node3": {"zone": "z2", "tier": "web"},
}
SECRET = "s3cr3t-console-value-9131"
SECRET_SCRIPT = 'echo "region=$REGION"; echo "token=$TOKEN"'
PLAYBOOK = """
- name: greet
  hosts: all
  gather_facts: false
  tasks:
    - name: say it
      ansible.builtin.debug:
        msg: "greeting={{ greeting }} count={{ count }} first={{ colors[0] }}"
"""


class World:
    def __init__(self, server: KnmProcess, kube: KubeStandin, database_url: str) -> None:
        self.server = server
        self.kube = kube
        self.database_url = database_url
        self.ids: dict[str, int] = {}


def _created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, ssh_fleet: SshFleet
) -> Iterator[World]:
    """``knm serve`` with a static cluster of the three sshd nodes (labelled, its default
    credential the fleet's user), the Kubernetes stand-in as a cluster, a viewer, and a script,
    a playbook and a workflow of the test's own."""
    proc = KnmProcess(tmp_path_factory.mktemp("console-run"), knm_database_url, ["serve"], {})
    kube = standin()
    proc.start()
    try:
        here = World(proc, kube, knm_database_url)
        with api(proc, login_token(proc, "admin", TEST_ADMIN_PASSWORD)) as admin:
            credential = _created(
                admin.post(
                    "/credentials",
                    json={
                        "name": "run-fleet",
                        "username": ssh_fleet.username,
                        "auth_type": "password",
                        "password": ssh_fleet.password,
                    },
                )
            )
            here.ids["credential"] = credential["id"]
            nodes = [
                {"name": n.name, "address": n.address, "port": n.port, "labels": LABELS[n.name]}
                for n in ssh_fleet.nodes
            ]
            _created(
                admin.post(
                    "/clusters",
                    json={
                        "name": FLEET,
                        "kind": "static",
                        "nodes": nodes,
                        "default_credential_id": credential["id"],
                    },
                )
            )
            _created(
                admin.post(
                    "/clusters",
                    json={
                        "name": KUBE,
                        "kind": "kubernetes",
                        "kubeconfig": kube.kubeconfig(),
                        "max_unavailable": 3,
                    },
                )
            )
            _created(
                admin.post(
                    "/users", json={"username": VIEWER[0], "password": VIEWER[1], "role": "viewer"}
                )
            )
            here.ids["script"] = _created(
                admin.post(
                    "/automation/scripts",
                    json={
                        "name": "console-secret",
                        "description": "prints its parameters",
                        "content": SECRET_SCRIPT,
                        "language": "shell",
                        "parameters": [
                            {"name": "TOKEN", "required": True, "secret": True},
                            {"name": "REGION", "default": "eu", "pattern": "[a-z]+"},
                        ],
                    },
                )
            )["id"]
            here.ids["playbook"] = _created(
                admin.post(
                    "/automation/ansible/playbooks",
                    json={"name": "console-greet", "content": PLAYBOOK, "category": "test"},
                )
            )["id"]
            here.ids["workflow"] = _created(
                admin.post(
                    "/automation/workflows",
                    json={
                        "name": "console-roll",
                        "description": "labels each node, one batch at a time",
                        "definition": {
                            "parameters": [
                                {"name": "note", "required": True},
                                {"name": "spare", "type": "integer", "default": "2"},
                            ],
                            "strategy": {"mode": "rolling", "batch_size": 1},
                            "steps": [
                                {
                                    "id": "mark",
                                    "type": "k8s",
                                    "action": "label",
                                    "params": {"labels": {"note": "{{ params.note }}"}},
                                }
                            ],
                        },
                    },
                )
            )["id"]
        yield here
    finally:
        proc.stop()
        kube.stop()


@pytest.fixture(scope="module")
def server(world: World) -> KnmProcess:
    return world.server


def _finished(admin: httpx.Client, task_id: str) -> dict[str, Any]:
    end = time.monotonic() + 2 * WAIT
    while True:
        data = admin.get(f"/tasks/{task_id}").json()["data"]
        if data["status"] in ("completed", "failed", "cancelled"):
            return data
        assert time.monotonic() < end, data
        time.sleep(0.3)


def _shot(console: Console, name: str) -> None:
    """A screenshot of the whole page, however long the form."""
    driver = console.driver
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], height + 140))
    try:
        console.shot(name)
    finally:
        driver.set_window_size(size["width"], size["height"])


def _task_id(console: Console) -> str:
    console.wait(lambda d: "#/tasks/" in d.current_url)
    return console.driver.current_url.split("#/tasks/")[1]


def _task_count(admin: httpx.Client) -> int:
    return admin.get("/tasks", params={"page_size": 1}).json()["data"]["total"]


def _open_run(console: Console, kind: str = "command", cluster: str = FLEET) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    console.open("#/run")
    console.find("#run-form")
    console.choose("#run-cluster", cluster)
    console.wait(lambda d: "3 nodes" in console.find("#node-note").text or cluster != FLEET)
    if kind != "command":
        console.find(f"#kind-{kind}").click()
    console.wait(lambda d: console.find("#run-what").get_attribute("data-ready") == kind)


def _preview(console: Console) -> list[str]:
    """The preview's node names once it answered for what the field holds now."""
    typed = console.find("#run-selector").get_attribute("value").strip()
    cluster = console.find("#run-cluster").get_attribute("value")

    def answered(_: Any) -> bool:
        preview = console.find("#selector-preview")
        return (
            preview.get_attribute("data-state") in ("ready", "error")
            and preview.get_attribute("data-selector") == typed
            and preview.get_attribute("data-cluster") == cluster
        )

    console.wait(answered)
    names = [li.get_attribute("data-node") for li in console.all("#selector-preview li[data-node]")]
    # Each line of the list is a node, and its text starts with the node's name.
    lines = console.find("#selector-preview").text.splitlines() if names else []
    assert [line.split(" ")[0] for line in lines] == names
    return names


def _type_selector(console: Console, text: str) -> None:
    field = console.find("#run-selector")
    field.clear()
    field.send_keys(text)


@pytest.mark.timeout(300)
def test_a_label_selector_previews_exactly_the_matching_nodes_and_runs_on_them(
    console: Console, admin: httpx.Client
) -> None:
    _open_run(console)
    console.find("#scope-selector").click()
    assert "Type a label selector" in console.find("#selector-note").text
    for selector, expected in (
        ("zone=z1", ["node1", "node2"]),
        ("tier=web", ["node1", "node3"]),
        ("zone=z1,tier!=db", ["node1"]),
        ("tier in (db,web), zone notin (z1)", ["node3"]),
    ):
        _type_selector(console, selector)
        assert _preview(console) == expected, selector
        served = admin.get(f"/clusters/{FLEET}/nodes", params={"selector": selector})
        assert [n["name"] for n in served.json()["data"]["nodes"]] == expected
        assert f"{len(expected)} node" in console.find("#selector-note").text
    # As it is typed, key by key, the preview follows the last text only.
    field = console.find("#run-selector")
    field.clear()
    field.send_keys("tier=")
    field.send_keys("db")
    assert _preview(console) == ["node2"]
    _shot(console, "run-selector")
    # A selector the parser refuses shows its words, not an empty list.
    _type_selector(console, "zone in (z1")
    assert _preview(console) == []
    refusal = console.find("#selector-problem .problem").text
    assert "422" in refusal and "selector" in refusal.lower()
    _shot(console, "run-selector-invalid")
    # One that matches nothing says so.
    _type_selector(console, "zone=nowhere")
    assert _preview(console) == []
    assert "No node" in console.find("#selector-note").text
    assert console.all("#selector-problem .problem") == []
    # The preview is what runs.
    _type_selector(console, "tier=web")
    assert _preview(console) == ["node1", "node3"]
    console.find("#run-command").send_keys("echo selected-by-label")
    console.find("#run-submit").click()
    task = _finished(admin, _task_id(console))
    assert task["status"] == "completed", task
    assert task["target_nodes"] == ["node1", "node3"]
    console.wait(lambda d: len(console.cells("success")) == 2)
    assert console.severe_logs() == []


@pytest.mark.timeout(300)
def test_a_script_with_a_secret_parameter_runs_and_the_secret_is_kept_out_of_page_and_storage(
    console: Console, admin: httpx.Client, world: World
) -> None:
    _open_run(console, "script")
    console.choose("#run-script", str(world.ids["script"]))
    secret = console.find("#param-TOKEN")
    assert secret.get_attribute("type") == "password"
    region = console.find("#param-REGION")
    assert region.get_attribute("placeholder") == "default: eu"
    assert "secret" in console.find(".param[data-param='TOKEN']").text
    assert "*" in console.find("label[for='param-TOKEN']").text
    # A required parameter left empty is named at its field, and nothing runs.
    before = _task_count(admin)
    console.find("#run-submit").click()
    assert "TOKEN is required" in console.find("#param-TOKEN-problem .problem").text
    # A value the server refuses (REGION's pattern) is shown at its parameter.
    secret.send_keys(SECRET)
    region.send_keys("EU-1")
    console.find("#run-submit").click()
    refusal = console.find("#param-REGION-problem .problem").text
    assert "REGION does not match" in refusal
    assert "422" in console.find("#run-problem .problem").text
    assert _task_count(admin) == before
    assert SECRET not in console.driver.page_source  # typed, yet never an attribute or text
    _shot(console, "run-script-refused")
    region.clear()
    region.send_keys("us")
    _shot(console, "run-script")
    console.find("#run-submit").click()
    task_id = _task_id(console)
    task = _finished(admin, task_id)
    assert task["status"] == "completed", task
    console.wait(lambda d: len(console.cells("success")) == 3)
    console.find("#grid .cell[data-node='node1']").click()
    console.wait(lambda d: "token=********" in console.find("#output-stdout").text)
    assert "region=us" in console.find("#output-stdout").text
    # Not in the page, not in what the API answers, not in the task as stored.
    assert SECRET not in console.driver.page_source
    assert SECRET not in console.driver.execute_script(
        "return JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + location.href"
    )
    assert SECRET not in admin.get(f"/tasks/{task_id}").text
    assert SECRET not in admin.get(f"/tasks/{task_id}/events").text

    async def stored() -> str:
        conn = await asyncpg.connect(world.database_url)
        try:
            return await conn.fetchval(
                "SELECT row_to_json(t)::text FROM tasks t WHERE task_id = $1", task_id
            )
        finally:
            await conn.close()

    row = asyncio.run(stored())
    assert '"TOKEN": "********"' in row or '"TOKEN":"********"' in row
    assert SECRET not in row
    assert console.severe_logs() == []


@pytest.mark.timeout(360)
def test_a_playbook_runs_with_extra_vars_written_as_yaml(
    console: Console, admin: httpx.Client, world: World
) -> None:
    _open_run(console, "playbook")
    console.choose("#run-playbook", str(world.ids["playbook"]))
    console.find("#scope-some").click()
    console.choose("#run-nodes", "node2")
    console.find("#run-extra-vars").send_keys(
        "# what to say\ngreeting: from the console\ncount: 3\ncolors:\n  - teal\n  - red\n"
    )
    _shot(console, "run-playbook")
    console.find("#run-submit").click()
    task_id = _task_id(console)
    assert task_id.startswith("ansible-exec-")
    task = _finished(admin, task_id)
    assert task["status"] == "completed", task
    assert task["target_nodes"] == ["node2"]
    output = admin.get(f"/automation/ansible/status/{task_id}").json()["data"]["output"]
    assert "greeting=from the console count=3 first=teal" in output
    assert console.severe_logs() == []


@pytest.mark.timeout(240)
def test_extra_vars_that_cannot_be_read_or_are_refused_show_an_error_at_the_field(
    console: Console, admin: httpx.Client
) -> None:
    _open_run(console, "playbook")
    before = _task_count(admin)
    field = console.find("#run-extra-vars")
    field.send_keys("greeting: hello\ncolors: [teal, red\n")
    console.find("#run-submit").click()
    shown = console.find("#extra-vars-problem .problem").text
    assert "line 2" in shown and "JSON" in shown
    assert field.get_attribute("aria-invalid") == "true"
    _shot(console, "run-playbook-bad-vars")
    # Broken JSON names its line too, as the user types (no submit).
    field.clear()
    field.send_keys('{"greeting": "hi",\n "count": }')
    console.wait(lambda d: "line 2" in console.find("#extra-vars-problem").text)
    # Read, but refused by the server (Ansible's own variables): shown at the field as well.
    field.clear()
    field.send_keys("ansible_user: root\n")
    console.find("#run-submit").click()
    refused = console.find("#extra-vars-problem .problem").text
    assert "422" in refused and "ansible_user" in refused
    assert console.driver.current_url.endswith("#/run")
    assert _task_count(admin) == before
    assert console.severe_logs() == []


@pytest.mark.timeout(300)
def test_a_kubernetes_action_cordons_a_node_of_the_stand_in(
    console: Console, admin: httpx.Client, world: World
) -> None:
    assert not world.kube.node("w2").unschedulable
    _open_run(console, "k8s", cluster=KUBE)
    console.wait(lambda d: "4 nodes" in console.find("#node-note").text)
    assert console.find("#run-credential-row").is_displayed() is False
    console.choose("#run-action", "drain")
    for name in ("dry_run", "force", "grace_period", "on_timeout", "wait_for_lock"):
        console.find(f"#k8s-{name}")
    assert console.find("#k8s-dry_run").is_selected()  # a drain starts as a dry run
    _shot(console, "run-k8s-drain")
    console.choose("#run-action", "cordon")
    console.find("#scope-selector").click()
    _type_selector(console, "pool=a")
    assert _preview(console) == ["w1", "w2"]
    console.find("#scope-some").click()
    console.choose("#run-nodes", "w2")
    _shot(console, "run-k8s")
    console.find("#run-submit").click()
    task_id = _task_id(console)
    assert task_id.startswith("k8s-exec-")
    task = _finished(admin, task_id)
    assert task["status"] == "completed", task
    assert world.kube.node("w2").unschedulable
    assert not world.kube.node("w1").unschedulable
    # Bad params are named at their place before anything runs.
    console.open("#/run?kind=k8s&cluster=kube")
    console.wait(lambda d: console.find("#run-what").get_attribute("data-ready") == "k8s")
    console.choose("#run-action", "label")
    console.find("#k8s-labels").send_keys("no-equals-sign")
    console.find("#run-submit").click()
    assert "write key=value" in console.find("#k8s-params-problem .problem").text
    # The stand-in back as it was.
    undo = admin.post(
        "/automation/k8s/execute",
        json={"cluster_name": KUBE, "target_nodes": ["w2"], "action": "uncordon"},
    )
    assert undo.status_code == 200, undo.text
    assert _finished(admin, undo.json()["data"]["task_id"])["status"] == "completed"
    assert console.severe_logs() == []


@pytest.mark.timeout(300)
def test_a_workflow_shows_its_parameters_and_rolling_strategy_and_runs_with_them(
    console: Console, admin: httpx.Client, world: World
) -> None:
    _open_run(console, "workflow", cluster=KUBE)
    console.choose("#run-workflow", str(world.ids["workflow"]))
    console.wait(lambda d: console.all("#param-note"))
    strategy = console.find("#workflow-strategy").text
    assert "rolling" in strategy and "1 node(s) per batch" in strategy
    assert "3 node(s) out at once" in strategy  # the cluster's max_unavailable
    assert console.find("#param-spare").get_attribute("type") == "number"
    assert console.find("#param-spare").get_attribute("placeholder") == "default: 2"
    console.find("#scope-selector").click()
    _type_selector(console, "node-role.kubernetes.io/worker")
    assert _preview(console) == ["w1", "w2", "w3"]
    console.find("#param-spare").send_keys("1.5")
    console.find("#run-submit").click()
    assert "is required" in console.find("#param-note-problem .problem").text
    assert "must be a whole number" in console.find("#param-spare-problem .problem").text
    console.find("#param-spare").clear()
    console.find("#param-note").send_keys("from-console")
    assert console.all("#param-note-problem .problem") == []  # gone once the field changed
    # Another cluster: the strategy shows that cluster's budget; what was typed stays.
    console.choose("#run-cluster", FLEET)
    console.wait(lambda d: "out at once" not in console.find("#workflow-strategy").text)
    assert _preview(console) == []
    console.choose("#run-cluster", KUBE)
    console.wait(lambda d: "3 node(s) out at once" in console.find("#workflow-strategy").text)
    assert _preview(console) == ["w1", "w2", "w3"]
    assert console.find("#param-note").get_attribute("value") == "from-console"
    console.choose("#run-credential", str(world.ids["credential"]))
    _shot(console, "run-workflow")
    console.find("#run-submit").click()
    task_id = _task_id(console)
    assert task_id.startswith("workflow-exec-")
    task = _finished(admin, task_id)
    assert task["status"] == "completed", task
    assert task["target_nodes"] == ["w1", "w2", "w3"]
    for node in ("w1", "w2", "w3"):
        assert world.kube.node(node).labels.get("note") == "from-console"
    assert console.severe_logs() == []


@pytest.mark.timeout(180)
def test_the_command_form_and_a_viewer_who_cannot_reach_the_page(
    console: Console, admin: httpx.Client
) -> None:
    _open_run(console)
    console.find("#run-command").send_keys("uptime")
    console.find("#run-options summary").click()
    _shot(console, "run-command")
    # A limit the server refuses is shown at the limits, and nothing runs.
    before = _task_count(admin)
    console.find("#run-timeout").send_keys("-1")
    console.find("#run-submit").click()
    shown = console.find("#options-problem .problem").text
    assert "422" in shown and "timeout must be greater than 0" in shown
    assert _task_count(admin) == before
    console.login(*VIEWER)
    assert console.all("#nav-run") == []
    console.open("#/run")
    console.wait(lambda d: "Not found" in console.find("main h1").text)
    assert console.all("#run-form") == [] and console.all("#run-submit") == []
    _shot(console, "run-viewer")


READ_VARS = """
const [texts, done] = [arguments[0], arguments[arguments.length - 1]];
import(new URL("console/run-vars.js", document.baseURI).href).then(({ parseVars }) => {
  done(texts.map((text) => {
    try {
      return { value: parseVars(text) };
    } catch (error) {
      return { line: error.line, message: error.message };
    }
  }));
});
"""

#: Extra vars as written, and what Ansible's YAML reads in them.
READABLE = [
    (
        "# comment\nserver: pool.ntp.org  # trailing\nretries: 3\nratio: 0.5\nenabled: no\n"
        "empty:\nmode: '0644'\nquoted: \"a\\tb\"\nurl: http://x.example/a#b\n",
        {
            "server": "pool.ntp.org",
            "retries": 3,
            "ratio": 0.5,
            "enabled": False,
            "empty": None,
            "mode": "0644",
            "quoted": "a\tb",
            "url": "http://x.example/a#b",
        },
    ),
    (
        "nested:\n  a: 1\n  b:\n    - x\n    - name: y\n      v: [1, 2]\ncompact:\n- p\n- q\n",
        {"nested": {"a": 1, "b": ["x", {"name": "y", "v": [1, 2]}]}, "compact": ["p", "q"]},
    ),
    ('{"a": {"b": [1, "two"]}}', {"a": {"b": [1, "two"]}}),
    ("", {}),
]
#: Text the reader refuses, and the line it names.
REFUSED = [
    ('{"a": 1,\n "b": }', 2, "JSON"),
    ("a: 1\n  b: 2", 2, "indentation"),
    ("a: 1\na: 2", 2, "duplicate key a"),
    ("- a\n- b", 1, "mapping"),
    ("a: b: c", 1, "quoted"),
    ("text: |\n  many\n  lines", 1, "block scalars"),
    ("base: &b 1", 1, "anchors"),
    ("mode: 0644", 1, "different number"),
    ("list: [a, b]", 1, "JSON"),
    ("a: 1\n\tb: 2", 2, "tabs"),
]


@pytest.mark.timeout(120)
def test_extra_vars_are_read_as_ansible_would_or_refused_at_their_line(console: Console) -> None:
    console.open()
    console.find("#view")
    texts = [text for text, _ in READABLE] + [text for text, _, _ in REFUSED]
    answers = console.driver.execute_async_script(READ_VARS, texts)
    for (text, expected), answer in zip(READABLE, answers, strict=False):
        assert answer == {"value": expected}, text
        assert (yaml.safe_load(text) or {}) == expected, text  # what Ansible's loader reads
    for (text, line, words), answer in zip(REFUSED, answers[len(READABLE) :], strict=True):
        assert answer["line"] == line and words in answer["message"], (text, answer)


@pytest.mark.timeout(180)
def test_a_kind_whose_executor_is_switched_off_cannot_be_picked(
    console: Console, admin: httpx.Client
) -> None:
    off = admin.put("/features/automation/k8s", json={"enabled": False})
    assert off.status_code == 200, off.text
    try:
        assert admin.get("/features").json()["data"]["automation"]["k8s_enabled"] is False
        _open_run(console)
        choice = console.find("#kind-k8s")
        assert not choice.is_enabled()
        assert "(off)" in choice.find_element("xpath", "..").text
        assert console.find("#kind-script").is_enabled()
    finally:
        on = admin.put("/features/automation/k8s", json={"enabled": True})
        assert on.status_code == 200, on.text
    assert console.severe_logs() == []
