"""A maintenance lab and a stateful property test over it.

The lab: a Kubernetes stand-in whose nodes are an SSH fleet's loopback addresses, a web
Deployment with a replica on every node guarded by a PodDisruptionBudget, and knm as real
processes (``knm serve --no-runner`` plus one ``knm worker`` that can be SIGKILLed and started
again) on a given database. The workflow under test is a rolling maintenance: cordon, drain
(``drain_timeout``), an SSH "upgrade" and an SSH "reboot" that both say ``reboots: true`` (the
reboot asks the stand-in, from the node, to reboot that node), ``wait_ready`` after the reboot,
uncordon, and a finalizer.

:class:`MaintenanceMachine` (hypothesis ``RuleBasedStateMachine``) interleaves starting rolls
over 3–6 nodes, cancel, SIGKILL and restart of the worker, resume, rerun, hand cordons, reboots
at arbitrary moments and budgets tightened and relaxed. After every rule its invariants are
checked against the stand-in's complete recorded history (:meth:`Lab.check`), not against
snapshots: knm-cordoned nodes never more than ``max_unavailable``; no budget broken; no reboot
knm asked for on a node that was schedulable or still had pods; no node uncordoned by knm
before its own reboot was confirmed by a new boot id; no knm cordon left once every task has
ended; no task left running.

Used by ``tests/plugins/workflows/test_maintenance_machine.py`` (bounded, ``slow``) and
``python -m bench.maintenance_soak``.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from knm.testing import sshfleet
from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.k8s.cluster import HistoryEntry
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import standin
from knm.testing.process import KnmProcess

NODE_COUNT = 6
MAX_UNAVAILABLE = 2
NS = "default"
KNM_CORDON = "knm.io/cordoned-by"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
ACTIVE = frozenset({"pending", "running"})


def reboot_command(kube: KubeStandin, addresses: dict[str, str]) -> str:
    """A whole command that asks the stand-in to reboot the node this SSH session is on (found
    from the connection's server address), as ``reboot`` would."""
    code = (
        "import os, urllib.request as u\n"
        f"name = {addresses!r}[os.environ['SSH_CONNECTION'].split()[2]]\n"
        f"u.urlopen(u.Request('{kube.url}/_standin/nodes/' + name + '/reboot', method='POST'))\n"
    )
    encoded = base64.b64encode(code.encode()).decode()
    return f"python3 -c 'import base64; exec(base64.b64decode(\"{encoded}\"))'"


def definition(lab_reboot: str) -> dict[str, Any]:
    return {
        "parameters": [
            {"name": "reboot_command", "type": "command", "default": lab_reboot},
            {"name": "drain_timeout", "type": "integer", "default": "3"},
        ],
        "strategy": {"mode": "rolling", "batch_size": 1, "max_failed_batches": 0},
        "disruptive": True,
        "steps": [
            {"id": "cordon", "type": "k8s", "action": "cordon"},
            {"id": "drain", "type": "k8s", "action": "drain", "depends_on": ["cordon"],
             "params": {"on_timeout": "fail", "drain_timeout": "{{ params.drain_timeout }}"},
             "timeout": 60},
            {"id": "upgrade", "type": "ssh", "command": "true", "reboots": True,
             "depends_on": ["drain"], "timeout": 30},
            {"id": "reboot", "type": "ssh", "command": "{{ params.reboot_command }}",
             "reboots": True, "depends_on": ["upgrade"], "timeout": 30},
            {"id": "wait_ready", "type": "k8s", "action": "wait_ready",
             "params": {"after_reboot": True}, "depends_on": ["reboot"], "timeout": 30},
            {"id": "uncordon", "type": "k8s", "action": "uncordon", "depends_on": ["wait_ready"]},
            {"id": "give_back", "type": "k8s", "action": "uncordon", "depends_on": ["uncordon"],
             "when": "always", "continue_on_error": True, "timeout": 30},
        ],
    }  # fmt: skip


@dataclass
class Counters:
    runs: int = 0
    steps: int = 0
    checks: int = 0
    rules: int = 0
    examples: int = 0
    kills: int = 0


@dataclass
class Lab:
    """Everything the machine drives; see :func:`maintenance_lab`."""

    workdir: Path
    database_url: str
    kube: KubeStandin
    fleet: sshfleet.SshFleet
    nodes: list[str]
    api: KnmProcess
    worker: KnmProcess
    token: str = ""
    cluster: str = "maintained"
    workflow_id: int = 0
    credential_id: int = 0
    counters: Counters = field(default_factory=Counters)
    #: Tasks this lab started.
    tasks: list[str] = field(default_factory=list)
    #: Index in the stand-in's history up to which every entry was checked.
    checked: int = 0
    #: Replayed state of the history: knm cordons, reboots knm asked for not yet confirmed.
    knm_cordoned: dict[str, str] = field(default_factory=dict)
    awaiting_boot: set[str] = field(default_factory=set)
    workers: int = 1

    # --- HTTP ------------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.api.api}{path}", headers=headers, timeout=30, **kwargs)

    def data(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()["data"]

    def setup(self) -> None:
        self.token = httpx.post(
            f"{self.api.api}/auth/login",
            json={"username": "admin", "password": TEST_ADMIN_PASSWORD},
            timeout=30,
        ).json()["data"]["token"]
        self.credential_id = self.data(
            "POST",
            "/credentials",
            json={"name": "fleet", "username": self.fleet.username, "auth_type": "password",
                  "password": self.fleet.password, "port": self.fleet.port},
        )["id"]  # fmt: skip
        self.data(
            "POST",
            "/clusters",
            json={"name": self.cluster, "kind": "kubernetes", "kubeconfig": self.kube.kubeconfig(),
                  "max_unavailable": MAX_UNAVAILABLE},
        )  # fmt: skip
        addresses = {n.address: name for name, n in zip(self.nodes, self.fleet.nodes, strict=True)}
        self.workflow_id = self.data(
            "POST",
            "/automation/workflows",
            json={"name": "lab maintenance",
                  "definition": definition(reboot_command(self.kube, addresses))},
        )["id"]  # fmt: skip

    # --- what the machine does ------------------------------------------------------------

    def start_roll(self, nodes: list[str]) -> str:
        body = {
            "workflow_id": self.workflow_id,
            "cluster_name": self.cluster,
            "target_nodes": nodes,
            "credential_id": self.credential_id,
        }
        task = self.data("POST", "/automation/workflows/execute", json=body)["task_id"]
        self.tasks.append(task)
        self.counters.runs += 1
        return str(task)

    def statuses(self) -> dict[str, dict[str, Any]]:
        found = {}
        for task in self.tasks:
            found[task] = self.data("GET", f"/tasks/{task}")
        return found

    def active(self) -> list[str]:
        return [t for t, s in self.statuses().items() if s["status"] in ACTIVE]

    def finished(self) -> list[str]:
        return [t for t, s in self.statuses().items() if s["status"] in ("failed", "cancelled")]

    def cancel(self, task: str) -> None:
        self.call("POST", f"/automation/workflows/cancel/{task}")

    def resume(self, task: str) -> None:
        response = self.call("POST", f"/automation/workflows/resume/{task}")
        if response.status_code == 200:
            self.tasks.append(response.json()["data"]["task_id"])
            self.counters.runs += 1

    def rerun(self, task: str) -> None:
        response = self.call("POST", f"/automation/workflows/rerun/{task}")
        if response.status_code == 200:
            self.tasks.append(response.json()["data"]["task_id"])
            self.counters.runs += 1

    def kill_worker(self) -> None:
        """SIGKILL the worker mid-whatever, and start another (it takes the lost tasks over
        once their lease runs out)."""
        self.worker.kill()
        self.workers += 1
        self.worker = KnmProcess(
            self.workdir / f"worker{self.workers}", self.database_url, ["worker"], {}
        )
        self.worker.start()
        self.counters.kills += 1

    def hand_cordon(self, node: str, on: bool) -> None:
        doc = self.kube.cluster.node_doc(node)
        if on and doc["spec"].get("unschedulable"):
            return
        if not on and KNM_CORDON in doc["metadata"].get("annotations", {}):
            return  # knm's own cordon: not the operator's to undo here
        doc["spec"]["unschedulable"] = on
        with contextlib.suppress(Exception):
            self.kube.cluster.write_node(node, doc, require_rv=False)

    def budget(self, tight: bool) -> None:
        with contextlib.suppress(KeyError):
            self.kube.cluster.remove_pdb(NS, "web")
        if tight:
            self.kube.add_pdb(NS, "web", {"app": "web"}, min_available=NODE_COUNT)
        else:
            self.kube.add_pdb(NS, "web", {"app": "web"}, max_unavailable=1)

    def settle(self, deadline: float = 240.0) -> None:
        """Until every task has ended (no task stays running)."""
        end = time.monotonic() + deadline
        while True:
            statuses = self.statuses()
            open_ = [t for t, s in statuses.items() if s["status"] not in TERMINAL]
            if not open_:
                self.counters.steps += sum(
                    1
                    for s in statuses.values()
                    for step in s.get("steps", [])
                    if step.get("task_id")
                )
                return
            assert time.monotonic() < end, (
                f"tasks still running: {open_}\n{self.worker.log()[-3000:]}"
            )
            time.sleep(0.3)

    def forget_tasks(self) -> None:
        self.tasks.clear()

    # --- the invariants, over the whole recorded history -----------------------------------

    def check(self) -> None:
        self.counters.checks += 1
        history = self.kube.history
        for entry in history[self.checked :]:
            self._check_entry(entry)
        self.checked = len(history)
        if self.tasks and not self.active():
            self.check_no_cordon_left()

    def _check_entry(self, entry: HistoryEntry) -> None:
        assert not entry.violations, f"budget broken: {entry}"
        node = entry.node or ""
        if entry.kind == "reboot" and entry.by == "node":
            assert entry.unschedulable and entry.cordoned_by, (
                f"knm rebooted {node}, which was schedulable or not cordoned by knm: {entry}"
            )
            assert not entry.pods, f"knm rebooted {node} with pods on it: {entry}"
            self.awaiting_boot.add(node)
        elif entry.kind == "boot":
            self.awaiting_boot.discard(node)
        elif entry.kind == "node":
            if entry.unschedulable and entry.cordoned_by:
                self.knm_cordoned[node] = entry.cordoned_by
            elif node in self.knm_cordoned:
                del self.knm_cordoned[node]
                if not entry.unschedulable:
                    assert node not in self.awaiting_boot, (
                        f"knm uncordoned {node} before its reboot was confirmed: {entry}"
                    )
            assert len(self.knm_cordoned) <= MAX_UNAVAILABLE, (
                f"{len(self.knm_cordoned)} nodes cordoned by knm at once: {self.knm_cordoned}"
            )

    def check_no_cordon_left(self) -> None:
        left = {
            n: self.kube.node(n).annotations.get(KNM_CORDON)
            for n in self.nodes
            if self.kube.node(n).unschedulable and KNM_CORDON in self.kube.node(n).annotations
        }
        assert not left, f"knm cordons left after every task ended: {left}"


@contextlib.contextmanager
def maintenance_lab(workdir: Path, database_url: str) -> Iterator[Lab]:
    """Fleet, stand-in and knm processes, set up; all stopped on exit."""
    with sshfleet.ssh_fleet(workdir / "fleet", nodes=NODE_COUNT) as fleet:
        kube = standin(populate=False)
        nodes = [f"node{i}" for i in range(1, NODE_COUNT + 1)]
        for name, node in zip(nodes, fleet.nodes, strict=True):
            kube.add_node(name, labels={"node-role.kubernetes.io/worker": ""},
                          addresses={"InternalIP": node.address})  # fmt: skip
        for i, name in enumerate(nodes, start=1):
            kube.add_pod(NS, f"web-{i}", name, labels={"app": "web"}, owner_name="web")
        kube.add_pdb(NS, "web", {"app": "web"}, max_unavailable=1)
        api = KnmProcess(workdir / "api", database_url, ["serve", "--no-runner"], {})
        worker = KnmProcess(workdir / "worker1", database_url, ["worker"], {})
        lab = Lab(
            workdir=workdir, database_url=database_url, kube=kube, fleet=fleet, nodes=nodes,
            api=api, worker=worker,
        )  # fmt: skip
        try:
            api.start()
            worker.start()
            lab.setup()
            yield lab
        finally:
            for proc in (lab.worker, api):
                with contextlib.suppress(Exception):
                    proc.stop()
            kube.stop()


class MaintenanceMachine(RuleBasedStateMachine):
    """Bind :attr:`lab` before running (``MaintenanceMachine.lab = lab``)."""

    lab: Lab

    @initialize(
        nodes=st.lists(st.integers(0, NODE_COUNT - 1), min_size=3, max_size=NODE_COUNT, unique=True)
    )
    def begin(self, nodes: list[int]) -> None:
        """Every example starts with a roll, so each one exercises a maintenance."""
        self.lab.counters.examples += 1
        self.lab.forget_tasks()
        self.lab.start_roll([self.lab.nodes[i] for i in nodes])

    @rule(
        nodes=st.lists(st.integers(0, NODE_COUNT - 1), min_size=3, max_size=NODE_COUNT, unique=True)
    )
    def start_roll(self, nodes: list[int]) -> None:
        self.lab.start_roll([self.lab.nodes[i] for i in nodes])

    # Which task a rule picks is an index drawn up front: the draws never depend on how far
    # the (real, timed) tasks got, so hypothesis can replay and shrink an example.
    @precondition(lambda self: bool(self.lab.tasks))
    @rule(pick=st.integers(0, 1000))
    def cancel(self, pick: int) -> None:
        active = self.lab.active()
        if active:
            self.lab.cancel(active[pick % len(active)])

    @precondition(lambda self: bool(self.lab.tasks))
    @rule()
    def kill_worker(self) -> None:
        self.lab.kill_worker()

    @precondition(lambda self: bool(self.lab.tasks))
    @rule(pick=st.integers(0, 1000), how=st.sampled_from(["resume", "rerun"]))
    def again(self, pick: int, how: str) -> None:
        finished = self.lab.finished()
        if finished:
            task = finished[pick % len(finished)]
            (self.lab.resume if how == "resume" else self.lab.rerun)(task)

    @rule(node=st.integers(0, NODE_COUNT - 1), on=st.booleans())
    def hand_cordon(self, node: int, on: bool) -> None:
        self.lab.hand_cordon(self.lab.nodes[node], on)

    @rule(node=st.integers(0, NODE_COUNT - 1))
    def reboot(self, node: int) -> None:
        self.lab.kube.reboot(self.lab.nodes[node])

    @rule(tight=st.booleans())
    def budget(self, tight: bool) -> None:
        self.lab.budget(tight)

    @rule(seconds=st.sampled_from([0.2, 0.5, 1.0, 2.0]))
    def let_time_pass(self, seconds: float) -> None:
        time.sleep(seconds)

    @invariant()
    def safe(self) -> None:
        self.lab.counters.rules += 1
        self.lab.check()

    def teardown(self) -> None:
        lab = self.lab
        lab.budget(False)
        lab.settle()
        lab.check()
        if lab.tasks:
            lab.check_no_cordon_left()
        for node in lab.nodes:
            lab.hand_cordon(node, False)
