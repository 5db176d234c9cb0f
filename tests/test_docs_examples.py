"""Every example in ``docs/`` runs, as written, against a real ``knm serve``, the SSH fleet
(sshd nodes on 127.0.0.x) and the Kubernetes API stand-in, and prints what the docs show.

Each ``console`` and ``sh`` block of ``docs/*.md`` is a session: its commands run one after
another in one bash (later examples use what earlier ones created, and a session's blocks
run in the docs' order), with ``knm`` being this tree's, and a temporary ``HOME`` that holds
the contexts (``~/.config/knm``), the kubeconfig (``~/.kube/config``) and the files the
examples read. A ``$ cat FILE`` step writes FILE first, with the content the docs show.

What a command prints is checked against what the docs show under it: every line shown is a
line printed (in any order; extra lines are fine), compared cell by cell (a terminal's table
and a pipe's plain columns alike), with what changes from run to run left open: task ids,
times, durations, fingerprints, key material, ids and counts in table cells, JSON numbers. A
``$ echo $?`` after a command gives its exit code; a usage error shown means 2; otherwise a
command must exit 0 unless its scene says which code the docs' error means.

The docs' world is not this machine's, so each block has a :class:`Scene`: what must exist
before it (clusters, users, a playbook's versions), what the docs' prose says happened between
blocks, and ``swap``: the few words of the docs replaced before running — addresses, ports,
URLs and paths of the docs' servers and nodes by the test's. Every block must have a scene
(:func:`test_every_example_in_the_docs_has_a_scene`), so a new example cannot go unrun.

Nothing here changes the machine (the SSH nodes are this machine, and every file is under the
temporary ``HOME``):

- the maintenance workflow's example runs a workflow of the same shape whose upgrade step only
  prints what an upgrade prints (see ``HARMLESS_MAINTENANCE``); no example reboots anything;
- every cordon, drain, label, taint and readiness wait reaches only the Kubernetes stand-in
  (``wait-ready --after-reboot`` only reads a boot id there);
- what runs on the sshd nodes only reads: ``uptime``, ``df`` (the scripts' and workflows'
  examples), ``true`` (to pin host keys), and a ``sleep`` the ``xargs`` example cancels;
- host keys are pinned and forgotten in knm's database, ``ssh-keyscan`` only asks the fleet.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import KUBE_TOKEN, standin
from knm.testing.process import KnmProcess, hold_port
from knm.testing.receivers import WebhookReceiver
from knm.testing.sshfleet import SshFleet
from knm.testing.tasks import wait_for_task_sync

ROOT = Path(__file__).parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"
#: The password of every user the docs log in as (alice, ops-bot, bob).
USER_PASSWORD = "doc-examples-pw"


# --------------------------------------------------------------------------- the docs' blocks


@dataclass(frozen=True)
class Step:
    command: str
    #: What the docs show under the command (its stdout and stderr), "" when nothing.
    shown: str


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    heading: str
    lang: str
    steps: tuple[Step, ...]

    @property
    def key(self) -> str:
        first = next((s.command for s in self.steps if "knm " in s.command), "")
        return f"{self.heading}: {first or self.steps[0].command}"

    @property
    def where(self) -> str:
        return (
            f"{self.doc}:{self.line}" if self.doc == README.name else f"docs/{self.doc}:{self.line}"
        )


def heading_at(text: str, offset: int) -> str:
    """The ``##`` section, and its ``###`` one if any, that ``offset`` of a doc is in (code
    blocks' ``#`` lines are no headings)."""
    outside = re.sub(r"^ *```.*?^ *```", "", text[:offset], flags=re.S | re.M)
    section, sub = "", ""
    for level, title in re.findall(r"^(#{2,3}) (.*)$", outside, re.M):
        section, sub = (title, "") if level == "##" else (section, title)
    return f"{section} / {sub}" if sub else section


def blocks(docs: list[Path] = DOCS) -> list[Block]:
    """Every ``console`` and ``sh`` block of docs/*.md, in the docs' order. A console block's
    commands are its ``$ `` lines, the lines after one its output; a sh block's commands are
    its lines (a trailing backslash continues one)."""
    found = []
    for doc in docs:
        text = doc.read_text()
        for match in re.finditer(r"^ *```(console|sh)\n(.*?)^ *```", text, re.S | re.M):
            lang, body = match.groups()
            line = text.count("\n", 0, match.start()) + 1
            heading = heading_at(text, match.start())
            lines = [raw.strip() if lang == "sh" else raw for raw in body.splitlines()]
            steps: list[Step] = []
            if lang == "console":
                for raw in lines:
                    if raw.startswith("$ "):
                        steps.append(Step(raw[2:], ""))
                    elif steps:
                        last = steps[-1]
                        shown = f"{last.shown}\n{raw}" if last.shown else raw
                        steps[-1] = Step(last.command, shown)
            else:
                command = ""
                for raw in lines:
                    command += raw
                    if command.endswith("\\"):
                        command = command[:-1] + " "
                    elif command.strip():
                        steps.append(Step(command, ""))
                        command = ""
            found.append(Block(doc.name, line, heading, lang, tuple(steps)))
    return found


# ------------------------------------------------------------------------- the test's world


@dataclass
class World:
    server: KnmProcess
    fleet: SshFleet
    kube: KubeStandin
    home: Path
    token: str
    http: httpx.Client
    credential_id: int = 0
    #: A port nothing listens on (held, so no other process takes it meanwhile).
    closed_url: str = ""
    #: The docs' webhook receiver (hooks.example.com), on loopback.
    hooks: WebhookReceiver | None = None

    def call(self, method: str, path: str, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.server.api}{path}", **kwargs)
        if response.status_code in ok:
            return None
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json().get("data")

    def address(self, index: int) -> str:
        return self.fleet.nodes[index].address

    # ---- what a scene arranges

    def only_clusters(self, *keep: str) -> None:
        """Removes every cluster but ``keep`` (a listing the docs show has just those)."""
        for cluster in self.call("GET", "/clusters?page_size=100")["clusters"]:
            if cluster["name"] not in keep:
                self.call("DELETE", f"/clusters/{cluster['name']}")

    def static_cluster(
        self, name: str, description: str, nodes: list[dict[str, Any]], **fields: Any
    ) -> None:
        self.call("DELETE", f"/clusters/{name}", ok=(404,))
        body = {"name": name, "kind": "static", "description": description, "nodes": nodes}
        self.call("POST", "/clusters", json=body | fields)

    def kube_cluster(self, name: str) -> None:
        """The stand-in as a ``kubernetes`` cluster whose SSH steps log in with the fleet's
        credential (its default)."""
        self.call("DELETE", f"/clusters/{name}", ok=(404,))
        body = {
            "name": name,
            "kind": "kubernetes",
            "kubeconfig": self.kube.kubeconfig(),
            "max_unavailable": 3,
            "default_credential_id": self.credential_id,
        }
        self.call("POST", "/clusters", json=body)

    def fleet_cluster(self, name: str) -> None:
        """node1…node3 of the docs are the fleet's sshd nodes (their port is the credential's)."""
        nodes = [{"name": f"node{i + 1}", "address": self.address(i)} for i in range(3)]
        self.static_cluster(name, "", nodes, default_credential_id=self.credential_id)

    def forget_pins(self, cluster: str) -> None:
        for node in ("node1", "node2", "node3"):
            self.call("DELETE", f"/automation/ssh/host-keys/{cluster}/{node}", ok=(404,))

    def ssh(self, cluster: str, nodes: list[str], command: str) -> None:
        body = {"cluster_name": cluster, "target_nodes": nodes, "command": command}
        task = self.call("POST", "/automation/ssh/execute", json=body)["task_id"]
        status = wait_for_task_sync(self.server.api, task, self.headers())
        assert status["status"] == "completed", status

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def content(self, kind: str, name: str) -> dict[str, Any] | None:
        items = self.call("GET", f"{CONTENT[kind]}?page_size=100")
        return next((item for item in items[f"{kind}s"] if item["name"] == name), None)

    def delete_content(self, kind: str, *names: str) -> None:
        for name in names:
            item = self.content(kind, name)
            if item is not None:
                self.call("DELETE", f"{CONTENT[kind]}/{item['id']}")


CONTENT = {
    "playbook": "/automation/ansible/playbooks",
    "script": "/automation/scripts",
    "workflow": "/automation/workflows",
}


def login_token(api: str, user: str, password: str) -> str:
    answer = httpx.post(f"{api}/auth/login", json={"username": user, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["token"])


# ------------------------------------------------------------------------------ the scenes


@dataclass(frozen=True)
class Scene:
    """What one block needs that the docs leave to the reader's world."""

    #: Arranges the server, the stand-in and the files before the block runs.
    setup: Callable[[World], None] = lambda world: None
    #: Docs' words → the test's, in the commands, the files and the output shown.
    swap: Callable[[World], Mapping[str, str]] = lambda world: {}
    #: Shell run before the block: what the docs' prose says happened since the last one.
    before: str = ""
    #: Shell run before a command (by index): what a person does between two commands.
    pause: Mapping[int, str] = field(default_factory=dict)
    #: The exit code of a command (by index) the docs show failing without ``echo $?``.
    exits: Mapping[int, int] = field(default_factory=dict)
    #: With the admin's ``KNM_URL``/``KNM_TOKEN`` (as automation runs knm), or on the
    #: contexts of ``~/.config/knm`` alone (the contexts' own examples).
    as_admin: bool = True
    #: More environment (what the docs' reader has set).
    env: Callable[[World], Mapping[str, str]] = lambda world: {}
    shell: str = "bash"


#: The builtin "Node maintenance" upgrades packages with Ansible and reboots: on the fleet,
#: whose nodes are this machine, it would do so here. Its example runs this workflow instead:
#: the builtin's first steps (cordon, drain: on the stand-in), then an upgrade step that only
#: prints what an upgrade prints, then uncordon. No step reboots.
HARMLESS_MAINTENANCE = "Node maintenance (harmless)"
HARMLESS_DEFINITION = {
    # The builtin's parameter the README's example gives (it only shows in the output here).
    "parameters": [{"name": "upgrade_args", "default": ""}],
    "steps": [
        {"id": "cordon", "type": "k8s", "action": "cordon"},
        {"id": "drain", "type": "k8s", "action": "drain", "depends_on": ["cordon"]},
        {
            "id": "upgrade",
            "type": "ssh",
            "command": "echo 'Reading package lists...'; echo 'Building dependency tree...';"
            " echo 'ansible-playbook {{ params.upgrade_args }}'",
            "depends_on": ["drain"],
        },
        {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["upgrade"]},
    ],
}


def maintenance(world: World) -> None:
    world.kube_cluster("production")
    if world.content("workflow", HARMLESS_MAINTENANCE) is None:
        body = {"name": HARMLESS_MAINTENANCE, "definition": HARMLESS_DEFINITION}
        world.call("POST", CONTENT["workflow"], json=body)


def batch_pool(world: World) -> None:
    """lab's nodes of the pool the schedule's request selects (pool=batch)."""
    nodes = [
        {"name": f"node{i + 1}", "address": world.address(i), "labels": {"pool": "batch"}}
        for i in range(2)
    ]
    world.static_cluster("lab", "", nodes, default_credential_id=world.credential_id)


def lab_for_detach(world: World) -> None:
    world.fleet_cluster("lab")
    world.call(
        "POST",
        "/credentials",
        json={"name": "ops", "username": world.fleet.username, "auth_type": "password",
              "password": world.fleet.password, "port": world.fleet.port},
    )  # fmt: skip


def a_running_task(world: World) -> None:
    """Something for the example to cancel: a sleep on lab's node1."""
    body = {"cluster_name": "lab", "target_nodes": ["node1"], "command": "sleep 60"}
    world.call("POST", "/automation/ssh/execute", json=body)


def new_lab(world: World) -> None:
    world.only_clusters()


def no_disk_check(world: World) -> None:
    world.delete_content("script", "disk check")


def safe_roll(world: World) -> None:
    world.kube_cluster("production")
    world.delete_content("workflow", "safe roll")


#: Someone approves once the workflow waits for it (knm task watch says so on a terminal).
UNTIL_THE_GATE_WAITS = (
    'for _ in $(seq 600); do knm task show "$id" -o json'
    """ | jq -e '.steps[] | select(.id == "gate" and .status == "running")' >/dev/null"""
    " && break; sleep 0.1; done"
)


def ntp_versions(world: World) -> None:
    """Playbook ntp, version 1 for all hosts, version 2 for web, both saved by alice."""
    world.delete_content("playbook", "ntp")
    alice = {"Authorization": f"Bearer {login_token(world.server.api, 'alice', USER_PASSWORD)}"}
    body = {"name": "ntp", "content": NTP_V1}
    made = world.call("POST", CONTENT["playbook"], json=body, headers=alice)
    change = {"content": NTP_V1.replace("hosts: all", "hosts: web"), "version": made["version"]}
    world.call("PUT", f"{CONTENT['playbook']}/{made['id']}", json=change, headers=alice)


NTP_V1 = "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"


def formats(world: World) -> None:
    world.only_clusters()
    world.static_cluster(
        "prod",
        "production",
        [{"name": "node1", "address": "10.0.0.11", "labels": {"rack": "a", "role": "worker"}},
         {"name": "node2", "address": "10.0.0.12", "labels": {"rack": "b", "role": "worker"}}],
    )  # fmt: skip
    world.static_cluster("lab", "", [{"name": "n1", "address": "10.0.0.1"}])


def pinned_fleet(world: World) -> None:
    """production is the fleet; node1's and node2's keys are pinned by a first connection."""
    world.only_clusters()
    world.forget_pins("production")
    world.fleet_cluster("production")
    world.ssh("production", ["node1", "node2"], "true")


def fleet_addresses(world: World) -> dict[str, str]:
    return {
        "ssh-keyscan -t ed25519 10.0.0.13": (
            f"ssh-keyscan -p {world.fleet.port} -t ed25519 {world.address(2)}"
        ),
        "10.0.0.11": world.address(0),
        "10.0.0.12": world.address(1),
        "10.0.0.13": world.address(2),
    }


def k8s_production(world: World) -> None:
    world.kube_cluster("production")


def w3_not_ready(world: World) -> None:
    world.kube_cluster("production")
    world.kube.cluster.set_ready("w3", False)


def kubeconfig_files(world: World) -> None:
    """~/.kube/config with three contexts on the stand-in; ~/lab/kubeconfig with a token the
    stand-in refuses."""
    world.only_clusters()
    config = world.kube.kubeconfig_dict(context="prod-admin")
    for name in ("qa-admin", "staging-admin"):
        extra = world.kube.kubeconfig_dict(context=name)
        for section in ("clusters", "users", "contexts"):
            config[section] += extra[section]
    (world.home / ".kube").mkdir(exist_ok=True)
    (world.home / ".kube" / "config").write_text(json.dumps(config))
    (world.home / "lab").mkdir(exist_ok=True)
    (world.home / "lab" / "kubeconfig").write_text(world.kube.kubeconfig("not-the-token"))


def no_production(world: World) -> None:
    world.only_clusters()


def kube_document(world: World) -> Mapping[str, str]:
    return {"https://k8s.example.com:6443": world.kube.url, "t0ken": KUBE_TOKEN}


def apply_library(world: World) -> None:
    world.only_clusters()
    world.delete_content("playbook", "ntp")
    world.delete_content("script", "disk")
    world.delete_content("workflow", "roll")


def no_subscriptions(world: World) -> None:
    """The docs' ids and "1 of 1" count on a server with no subscriptions yet."""
    found = world.call("GET", "/notifications/subscriptions?page_size=100")["subscriptions"]
    for subscription in found:
        world.call("DELETE", f"/notifications/subscriptions/{subscription['id']}")


def hooks_url(world: World) -> dict[str, str]:
    assert world.hooks is not None
    return {"https://hooks.example.com/knm": world.hooks.url}


def contexts_swap(world: World) -> dict[str, str]:
    """The docs' two servers are this one, under two names (so two contexts); the contexts
    keep the docs' names (see ``login_as_the_docs_name_it``)."""
    return {
        "https://knm.example.com": world.server.base_url,
        "https://staging.example.com:8443": f"http://localhost:{world.server.port}",
        "http://10.0.0.5:8080": world.server.base_url,
    }


SCENES: dict[str, Scene] = {
    # docs/cli.md
    "Following a task: id=$(knm ssh run -c lab -n node1 --credential ops --detach -- uptime)"
    " || [ $? -eq 5 ]": Scene(setup=lab_for_detach),
    "Following a task / Workflow step output: knm workflow run"
    ' "Node maintenance" -c production -n node3': Scene(
        setup=maintenance,
        swap=lambda w: {'"Node maintenance"': json.dumps(HARMLESS_MAINTENANCE)},
    ),
    "Editing, versions, diffs and rollbacks: knm playbook versions ntp": Scene(setup=ntp_versions),
    # The server the reader meant to reach (KNM_URL) is not running: nothing listens there.
    "Errors: knm task list": Scene(
        swap=lambda w: {"http://127.0.0.1:8080": w.closed_url},
        env=lambda w: {"KNM_URL": w.closed_url},
        exits={0: 4},
        as_admin=False,
    ),
    "Formats / Cluster files: knm cluster create -f lab.yaml": Scene(
        setup=new_lab, swap=fleet_addresses
    ),
    "Formats / Scripts and their parameters: knm script create -f disk-check.yaml": Scene(
        setup=no_disk_check, exits={3: 4}
    ),
    "Formats / Workflow definitions: knm workflow create -f safe-roll.yaml": Scene(
        setup=safe_roll, pause={3: UNTIL_THE_GATE_WAITS}
    ),
    "Formats / Kubernetes actions' parameters: knm k8s drain w1 -c production -p dry_run=true": (
        Scene(setup=k8s_production)
    ),
    "Contexts / Logging in: knm login https://knm.example.com --user alice": Scene(
        swap=contexts_swap, as_admin=False
    ),
    "Contexts / Logging in: knm logout --context prod-bot": Scene(
        swap=contexts_swap, exits={1: 2}, as_admin=False
    ),
    "Contexts / Listing and picking contexts: knm config get-contexts": Scene(
        swap=contexts_swap, as_admin=False
    ),
    "Contexts / Listing and picking contexts: knm config get-contexts --json": Scene(
        swap=contexts_swap, as_admin=False
    ),
    "Contexts / One command, or one shell, elsewhere:"
    " knm task list --context staging.example.com:8443    # this command only": Scene(
        swap=contexts_swap, as_admin=False
    ),
    "Contexts / One command, or one shell, elsewhere: knm config use-context prod": Scene(
        swap=contexts_swap, exits={0: 2}, as_admin=False
    ),
    "Contexts / Creating, changing, renaming and deleting contexts:"
    " knm config set-context lab --server http://10.0.0.5:8080 --user alice": Scene(
        swap=contexts_swap, as_admin=False
    ),
    "Contexts / Creating, changing, renaming and deleting contexts: knm task list": Scene(
        swap=contexts_swap, exits={0: 2}, as_admin=False
    ),
    "Output formats: knm cluster list -o bogus": Scene(),
    "Output formats: knm task list --status running -o name | xargs -r -n1 knm task cancel": (
        Scene(setup=a_running_task)
    ),
    "Output formats / Examples: knm cluster list": Scene(setup=formats),
    "Output formats / Examples: knm cluster list -o wide": Scene(),
    "Output formats / Examples: knm cluster list -o name": Scene(),
    "Output formats / Examples: knm cluster nodes prod": Scene(),
    "Output formats / Examples: knm cluster nodes prod -o json": Scene(),
    "Output formats / Examples: knm cluster nodes prod -o yaml": Scene(),
    "Output formats / Examples: knm cluster show cluster/prod -o yaml": Scene(),
    "Schedules: knm schedule create kubelet-weekly --kind ssh --request-file restart-kubelet.yaml"
    " --cron '0 2 * * 0' --timezone Europe/Berlin": Scene(
        setup=batch_pool,
        # Created, changed and deleted within seconds, it never fires; were it to, it would
        # restart nothing on this machine.
        swap=lambda world: {"sudo systemctl restart kubelet": "echo restarted kubelet"},
    ),
    "Notifications: knm notification create ops-failures --event task.failed --event node.failed"
    " --cluster lab --webhook-url https://hooks.example.com/knm --secret-file hook-secret": Scene(
        setup=no_subscriptions, swap=hooks_url
    ),
    "Notifications: knm notification create team-chat --type slack --event approval.requested"
    " --secret-env SLACK_WEBHOOK_URL": Scene(
        env=lambda w: {
            "SLACK_WEBHOOK_URL": "https://hooks.slack.example.com/services/T0/B0/doc-example",
            "SMTP_PASSWORD": "doc-example-smtp-password",
        }
    ),
    "Maintenance windows: knm window create sunday-night --cron '0 2 * * 0' --timezone"
    " Europe/Berlin --duration 3h --cluster lab": Scene(setup=batch_pool, exits={4: 4, 6: 4}),
    "Host keys: knm hostkey list --cluster production": Scene(
        setup=pinned_fleet, swap=fleet_addresses
    ),
    "Host keys: knm hostkey forget production node2": Scene(),
    'Host keys: knm hostkey pin production node3 --key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI'
    'Mrt9VWshHv6l0PhBlEvUgm2nw6rlDGqyIddlZILIS56 root@node3"': Scene(swap=fleet_addresses),
    "Node labels, taints and readiness: knm k8s label production w1 w2 env=prod tier=web pool-": (
        Scene(setup=k8s_production)
    ),
    "Node labels, taints and readiness: knm k8s taint production w1 dedicated=gpu:NoSchedule"
    " spot:PreferNoSchedule": Scene(),
    "Node labels, taints and readiness: knm k8s label production w3 env=qa pool- --json"
    " | jq -c '[.action, .status]'": Scene(),
    # w3's 30 s wait for a Ready that never comes is the same wait in 2 s.
    "Node labels, taints and readiness: knm k8s wait-ready production w1 w2 --timeout 10m": Scene(
        setup=w3_not_ready, swap=lambda w: {"w3 --timeout 30s": "w3 --timeout 2s"}
    ),
    "Kubernetes clusters from a kubeconfig: knm cluster create production --kubeconfig"
    " ~/.kube/config --context prod-admin": Scene(setup=kubeconfig_files),
    "Kubernetes clusters from a kubeconfig: knm cluster create -f production.yaml --kubeconfig"
    " ~/.kube/config --context prod-admin": Scene(setup=no_production),
    "Kubernetes clusters from a kubeconfig: knm cluster create -f production.yaml": Scene(
        exits={1: 2}
    ),
    "Shell completion: source <(knm completion bash)": Scene(),
    "Shell completion: source <(knm completion zsh)": Scene(
        before="autoload -Uz compinit && compinit", shell="zsh"
    ),
    "Shell completion: mkdir -p ~/.zfunc && knm completion zsh > ~/.zfunc/_knm": Scene(),
    "Shell completion: knm completion fish > ~/.config/fish/completions/knm.fish": Scene(
        before="mkdir -p ~/.config/fish/completions"
    ),
    "Apply and get / Secrets: write-only fields: knm apply -f kube.yaml": Scene(
        setup=no_production, swap=kube_document
    ),
    "Apply and get / Examples: knm apply -f lib/": Scene(
        setup=apply_library, swap=lambda w: {"ls lib/": "ls -C lib/"}
    ),
    "Apply and get / Examples: knm apply -f lib/ --dry-run": Scene(
        before="sed -i 's|^  df -h$|  df -h /var|' lib/disk.yaml"
    ),
    "Apply and get / Examples: knm apply -f lib/lab.yaml": Scene(
        before="printf '  - name: n2\\n    address: 10.0.0.2\\n' >> lib/lab.yaml"
    ),
    "Apply and get / Examples: knm get playbook ntp -o yaml": Scene(),
    "Apply and get / Examples: knm apply -f mine.yaml": Scene(),
    "Apply and get / Examples: knm apply -f bad.yaml": Scene(),
}


def readme_world(world: World) -> None:
    """The README's production: the stand-in, whose node1 and node2 (rack=a) and node3 are the
    fleet's sshd nodes; a credential ops; ~/.kube/config's prod-admin; no lab or prod yet; the
    harmless maintenance (see ``HARMLESS_MAINTENANCE``); none of the playbooks, workflows,
    users and tokens the README makes, and a lib/ of the README's files alone (docs/cli.md's
    apply examples keep theirs there)."""
    shutil.rmtree(world.home / "lib", ignore_errors=True)
    kubeconfig_files(world)
    for index, name in enumerate(("node1", "node2")):
        if name not in {node.name for node in world.kube.cluster.nodes()}:
            address = {"InternalIP": world.address(index)}
            world.kube.add_node(name, labels={"rack": "a"}, addresses=address)
    maintenance(world)
    body = {"name": "ops", "username": world.fleet.username, "auth_type": "password",
            "password": world.fleet.password, "port": world.fleet.port}  # fmt: skip
    world.call("POST", "/credentials", json=body, ok=(409,))
    world.delete_content("playbook", "ntp")
    world.delete_content("workflow", "canary")


README_SCENES: dict[str, Scene] = {
    "Remote use: the `knm` command and the Python SDK: knm login --url https://knm.example.com"
    " --user alice        # prompts; or --password-stdin": Scene(
        setup=readme_world,
        swap=lambda w: {
            **contexts_swap(w),
            '"Node maintenance"': json.dumps(HARMLESS_MAINTENANCE),
            # Where the README's Slack webhook is: a loopback port nothing listens on.
            "https://hooks.slack.com/services/T0/B0/XYZ": w.closed_url,
        },
        exits={8: 5},  # id=$(knm workflow run canary ... --detach): detached, still running
        pause={9: UNTIL_THE_GATE_WAITS},
        # The reader's editor makes the playbook's hosts web.
        env=lambda w: {"EDITOR": "sed -i s/all/web/"},
    ),
}


# ---------------------------------------------------------------------- running and checking


#: What changes from run to run, and what stands for it in a comparison.
VOLATILE = [
    (r"\b[a-z0-9]+(?:-[a-z0-9]+)*-exec-\d+-(?:[a-z0-9]+|…)", r"[a-z0-9-]+-exec-\d+-[a-z0-9]+"),
    (
        r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?Z?",
        r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?Z?",
    ),
    (r"\(\d+(?:\.\d+)?s\)", r"\(\d+(?:\.\d+)?s\)"),
    (r"SHA256:[A-Za-z0-9+/]{43}", r"SHA256:[A-Za-z0-9+/]{43}"),
    (r"AAAA[A-Za-z0-9+/]{20,}=*", r"AAAA[A-Za-z0-9+/]+=*"),
    (r"\bid: \d+", r"id: \d+"),
    (
        r"\b(?:playbook|script|workflow|subscription|delivery|window) \d+ \(",
        r"(?:playbook|script|workflow|subscription|delivery|window) \d+ \(",
    ),
    # The state a task was in when the answer to its start came is a race.
    (r"\((?:pending|running)\)", r"\((?:pending|running)\)"),
]
VOLATILE_RE = re.compile("|".join(f"({pattern})" for pattern, _ in VOLATILE))


def cell_pattern(cell: str, in_table: bool) -> str:
    if in_table and re.fullmatch(r"\d+", cell):
        return r"\d+"  # ids, ports, durations, counts of a listing
    pattern, last = "", 0
    for match in VOLATILE_RE.finditer(cell):
        pattern += re.escape(cell[last : match.start()])
        pattern += VOLATILE[match.lastindex - 1][1]  # type: ignore[operator]
        last = match.end()
    return pattern + re.escape(cell[last:])


def cells(line: str) -> list[str]:
    """A line's cells: a terminal table's between its bars, plain columns' between runs of
    spaces; an empty cell and ``<none>`` are the same."""
    if "┃" in line or "│" in line:
        parts = re.split(r"[┃│]", line)
    else:
        parts = re.split(r"\s{2,}", line.strip())
    return ["" if part.strip() == "<none>" else part.strip() for part in parts]


def json_like(shown: Any, printed: Any) -> bool:
    if isinstance(shown, bool) or shown is None:
        return shown is printed
    if isinstance(shown, (int, float)):
        return isinstance(printed, (int, float)) and not isinstance(printed, bool)
    if isinstance(shown, str):
        return (
            isinstance(printed, str)
            and re.fullmatch(cell_pattern(shown, False), printed) is not None
        )
    if isinstance(shown, list):
        return (
            isinstance(printed, list)
            and len(shown) == len(printed)
            and all(json_like(a, b) for a, b in zip(shown, printed, strict=True))
        )
    return (
        isinstance(printed, dict)
        and shown.keys() == printed.keys()
        and all(json_like(value, printed[key]) for key, value in shown.items())
    )


def as_json(line: str) -> Any:
    if not line.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def line_matches(shown: str, printed: str) -> bool:
    shown_json = as_json(shown)
    if shown_json is not None:
        printed_json = as_json(printed)
        return printed_json is not None and json_like(shown_json, printed_json)
    want, got = cells(shown), cells(printed)
    if len(want) != len(got):
        return False
    table = len(want) > 1
    return all(re.fullmatch(cell_pattern(w, table), g) for w, g in zip(want, got, strict=True))


def missing_lines(shown: str, printed: str) -> list[str]:
    """The lines shown that nothing printed matches (each printed line matches one)."""
    left = [line for line in printed.splitlines() if line.strip()]
    missing = []
    for line in shown.splitlines():
        # A terminal's table rule, a prompt only a terminal shows (logins read stdin here).
        if not line.strip() or set(line.strip()) <= set("━╇─┼") or line.startswith("Password of "):
            continue
        found = next((i for i, got in enumerate(left) if line_matches(line, got)), None)
        if found is None:
            missing.append(line)
        else:
            del left[found]
    return missing


def replace_all(text: str, swaps: Mapping[str, str]) -> str:
    for old in sorted(swaps, key=len, reverse=True):
        text = text.replace(old, swaps[old])
    return text


def login_as_the_docs_name_it(command: str) -> str:
    """``knm login`` reads the password from stdin here (no terminal), and a login to a URL
    the docs name gets the context the docs' host would name (``knm.example.com``), which the
    swapped URL would not."""
    if not command.startswith("knm login"):
        return command
    # What is added goes before a comment the docs end the line with.
    command = re.sub(r"\s+#.*$", "", command)
    words = shlex.split(command, comments=True)
    given = next((w for w in words[2:] if "://" in w), None)
    if given is not None and "--context" not in words:
        host = given.split("://", 1)[1].split("/", 1)[0]
        command += f" --context {host}"
    return f'{command} --password-stdin <<<"$KNM_DOC_PASSWORD"'


@dataclass
class Ran:
    command: str
    code: int
    output: str


def run_block(world: World, block: Block, scene: Scene, shim: Path) -> list[Ran]:
    swaps = {"/home/alice": str(world.home), "/home/ops": str(world.home), **scene.swap(world)}
    commands = [replace_all(login_as_the_docs_name_it(step.command), swaps) for step in block.steps]
    for command, step in zip(commands, block.steps, strict=True):
        if command.startswith("cat ") and step.shown:
            path = world.home / command.split()[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(replace_all(step.shown, swaps) + "\n")
    runs = world.home / ".runs" / str(block.line)
    runs.mkdir(parents=True, exist_ok=True)
    script = [f"cd {shlex.quote(str(world.home))}", "__rc=0", scene.before]
    for index, command in enumerate(commands):
        # The command before's own $? (for `echo $?`), then its output and exit code.
        script += [
            scene.pause.get(index, ""),
            "(exit $__rc)",
            f"{{ {command}\n}} >{runs}/{index}.out 2>&1 </dev/null",
            f"__rc=$?; echo $__rc >{runs}/{index}.rc",
        ]
    env = {
        "PATH": f"{shim}:{os.environ['PATH']}",
        "HOME": str(world.home),
        "LANG": "C.UTF-8",
        "COLUMNS": "80",  # argparse wraps its usage lines to this width, as the docs show
        "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order they are written
        "KNM_DOC_PASSWORD": USER_PASSWORD,
    }
    if scene.as_admin:
        env |= {"KNM_URL": world.server.base_url, "KNM_TOKEN": world.token}
    env |= scene.env(world)
    done = subprocess.run(
        [scene.shell, "-c", "\n".join(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 or (runs / f"{len(commands) - 1}.rc").exists(), done.stderr
    return [
        Ran(command, int((runs / f"{i}.rc").read_text()), (runs / f"{i}.out").read_text())
        for i, command in enumerate(commands)
    ]


def problems(world: World, block: Block, scene: Scene, ran: list[Ran]) -> list[str]:
    swaps = {"/home/alice": str(world.home), "/home/ops": str(world.home), **scene.swap(world)}
    found = []
    for index, (step, run) in enumerate(zip(block.steps, ran, strict=True)):
        if step.command == "echo $?":
            continue  # its number is the exit code the command before it must have
        after = block.steps[index + 1] if index + 1 < len(block.steps) else None
        if after is not None and after.command == "echo $?":
            expected = int(after.shown)
        elif index in scene.exits:
            expected = scene.exits[index]
        elif ": error: " in step.shown:
            expected = 2
        else:
            expected = 0
        said = f"{block.where} `{step.command}`"
        if run.code != expected:
            found.append(f"{said}: exit {run.code}, the docs say {expected}:\n{run.output}")
            continue
        if step.command.startswith("cat "):
            continue  # the test wrote the file from what the docs show
        missing = missing_lines(replace_all(step.shown, swaps), run.output)
        if missing:
            lines = "\n".join(missing)
            found.append(f"{said}: printed\n{run.output}\nbut not these lines shown:\n{lines}")
    return found


# --------------------------------------------------------------------------------- the tests


BLOCKS = blocks()
#: The README's remote-use session (its other blocks install and start a server).
README_BLOCKS = [b for b in blocks([README]) if b.heading.startswith("Remote use")]


def test_every_example_in_the_docs_has_a_scene() -> None:
    keys = [block.key for block in BLOCKS]
    assert len(keys) == len(set(keys)), "two blocks begin alike under one heading"
    unrun = [f"{block.where} {block.key!r}" for block in BLOCKS if block.key not in SCENES]
    assert not unrun, "examples the suite does not run (add a scene):\n" + "\n".join(unrun)
    stale = sorted(set(SCENES) - set(keys))
    assert not stale, f"scenes of examples the docs no longer show: {stale}"
    assert sum(block.lang == "console" for block in BLOCKS) >= 40  # docs/cli.md's, today
    readme = [block.key for block in README_BLOCKS]
    assert readme and sorted(readme) == sorted(README_SCENES)


def test_the_readmes_remote_use_is_one_session_with_every_command_it_names() -> None:
    [block] = README_BLOCKS
    commands = " ".join(step.command for step in block.steps)
    for verb in ("login", "ssh run", "ansible run", "workflow run", "workflow approve",
                 "task watch", "playbook edit", "playbook diff", "playbook rollback",
                 "apply -f", "get playbook", "k8s drain", "k8s label", "task rerun",
                 "hostkey forget", "notification create", "config use-context",
                 "user create", "token create", "audit list"):  # fmt: skip
        assert f"knm {verb}" in commands, verb


def test_a_terminal_table_shown_is_the_plain_columns_printed_into_a_pipe() -> None:
    shown = (
        "k8s-exec-1796439748-vwhh2t  completed  2 succeeded, 0 failed  (1s)\n"
        " NODE ┃ STATUS  ┃ REASON ┃ EXIT CODE ┃ DURATION ┃ MESSAGE\n"
        "━━━━━━╇━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━\n"
        " w1   │ success │        │           │ 0        │ labelled"
    )
    printed = (
        "started k8s-exec-1796450211-0835vr (running)\n"
        "k8s-exec-1796450211-0835vr  completed  2 succeeded, 0 failed  (3s)\n"
        "NODE   STATUS    REASON   EXIT CODE   DURATION   MESSAGE\n"
        "w1     success   <none>   <none>      2          labelled\n"
    )
    assert missing_lines(shown, printed) == []


def test_what_the_docs_show_and_knm_does_not_print_is_missing() -> None:
    printed = "NODE   STATUS    MESSAGE\nw1     success   labelled\n"
    assert missing_lines(" w1 │ failed │ labelled", printed) == [" w1 │ failed │ labelled"]
    assert missing_lines("w1  success", printed) == ["w1  success"]  # a column too few
    # One printed line answers for one line shown.
    assert missing_lines("w1  success  labelled\nw1  success  labelled", printed) == [
        "w1  success  labelled"
    ]


def test_json_shown_is_matched_by_keys_and_values_but_not_numbers() -> None:
    shown = '{"id":2,"name":"qa","in_cluster":false,"created_at":"2026-12-05T03:04:55Z"}'
    same = '{"id":9,"name":"qa","in_cluster":false,"created_at":"2027-01-01T00:00:00Z"}'
    assert missing_lines(shown, same) == []
    for other in (
        '{"id":9,"name":"prod","in_cluster":false,"created_at":"2027-01-01T00:00:00Z"}',
        '{"id":9,"name":"qa","in_cluster":null,"created_at":"2027-01-01T00:00:00Z"}',
        '{"id":9,"name":"qa","in_cluster":false}',
    ):
        assert missing_lines(shown, other) == [shown], other


def test_a_login_reads_stdin_and_keeps_the_context_name_of_the_docs_host() -> None:
    assert login_as_the_docs_name_it("knm login https://knm.example.com --user alice") == (
        "knm login https://knm.example.com --user alice --context knm.example.com"
        ' --password-stdin <<<"$KNM_DOC_PASSWORD"'
    )
    assert login_as_the_docs_name_it("knm login --context lab").endswith(
        'lab --password-stdin <<<"$KNM_DOC_PASSWORD"'
    )
    assert login_as_the_docs_name_it("knm logout") == "knm logout"
    assert login_as_the_docs_name_it("knm login --context lab   # a comment").endswith(
        'lab --password-stdin <<<"$KNM_DOC_PASSWORD"'
    )


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, knm_database_url: str, ssh_fleet: SshFleet
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("doc-home")
    # The plugins and switches a plain `knm serve` has.
    server = KnmProcess(tmp_path_factory.mktemp("doc-server"), knm_database_url, ["serve"], {})
    kube = standin()
    # The maintenance example's node3: a stand-in node whose address is an sshd of the fleet.
    kube.add_node("node3", addresses={"InternalIP": ssh_fleet.nodes[2].address})
    closed = hold_port()
    hooks = WebhookReceiver().start()
    server.start()
    try:
        token = login_token(server.api, "admin", TEST_ADMIN_PASSWORD)
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            world = World(server, ssh_fleet, kube, home, token, http)
            world.closed_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
            world.hooks = hooks
            for user, role in (("alice", "operator"), ("ops-bot", "operator"), ("bob", "viewer")):
                body = {"username": user, "password": USER_PASSWORD, "role": role}
                world.call("POST", "/users", json=body)
            world.credential_id = world.call(
                "POST",
                "/credentials",
                json={"name": "fleet", "username": ssh_fleet.username, "auth_type": "password",
                      "password": ssh_fleet.password, "port": ssh_fleet.port},
            )["id"]  # fmt: skip
            yield world
    finally:
        server.stop()
        kube.stop()
        closed.close()
        hooks.stop()


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``knm`` on PATH that is this tree's (the installed one may be another checkout's)."""
    bin_dir = tmp_path_factory.mktemp("doc-bin")
    knm = bin_dir / "knm"
    knm.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)}"
        ' -m knm.cli.main "$@"\n'
    )
    knm.chmod(0o755)
    return bin_dir


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_example_in_the_docs_runs_and_prints_what_the_docs_show(
    world: World, shim: Path
) -> None:
    found: list[str] = []
    for block in BLOCKS:
        scene = SCENES[block.key]
        scene.setup(world)
        ran = run_block(world, block, scene, shim)
        found += problems(world, block, scene, ran)
    assert not found, "\n\n".join(found)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_readmes_remote_use_runs_as_one_session(world: World, shim: Path) -> None:
    found: list[str] = []
    for block in README_BLOCKS:
        scene = README_SCENES[block.key]
        scene.setup(world)
        found += problems(world, block, scene, run_block(world, block, scene, shim))
    assert not found, "\n\n".join(found)


def edit_note_shown() -> str:
    """The editor's view of a refused edit, as docs/cli.md shows it."""
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split("## Editing, versions, diffs and rollbacks", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_editor_reopens_with_the_note_the_docs_show(
    world: World, shim: Path, tmp_path: Path
) -> None:
    shown = edit_note_shown()
    body = "".join(line for line in shown.splitlines(keepends=True) if not line.startswith("#"))
    world.delete_content("playbook", "edit-note")
    world.call("POST", CONTENT["playbook"], json={"name": "edit-note", "content": NTP_V1})
    # The first time, the editor writes the docs' body; the second, it keeps what it was
    # shown and saves nothing, which gives up.
    editor = tmp_path / "editor"
    editor.write_text(
        "#!/bin/sh\n"
        f'if [ -e {tmp_path}/opened ]; then cp "$1" {tmp_path}/seen\n'
        f'else touch {tmp_path}/opened; printf %s "$BODY" > "$1"; fi\n'
    )
    editor.chmod(0o755)
    env = {
        "PATH": f"{shim}:{os.environ['PATH']}",
        "HOME": str(world.home),
        "LANG": "C.UTF-8",
        "KNM_URL": world.server.base_url,
        "KNM_TOKEN": world.token,
        "EDITOR": str(editor),
        "BODY": body,
        # Where knm keeps an edit it gave up on: this test's, not the machine's temp dir.
        "TMPDIR": str(tmp_path),
    }
    done = subprocess.run(
        ["knm", "playbook", "edit", "edit-note"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (tmp_path / "seen").read_text() == shown
    assert world.content("playbook", "edit-note")["content"] == NTP_V1  # type: ignore[index]
