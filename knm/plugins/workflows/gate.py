"""The engine's check of a node's live state right before a step runs on it.

Every attempt of every step goes through :meth:`Gate.admit` — first runs, retries, resumed runs
and reruns alike, after any lock wait — so a step that needs a cordoned, drained node cannot run
on one that is not, whatever happened before. The state is read from the cluster's API: the
``knm.io/cordoned-by`` annotation (cordoned by *this* run), the pods left on the node (DaemonSet,
mirror and finished pods do not count), and the node's boot id.

Boot ids are recorded per node immediately before each step that reboots runs there, kept with
the run (the task's result, so a resumed run inherits them), and used by ``wait_ready`` with
``after_reboot`` and by an ``uncordon`` after that step, which waits (up to its timeout) for a
new boot id before giving the node back. A node still on the same boot and Ready when that wait
ends was not rebooted at all (its rebooting step was cut short, say): it goes back then, so a
run never strands a node out of service; one that is not Ready stays cordoned.

On clusters that are not Kubernetes clusters nothing schedules onto nodes: the conditions hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec

from knm.core.clusters import NodeCondition, NodeInspector
from knm.core.tasks import TargetNode, TaskContext
from knm.core.tasks.steps import NodeDetail
from knm.plugins.workflows.conditions import CORDONED, DRAINED, needs_new_boot, required
from knm.plugins.workflows.definition import Step

#: Seconds between reads while an ``uncordon`` waits for a node's new boot id.
BOOT_POLL = 0.2
#: How long that wait may last when the step sets no timeout.
BOOT_WAIT = 600.0


class BootRecord(msgspec.Struct, kw_only=True):
    """A node's boot id just before a rebooting step ran on it."""

    node: str
    step_id: str
    batch: int
    boot_id: str
    #: ``running`` until the step ends; ``failed`` when it failed on the node (no reboot asked).
    outcome: str = "running"


#: A node's live state (the core's contract; the cluster's provider reads it).
NodeState = NodeCondition
#: What reads it: the provider's ``inspector`` (Kubernetes; None where nothing schedules).
Probe = NodeInspector


async def probe_for(ctx: TaskContext) -> Probe | None:
    cluster = await ctx.cluster()
    provider = ctx.knm.registry.cluster_providers.get(cluster.kind)
    if provider is None:
        return None
    return await provider.inspector(ctx.knm, cluster)


def hand_cordoned(state: NodeState) -> bool:
    return state.unschedulable and not state.cordoned_by


class Gate:
    def __init__(
        self,
        *,
        root: str,
        probe: Probe | None,
        steps: dict[str, Step],
        boots: list[BootRecord],
        changed: Callable[[], None],
        persist: Callable[[], Awaitable[None]],
    ) -> None:
        self.root = root
        self.probe = probe
        self.steps = steps
        self.boots = boots
        self._changed = changed
        self._persist = persist

    def latest_boot(self, node: str) -> BootRecord | None:
        for record in reversed(self.boots):
            if record.node == node:
                return record
        return None

    def boot_ids(self, nodes: list[TargetNode]) -> dict[str, str]:
        """Each node's boot id before its latest reboot, for ``wait_ready after_reboot``."""
        found = {}
        for node in nodes:
            record = self.latest_boot(node.name)
            if record is not None and record.outcome != "failed":
                found[node.name] = record.boot_id
        return found

    def _refusal(self, step: Step, state: NodeState, needed: set[str]) -> str | None:
        where = f"step {step.common.id} needs node {state.name}"
        if CORDONED in needed and not (state.unschedulable and state.cordoned_by == self.root):
            if not state.unschedulable:
                return f"{where} cordoned by this run; it is schedulable"
            if not state.cordoned_by:
                return f"{where} cordoned by this run; it was cordoned by hand"
            return f"{where} cordoned by this run; it is cordoned by task {state.cordoned_by}"
        if DRAINED in needed and state.pods_left:
            shown = ", ".join(state.pods_left[:5]) + (" …" if len(state.pods_left) > 5 else "")
            return f"{where} drained; {len(state.pods_left)} pod(s) left on it: {shown}"
        return None

    async def _rebooted(self, step: Step, node: str, record: BootRecord) -> str | None:
        """None once ``node`` booted anew since ``record``; else why it is not given back."""
        assert self.probe is not None
        limit = float(step.common.timeout) if step.common.timeout else BOOT_WAIT
        until = time.monotonic() + limit
        while True:
            state = await self.probe.state(node)
            if state.boot_id and state.boot_id != record.boot_id:
                return None
            if time.monotonic() >= until:
                if state.ready:
                    # Up, Ready and on the same boot for the whole wait: no reboot is coming
                    # (a reboot asked for takes the node down well within it), so the node
                    # goes back rather than stay out of service for good.
                    return None
                return (
                    f"step {step.common.id} gives node {node} back only after its reboot: its "
                    f"boot id is still {record.boot_id} (recorded before step {record.step_id}) "
                    "and it is not Ready"
                )
            await asyncio.sleep(BOOT_POLL)

    async def admit(
        self, step: Step, nodes: list[TargetNode], batch: int
    ) -> tuple[list[TargetNode], dict[str, NodeDetail]]:
        """The nodes ``step`` may run on now, and why each other one may not. For a step that
        reboots, each admitted node's boot id is recorded (after the checks, just before the
        step runs)."""
        if self.probe is None:
            return nodes, {}
        needed = required(step)
        new_boot = needs_new_boot(step, self.steps)
        if not needed and not new_boot:
            return nodes, {}
        admitted: list[TargetNode] = []
        refused: dict[str, NodeDetail] = {}
        for node in nodes:
            state = await self.probe.state(node.name)
            why = self._refusal(step, state, needed) if needed else None
            if why is None and new_boot:
                record = self.latest_boot(node.name)
                if record is not None and record.outcome != "failed":
                    why = await self._rebooted(step, node.name, record)
            if why is not None:
                refused[node.name] = NodeDetail(reason="precondition", message=why)
                continue
            admitted.append(node)
            if step.common.reboots:
                self.boots.append(
                    BootRecord(
                        node=node.name, step_id=step.common.id, batch=batch, boot_id=state.boot_id
                    )
                )
        if step.common.reboots and admitted:
            # Stored before the step runs: a worker that dies during the reboot leaves the boot
            # ids to the one that recovers the run, whose finalizer waits for new ones.
            await self._persist()
        return admitted, refused

    def step_ended(self, step: Step, batch: int, failed_nodes: set[str]) -> None:
        """A rebooting step that failed on a node (it ran and said so) asked for no reboot
        there; one cancelled, timed out or lost may have, so its node waits for a new boot id."""
        touched = False
        for record in self.boots:
            mine = record.step_id == step.common.id and record.batch == batch
            if mine and record.outcome == "running":
                record.outcome = "failed" if record.node in failed_nodes else "success"
                touched = True
        if touched:
            self._changed()
