"""A workflow task's page in a real browser: its steps as a DAG, the timeline of its batches and
its approval gates, against a real ``knm serve``, the sshd fleet and the Kubernetes stand-in;
and the search box of a node's output.

The workflow is the builtin "Node maintenance" with an approval step between the drain and the
upgrade: the upgrade is ansible in check mode running ``/bin/true``, the reboot asks the stand-in
to simulate one. Nothing on this machine is upgraded, rebooted, cordoned or drained."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import standin
from knm.testing.process import KnmProcess
from knm.testing.sshfleet import SshFleet

from .conftest import WAIT, Console, api, login_token

pytestmark = pytest.mark.slow

NODES = ["node1", "node2"]
WORKER = "node-role.kubernetes.io/worker"
VIEWER = ("gazer", "gazer-passw0rd")
OPERATOR = ("hands", "hands-passw0rd")
GATE_MESSAGE = "Drained: upgrade and reboot it? <b>really</b>"
UPGRADE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: pretend to upgrade
      ansible.builtin.command: /bin/true
      changed_when: false
"""


def gated(maintenance: dict[str, Any]) -> dict[str, Any]:
    """The builtin maintenance definition with an approval gate after each batch's drain."""
    definition = copy.deepcopy(maintenance)
    steps = definition["steps"]
    at = next(i for i, step in enumerate(steps) if step["id"] == "drain") + 1
    steps.insert(
        at,
        {
            "id": "approve",
            "name": "Approve the upgrade",
            "type": "approval",
            "message": GATE_MESSAGE,
            "depends_on": ["drain"],
        },
    )
    next(step for step in steps if step["id"] == "upgrade")["depends_on"] = ["approve"]
    return definition


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, ssh_fleet: SshFleet
) -> Iterator[KnmProcess]:
    """``knm serve`` with a viewer and an operator, the fleet's credential, a static cluster of
    the fleet (for plain commands), the pretend upgrade and the gated maintenance workflow."""
    proc = KnmProcess(tmp_path_factory.mktemp("workflow-page"), knm_database_url, ["serve"], {})
    proc.start()
    try:
        with api(proc, login_token(proc, "admin", TEST_ADMIN_PASSWORD)) as admin:
            for username, password, role in (
                (*VIEWER, "viewer"),
                (*OPERATOR, "operator"),
            ):
                made = admin.post(
                    "/users", json={"username": username, "password": password, "role": role}
                )
                assert made.status_code == 201, made.text
            # Kubernetes nodes carry no SSH port: the credential's applies.
            credential = admin.post(
                "/credentials",
                json={
                    "name": "workflow-page",
                    "username": ssh_fleet.username,
                    "auth_type": "password",
                    "password": ssh_fleet.password,
                    "port": ssh_fleet.port,
                },
            )
            assert credential.status_code == 201, credential.text
            nodes = [
                {"name": n.name, "address": n.address, "port": n.port} for n in ssh_fleet.nodes
            ]
            cluster = admin.post(
                "/clusters",
                json={
                    "name": "fleet",
                    "kind": "static",
                    "nodes": nodes,
                    "default_credential_id": credential.json()["data"]["id"],
                },
            )
            assert cluster.status_code == 201, cluster.text
            playbook = admin.post(
                "/automation/ansible/playbooks",
                json={"name": "pretend upgrade", "content": UPGRADE, "category": "test"},
            )
            assert playbook.status_code == 201, playbook.text
            builtin = admin.get(
                "/automation/workflows", params={"q": "Node maintenance", "is_builtin": "true"}
            ).json()["data"]["workflows"][0]
            assert builtin["name"] == "Node maintenance"
            builtin = admin.get(f"/automation/workflows/{builtin['id']}").json()["data"]
            workflow = admin.post(
                "/automation/workflows",
                json={
                    "name": "Gated maintenance",
                    "description": "Node maintenance with an approval before each upgrade",
                    "definition": gated(builtin["definition"]),
                },
            )
            assert workflow.status_code == 201, workflow.text
        proc.setup = {  # type: ignore[attr-defined]
            "credential_id": credential.json()["data"]["id"],
            "workflow_id": workflow.json()["data"]["id"],
        }
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def kube(ssh_fleet: SshFleet) -> Iterator[KubeStandin]:
    """A cluster of its own for each test: the fleet's nodes as Kubernetes workers, one web
    replica on each."""
    kube = standin(populate=False)
    for name, node in zip(NODES, ssh_fleet.nodes, strict=False):
        kube.add_node(name, labels={WORKER: ""}, addresses={"InternalIP": node.address})
    for i, name in enumerate(NODES, start=1):
        kube.add_pod("default", f"web-{i}", name, labels={"app": "web"}, owner_name="web")
    try:
        yield kube
    finally:
        kube.stop()


@pytest.fixture
def cluster(
    admin: httpx.Client, kube: KubeStandin, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = f"k-{request.node.name.removeprefix('test_')[:30].replace('_', '-').strip('-')}"
    made = admin.post(
        "/clusters",
        json={
            "name": name,
            "kind": "kubernetes",
            "kubeconfig": kube.kubeconfig(),
            "max_unavailable": 1,
        },
    )
    assert made.status_code == 201, made.text
    yield name
    admin.delete(f"/clusters/{name}")


def reboot_command(kube: KubeStandin, fleet: SshFleet) -> str:
    """What a node runs to "reboot": ask the stand-in to reboot the node this SSH session is on
    (as tests/plugins/workflows/test_maintenance.py does). Base64 keeps the code clear of
    quoting."""
    names = {node.address: name for name, node in zip(NODES, fleet.nodes, strict=False)}
    code = (
        "import os, urllib.request as u\n"
        f"name = {names!r}[os.environ['SSH_CONNECTION'].split()[2]]\n"
        f"u.urlopen(u.Request('{kube.url}/_standin/nodes/' + name + '/reboot', method='POST'))\n"
    )
    encoded = base64.b64encode(code.encode()).decode()
    return f"python3 -c 'import base64; exec(base64.b64decode(\"{encoded}\"))'"


def maintain(
    admin: httpx.Client,
    server: KnmProcess,
    cluster: str,
    kube: KubeStandin,
    fleet: SshFleet,
    nodes: list[str],
) -> str:
    setup = server.setup  # type: ignore[attr-defined]
    answer = admin.post(
        "/automation/workflows/execute",
        json={
            "workflow_id": setup["workflow_id"],
            "cluster_name": cluster,
            "target_nodes": nodes,
            "credential_id": setup["credential_id"],
            "parameters": {
                "upgrade_playbook": "pretend upgrade",
                "upgrade_args": "--check",
                "reboot_command": reboot_command(kube, fleet),
                "drain_timeout": "60",
            },
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


def wait_status(
    admin: httpx.Client, task_id: str, wanted: set[str], deadline: float = 180
) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while True:
        data = admin.get(f"/tasks/{task_id}").json()["data"]
        if data["status"] in wanted:
            return data
        assert time.monotonic() < end, data
        time.sleep(0.3)


def waiting_gate(admin: httpx.Client, task_id: str, batch: int) -> None:
    """Until the server says the gate of ``batch`` is waiting."""

    def waiting(status: dict[str, Any]) -> bool:
        return any(
            s["id"] == "approve" and s["batch"] == batch and s["status"] == "running"
            for s in status["steps"]
        )

    end = time.monotonic() + 180
    while not waiting(status := admin.get(f"/tasks/{task_id}").json()["data"]):
        assert status["status"] == "running" and time.monotonic() < end, status
        time.sleep(0.3)


def step_states(console: Console) -> dict[str, str]:
    return {
        g.get_attribute("data-step"): g.get_attribute("data-state")
        for g in console.all("#dag svg g.step")
    }


def show(console: Console, css: str) -> None:
    console.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})", console.find(css)
    )


@pytest.mark.timeout(600)
def test_an_operator_approves_each_gate_of_the_maintenance_roll_from_the_page_and_it_finishes(
    console: Console,
    admin: httpx.Client,
    server: KnmProcess,
    cluster: str,
    kube: KubeStandin,
    ssh_fleet: SshFleet,
) -> None:
    boots = {name: kube.node(name).info.boot_id for name in NODES}
    console.login(*OPERATOR)
    task_id = maintain(admin, server, cluster, kube, ssh_fleet, NODES)
    console.open(f"#/tasks/{task_id}")
    # Every step of the definition is drawn, with its dependencies, before anything ran.
    console.wait(lambda d: len(step_states(console)) == 8)
    assert console.all("#dag svg path.edge[data-from='drain'][data-to='approve']")
    assert console.all("#dag svg path.edge[data-from='approve'][data-to='upgrade']")
    comments = {0: "node1 looks fine <script>window.__owned=1</script>", 1: "go on with node2"}
    for batch, node in enumerate(NODES):
        gate = console.find(f"#gates .gate[data-gate='approve'][data-batch='{batch}']")
        # The gate's message is the definition's, as text; the nodes it is about are named.
        assert GATE_MESSAGE in gate.text and f"nodes: {node}" in gate.text
        assert console.all("#gates .gate b") == []
        console.wait(lambda d: step_states(console).get("approve") == "waiting")
        assert step_states(console)["drain"] == "completed"
        assert step_states(console)["upgrade"] == "pending"
        # The server agrees the roll waits here, with the node cordoned and drained.
        waiting_gate(admin, task_id, batch)
        assert kube.node(node).unschedulable
        if batch == 0:
            show(console, "#gates .gate")
            console.shot("workflow-gate")
        gate.find_element("css selector", ".gate-comment").send_keys(comments[batch])
        gate.find_element("css selector", ".gate-approve").click()
        # The step event closes the gate; the DAG moves on.
        console.wait(
            lambda d, b=batch: not console.all(f"#gates .gate[data-batch='{b}']"), timeout=WAIT
        )
    console.wait(lambda d: "completed" in console.find("#task-status").text, timeout=300)
    # What the server did: the roll completed on both nodes, each rebooted (simulated) and given
    # back, and each decision kept with its comment and who made it.
    status = wait_status(admin, task_id, {"completed", "failed", "cancelled"})
    assert status["status"] == "completed", status
    assert [r["status"] for r in status["results"]] == ["success", "success"]
    for name in NODES:
        assert kube.node(name).info.boot_id != boots[name]
        assert not kube.node(name).unschedulable
    approvals = {s["batch"]: s for s in status["steps"] if s["id"] == "approve"}
    for batch, comment in comments.items():
        outputs = approvals[batch]["outputs"]
        assert outputs == {"decision": "approved", "by": OPERATOR[0], "comment": comment}
    audit = admin.get("/audit", params={"action": "workflow.approve", "target": task_id})
    assert audit.status_code == 200, audit.text
    entries = audit.json()["data"]["entries"]
    assert len(entries) == 2 and {e["username"] for e in entries} == {OPERATOR[0]}
    # What the page shows at the end: every step completed in the last batch and in the first.
    console.wait(lambda d: set(step_states(console).values()) == {"completed"})
    show(console, "#dag")
    console.shot("workflow-dag")
    console.choose("#dag-batch", "0")
    console.wait(lambda d: set(step_states(console).values()) == {"completed"})
    assert "batch 1 of 2: node1" in console.find("#dag-note").text
    rows = console.all("#timeline .tl-row")
    assert [r.get_attribute("data-state") for r in rows] == ["completed", "completed"]
    assert [r.find_element("css selector", ".tl-nodes").text for r in rows] == NODES
    assert all("–" in r.find_element("css selector", ".tl-time").text for r in rows)
    decisions = console.find("#decisions").text
    assert f"approved by {OPERATOR[0]}: " in decisions and "go on with node2" in decisions
    assert "<script>window.__owned=1</script>" in decisions
    assert console.driver.execute_script("return window.__owned") is None
    show(console, "#timeline")
    console.shot("workflow-timeline")
    # A step opens its step task's node grid, which links to that task's page.
    console.find("#dag svg g.step[data-step='upgrade']").click()
    cell = console.find("#step-grid .cell[data-node='node1']")
    assert cell.get_attribute("data-state") == "success"
    child = next(s for s in status["steps"] if s["id"] == "upgrade" and s["batch"] == 0)
    assert cell.get_attribute("href").endswith(f"#/tasks/{child['task_id']}")
    console.shot("workflow-step")
    cell.click()
    console.wait(lambda d: child["task_id"] in console.find("#task-id").text)
    assert console.severe_logs() == []


@pytest.mark.timeout(400)
def test_a_rejected_gate_ends_the_workflow_as_the_api_says_and_the_node_is_given_back(
    console: Console,
    admin: httpx.Client,
    server: KnmProcess,
    cluster: str,
    kube: KubeStandin,
    ssh_fleet: SshFleet,
) -> None:
    boot = kube.node("node1").info.boot_id
    console.login("admin", TEST_ADMIN_PASSWORD)
    task_id = maintain(admin, server, cluster, kube, ssh_fleet, ["node1"])
    console.open(f"#/tasks/{task_id}")
    gate = console.find("#gates .gate[data-gate='approve']")
    gate.find_element("css selector", ".gate-comment").send_keys("not during the sale")
    gate.find_element("css selector", ".gate-reject").click()
    console.wait(lambda d: "failed" in console.find("#task-status").text, timeout=240)
    status = wait_status(admin, task_id, {"completed", "failed", "cancelled"})
    # The page ends where the API does.
    assert status["status"] == "failed"
    assert console.find("#task-status").text == status["status"]
    steps = {s["id"]: s for s in status["steps"]}
    assert steps["approve"]["status"] == "failed"
    assert steps["approve"]["outputs"] == {
        "decision": "rejected",
        "by": "admin",
        "comment": "not during the sale",
    }
    assert steps["upgrade"]["status"] == steps["reboot"]["status"] == "skipped"
    assert steps["give_back"]["status"] == "completed"
    # Nothing was upgraded or rebooted; the node knm cordoned is given back.
    assert kube.node("node1").info.boot_id == boot
    assert not kube.node("node1").unschedulable
    console.wait(lambda d: step_states(console).get("approve") == "failed")
    shown = step_states(console)
    assert {shown[s] for s in ("upgrade", "reboot", "wait_ready", "uncordon")} == {"skipped"}
    assert shown["give_back"] == "completed"
    console.wait(
        lambda d: "rejected by admin: not during the sale" in console.find("#decisions").text
    )
    assert console.all("#gates .gate") == []
    console.find("#dag svg g.step[data-step='approve']").click()
    assert "rejected by admin: not during the sale" in console.find("#step-error").text
    row = console.find("#timeline .tl-row[data-batch='0']")
    assert row.get_attribute("data-state") == "failed"
    assert "step approve: rejected by admin" in row.text
    audit = admin.get("/audit", params={"action": "workflow.reject", "target": task_id})
    assert len(audit.json()["data"]["entries"]) == 1
    console.shot("workflow-rejected")
    assert console.severe_logs() == []


@pytest.mark.timeout(400)
def test_a_viewer_sees_the_gate_but_no_buttons_and_the_page_follows_the_decision(
    console: Console,
    admin: httpx.Client,
    server: KnmProcess,
    cluster: str,
    kube: KubeStandin,
    ssh_fleet: SshFleet,
) -> None:
    task_id = maintain(admin, server, cluster, kube, ssh_fleet, ["node1"])
    try:
        waiting_gate(admin, task_id, 0)
        console.login(*VIEWER)
        console.open(f"#/tasks/{task_id}")
        gate = console.find("#gates .gate[data-gate='approve']")
        assert GATE_MESSAGE in gate.text
        assert "An operator or an admin approves or rejects" in gate.text
        assert console.all("#gates button") == [] and console.all("#gates textarea") == []
        assert console.all("#task-actions button") == []
        console.wait(lambda d: step_states(console).get("approve") == "waiting")
        console.shot("workflow-gate-viewer")
        # A viewer's answer is refused by the API anyway.
        viewer = api(server, login_token(server, *VIEWER))
        with viewer:
            refused = viewer.post(
                f"/automation/workflows/approve/{task_id}", json={"step_id": "approve"}
            )
        assert refused.status_code == 403
        # An operator decides elsewhere: the viewer's page follows from the WebSocket.
        decided = admin.post(
            f"/automation/workflows/reject/{task_id}",
            json={"step_id": "approve", "comment": "decided elsewhere"},
        )
        assert decided.status_code == 200, decided.text
        console.wait(lambda d: console.all("#gates .gate") == [], timeout=WAIT)
        console.wait(lambda d: "failed" in console.find("#task-status").text, timeout=240)
        console.wait(lambda d: "decided elsewhere" in console.find("#decisions").text)
    finally:
        admin.post(f"/automation/workflows/cancel/{task_id}")
        wait_status(admin, task_id, {"completed", "failed", "cancelled"})
    assert console.severe_logs() == []


# A WebSocket that never connects (injected before the page's own scripts run).
DEAF_SOCKET = """
window.__deafSocket = true;
window.WebSocket = class extends EventTarget {
  constructor() { super(); this.readyState = 0; }
  send() {}
  close() {}
};
window.WebSocket.OPEN = 1;
"""


@pytest.mark.timeout(400)
def test_an_answer_the_api_refuses_is_shown_in_the_gate_and_the_buttons_come_back(
    console: Console,
    admin: httpx.Client,
    server: KnmProcess,
    cluster: str,
    kube: KubeStandin,
    ssh_fleet: SshFleet,
) -> None:
    """The page cannot hear the WebSocket (a socket that never connects stands in for it), so it
    still shows a gate an admin has already answered elsewhere: approving it then is refused by
    the API, and the page says why."""
    task_id = maintain(admin, server, cluster, kube, ssh_fleet, ["node1"])
    driver = console.driver
    deaf = driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": DEAF_SOCKET},
    )
    try:
        waiting_gate(admin, task_id, 0)
        console.login(*OPERATOR)
        console.open(f"#/tasks/{task_id}")
        driver.refresh()
        gate = console.find("#gates .gate[data-gate='approve']")
        assert driver.execute_script("return window.__deafSocket") is True
        decided = admin.post(
            f"/automation/workflows/reject/{task_id}",
            json={"step_id": "approve", "comment": "first answer wins"},
        )
        assert decided.status_code == 200, decided.text
        gate.find_element("css selector", ".gate-approve").click()
        # The API's refusal: the step no longer waits (404), or the roll has already ended (409).
        shown = console.find("#gates .gate .problem").text
        assert (
            shown.startswith("404") and f"step approve of {task_id} is not waiting" in shown
        ) or (shown.startswith("409") and f"workflow {task_id} is already failed" in shown), shown
        assert gate.find_element("css selector", ".gate-approve").is_enabled()
        console.shot("workflow-gate-refused")
        # The rejection elsewhere ended the roll, as the API says.
        ended = wait_status(admin, task_id, {"completed", "failed", "cancelled"})
        assert ended["status"] == "failed"
    finally:
        driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": deaf["identifier"]}
        )
        admin.post(f"/automation/workflows/cancel/{task_id}")  # 409 once it ended
        wait_status(admin, task_id, {"completed", "failed", "cancelled"})


def _execute(admin: httpx.Client, command: str) -> str:
    body = {"cluster_name": "fleet", "target_nodes": ["node1"], "command": command}
    answer = admin.post("/automation/ssh/execute", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


XSS = "<script>window.__owned=1</script><img src=x onerror=window.__owned=2>"


@pytest.mark.timeout(240)
def test_searching_output_highlights_matches_as_text_even_while_it_streams_in(
    console: Console, admin: httpx.Client
) -> None:
    console.login("admin", TEST_ADMIN_PASSWORD)
    # Colored matches, a payload of markup, and (15 s later, long enough on a loaded machine
    # for the query to be typed first) more matches arriving while the page watches.
    colored = "printf 'one \\033[1;31mneedle\\033[0m two NEEDLE\\n'"
    command = (
        f"{colored}; printf '%s needle\\n' '{XSS}'; sleep 15; "
        "for i in 1 2 3; do echo late needle $i; sleep 0.5; done; echo done"
    )
    task_id = _execute(admin, command)
    console.open(f"#/tasks/{task_id}")
    console.find("#grid .cell[data-node='node1']").click()
    console.wait(lambda d: XSS in console.find("#output-stdout").text)
    # A task of another kind has no workflow parts (and no stray text where they would be).
    assert console.all("#workflow") == []
    assert "null" not in console.find("main").text.split("\n")
    search = console.find("#output-search")
    search.send_keys("needle")
    count = console.find("#search-count")
    console.wait(lambda d: count.get_attribute("data-total") == "3")
    assert count.text == "1 of 3"
    marks = console.all("#output-stdout mark.hit")
    assert [m.text.lower() for m in marks] == ["needle"] * 3
    # The colored one keeps its color: the mark sits inside the color's span.
    assert console.all("#output-stdout span.fg-1.ansi-bold > mark.hit.current")
    # The later lines arrive while the query stands: their matches join, the current one stays.
    console.wait(lambda d: "done" in console.find("#output-stdout").text, timeout=WAIT)
    console.wait(lambda d: count.get_attribute("data-total") == "6")
    assert count.text == "1 of 6"
    console.find("#search-next").click()
    assert count.text == "2 of 6"
    console.find("#search-prev").click()
    console.find("#search-prev").click()
    assert count.text == "6 of 6"
    current = console.all("#output-stdout mark.hit.current")
    assert len(current) == 1 and current[0].text == "needle"
    assert "late needle 3" in console.driver.execute_script(
        "return arguments[0].parentNode.textContent", current[0]
    )
    console.shot("output-search")
    # A query of markup finds the markup, as text.
    search.clear()
    search.send_keys("<script>")
    console.wait(lambda d: count.get_attribute("data-total") == "1")
    assert console.find("#output-stdout mark.hit").text == "<script>"
    assert console.all("#output-stdout script") == [] and console.all("#output-stdout img") == []
    assert console.driver.execute_script("return window.__owned") is None
    search.clear()
    search.send_keys("no such thing")
    console.wait(lambda d: count.text == "no match")
    assert console.all("#output-stdout mark") == []
    assert XSS in console.find("#output-stdout").text
    assert console.severe_logs() == []


SPLIT_MATCH = """
const done = arguments[arguments.length - 1];
Promise.all([
  import(new URL("console/ansi.js", document.baseURI).href),
  import(new URL("console/search.js", document.baseURI).href),
]).then(([{ AnsiWriter }, { OutputSearch }]) => {
  const pre = document.createElement("pre");
  document.body.append(pre);
  const writer = new AnsiWriter(pre);
  const search = new OutputSearch([pre]);
  search.search("abcdef");
  const many = document.createElement("pre");
  const wide = new OutputSearch([many]);
  new AnsiWriter(many).write("x ".repeat(6000));
  wide.search("x");
  const capped = [wide.count.textContent, many.querySelectorAll("mark.hit").length];
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  // A match cut between chunks (each searched as it came) and across a color, then another.
  const chunks = ["xx ab", "c\\u001b[32mde", "f\\u001b[0m yy abcdef"];
  (async () => {
    for (const chunk of chunks) {
      writer.write(chunk);
      search.appended(pre);
      await frame();
    }
    const marks = [...pre.querySelectorAll("mark.hit")].map((m) => [m.parentNode.nodeName, m.textContent]);
    done({ marks, count: search.count.textContent, text: pre.textContent, capped });
    pre.remove();
  })();
});
"""


@pytest.mark.timeout(120)
def test_a_match_cut_between_chunks_and_colors_is_one_match_and_marks_are_capped(
    console: Console,
) -> None:
    console.open()
    console.find("#view")
    found = console.driver.execute_async_script(SPLIT_MATCH)
    assert found["text"] == "xx abcdef yy abcdef"
    assert found["count"] == "1 of 2"
    assert found["marks"] == [
        ["PRE", "ab"],
        ["PRE", "c"],
        ["SPAN", "de"],
        ["SPAN", "f"],
        ["PRE", "abcdef"],
    ]
    # A query matching everywhere marks the first 5,000 and says there are more.
    assert found["capped"] == ["1 of 5000+", 5000]


# A roll stopped at its window's end, and one waiting for its window to open, as the status
# answer tells them (docs/api.md, "Maintenance windows"): the page's timeline names the reason.
STOPPED_ROLLS = """
const [workflowId, done] = [arguments[0], arguments[arguments.length - 1]];
import(new URL("console/workflow.js", document.baseURI).href).then(async ({ WorkflowPanel }) => {
  const ids = ["cordon", "drain", "approve", "upgrade", "reboot", "wait_ready", "uncordon", "give_back"];
  const at = (s) => `2026-12-05T09:00:${String(s).padStart(2, "0")}Z`;
  const steps = (batch, status) => ids.map((id, i) => ({
    id, name: id, type: id === "approve" ? "approval" : "k8s", batch, status,
    result: status === "completed" ? "success" : null, attempts: status === "pending" ? 0 : 1,
    error: null, task_id: null, nodes: status === "pending" ? [] : [`node${batch + 1}`], outputs: {},
    start_time: status === "pending" ? null : at(i * 2), end_time: status === "pending" ? null : at(i * 2 + 1),
  }));
  const base = {
    kind: "workflow", workflow_id: workflowId, workflow_version: 1, target_nodes: ["node1", "node2"],
    start_time: at(0), steps: [...steps(0, "completed"), ...steps(1, "pending")],
  };
  const closed = "not started: window sunday-night closed; a resume starts at 2026-12-06T01:00:00Z";
  const stopped = new WorkflowPanel({
    ...base, task_id: "workflow-exec-stopped", status: "failed", error: "window_closed", end_time: at(20),
    results: [
      { node: "node1", status: "success", reason: null, message: "all steps done" },
      { node: "node2", status: "failed", reason: "window_closed", message: closed },
    ],
  }, { refresh() {} });
  const waiting = new WorkflowPanel({
    ...base, task_id: "workflow-exec-waiting", status: "running", end_time: null,
    message: "waiting: window sunday-night is closed until 2026-12-06T01:00:00Z",
    results: [{ node: "node1", status: "success", reason: null, message: "all steps done" }],
  }, { refresh() {} });
  const box = document.createElement("div");
  box.id = "stopped-rolls";
  box.append(stopped.element, waiting.element);
  document.getElementById("view").replaceChildren(box);
  const rows = (panel) => [...panel.element.querySelectorAll(".tl-row")].map((row) => [
    row.dataset.state, (row.querySelector(".tl-reason") || { textContent: "" }).textContent,
  ]);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  done({ stopped: rows(stopped), waiting: rows(waiting), gates: box.querySelectorAll(".gate").length });
  stopped.close();
  waiting.close();
});
"""


@pytest.mark.timeout(120)
def test_a_roll_stopped_or_paused_by_its_window_shows_the_reason_in_the_timeline(
    console: Console, server: KnmProcess
) -> None:
    console.login(*VIEWER)
    found = console.driver.execute_async_script(
        STOPPED_ROLLS,
        server.setup["workflow_id"],  # type: ignore[attr-defined]
    )
    closed = "not started: window sunday-night closed; a resume starts at 2026-12-06T01:00:00Z"
    assert found["stopped"] == [["completed", ""], ["window_closed", closed]]
    assert found["waiting"] == [
        ["completed", ""],
        ["paused", "waiting: window sunday-night is closed until 2026-12-06T01:00:00Z"],
    ]
    assert found["gates"] == 0
    assert console.find("#stopped-rolls .tl-row[data-state='window_closed'] .badge").text == (
        "window closed"
    )
    show(console, "#stopped-rolls .timeline")
    console.shot("workflow-timeline-window-closed")
    assert console.severe_logs() == []
