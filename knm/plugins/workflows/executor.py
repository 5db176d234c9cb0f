"""The workflow executor: checks a run, rolls the DAG through batches, recovers after a lost
worker."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core import policy
from knm.core.content import get_pinned, get_runnable
from knm.core.errors import Invalid, NotFound
from knm.core.tasks import Executor, NodeResult, Prepared, TargetNode, TaskContext, locks
from knm.core.tasks import store as task_store
from knm.core.tasks.service import missing_credential
from knm.core.tasks.targets import prepare_targets
from knm.core.windows import check
from knm.plugins.workflows import window
from knm.plugins.workflows.conditions import establishes, touches_cordons
from knm.plugins.workflows.definition import Step, problems, steps_of, used_parameters
from knm.plugins.workflows.engine import BatchRunner, Journal, StepState
from knm.plugins.workflows.gate import BootRecord, Gate, Probe, hand_cordoned, probe_for
from knm.plugins.workflows.schemas import (
    WIRE_STEP_RESULT,
    WIRE_STEP_STATUS,
    WorkflowDefinition,
    WorkflowRequest,
)
from knm.plugins.workflows.templates import RenderError, typed

if TYPE_CHECKING:
    from knm.core.state import Knm


def batches_of(nodes: list[TargetNode], definition: WorkflowDefinition) -> list[list[TargetNode]]:
    if definition.strategy.mode == "all":
        return [nodes]
    size = max(1, definition.strategy.batch_size)
    return [nodes[i : i + size] for i in range(0, len(nodes), size)]


#: A parameter name a workflow that declares none accepts (``params.<name>`` in its steps).
FREE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Parameters such a workflow may be given.
MAX_FREE = 100


def free_parameters(used: set[str], given: dict[str, str]) -> dict[str, str]:
    """A workflow that declares no parameters takes any with a valid name; the ones its steps
    use must be given. 422 otherwise."""
    problems = []
    if bad := sorted(name for name in given if not FREE_NAME.fullmatch(name)):
        problems.append(
            f"invalid parameter names: {', '.join(bad)} (names must match ^[A-Za-z_][A-Za-z0-9_]*$)"
        )
    if len(given) > MAX_FREE:
        problems.append(f"at most {MAX_FREE} parameters are allowed")
    if missing := sorted(used - set(given)):
        problems.append(f"missing parameters the steps use: {', '.join(missing)}")
    if problems:
        raise Invalid("; ".join(problems))
    return dict(given)


def parameters_of(
    definition: WorkflowDefinition, given: dict[str, str], used: set[str] | None = None
) -> dict[str, str]:
    if not definition.parameters:
        return free_parameters(used or set(), given)
    declared = {p.name: p for p in definition.parameters}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise Invalid(
            f"undeclared parameters: {', '.join(unknown)} "
            f"(this workflow takes: {', '.join(declared)})"
        )
    values: dict[str, str] = {}
    missing = []
    for name, param in declared.items():
        if name in given:
            values[name] = given[name]
        elif param.default is not None:
            values[name] = param.default
        elif param.required:
            missing.append(name)
        else:
            values[name] = ""
    if missing:
        raise Invalid(f"missing required parameters: {', '.join(missing)}")
    for name, param in declared.items():
        if param.type in ("integer", "boolean"):
            try:
                typed(param.type, name, values[name])
            except RenderError as exc:
                raise Invalid(str(exc)) from None
    return values


def first_step(steps: list[Any]) -> str | None:
    """The id of the step that starts first: the first one depending on nothing that does
    not wait for a failure."""
    for step in steps:
        if not step.common.depends_on and step.common.when != "on_failure":
            return step.common.id
    return steps[0].common.id if steps else None


def step_on_wire(state: dict[str, Any]) -> dict[str, Any]:
    """A stored step state as status answers show it: ``status`` one of the contract's values,
    ``result`` ``"success"``/``"failed"`` (null until the step has run), and the values the
    step produced (what ``{{ steps.<id>.<key> }}`` reads) under ``outputs``."""
    status = state.get("status", "pending")
    shown = {k: v for k, v in state.items() if k != "result"}
    shown["status"] = WIRE_STEP_STATUS.get(status, status)
    shown["result"] = WIRE_STEP_RESULT.get(status)
    shown["outputs"] = state.get("result") or {}
    return shown


class WorkflowExecutor(Executor):
    kind = "workflow"
    route = "workflows"
    feature = "workflows"
    request_type = WorkflowRequest
    request_example = {
        "workflow_id": 1, "cluster_name": "production", "target_nodes": ["node1"],
        "credential_id": 1, "parameters": {"global_param1": "value1"},
    }  # fmt: skip
    answer_fields = {
        "workflow_id": int,
        "workflow_name": str,
        "workflow_version": int,
        "current_step": str,
        "total_steps": int,
        "parameters": dict[str, str],
        "resumed_from": str,
    }
    requires_credential = False
    recoverable = True
    node_output_in_status = False

    async def prepare(self, knm: Knm, request: WorkflowRequest, principal: Any) -> Prepared:
        item = await get_runnable(knm, "workflow", request.workflow_id)
        definition: WorkflowDefinition = item.body
        found = await problems(knm, definition)
        if found:
            raise Invalid("; ".join(found), message="workflow definition is invalid")
        types = knm.registry.step_types
        steps = steps_of(definition)
        params = parameters_of(definition, request.parameters, used_parameters(steps))
        for param in definition.parameters:
            # A whole-command parameter is a command: the guard-rail checks it as one.
            if param.type == "command" and params[param.name].strip():
                context = policy.CommandContext(
                    kind="workflow",
                    cluster_name=request.cluster_name,
                    username=getattr(principal, "username", None),
                )
                await policy.check(knm, params[param.name], context)
        for step in steps:
            step_type = types[step.common.type]
            if step_type.feature:
                await knm.features.require(step_type.feature)
            if step_type.needs_credential and request.credential_id is None:
                raise missing_credential(
                    request.cluster_name, f" by step {step.common.id} ({step.common.type})"
                )
        needed = await window.required(knm, request.cluster_name, definition, steps)
        check.refuse_start(needed, bool(needed), request.wait_for_window)
        prepared = await prepare_targets(knm, request)
        resumed: dict[str, Any] = {}
        if request.resumed_from:
            original = await task_store.get_task(knm.pool, request.resumed_from)
            if original is None or original.kind != "workflow":
                raise NotFound(f"Task {request.resumed_from} not found")
            resumed = {"resumed_from": request.resumed_from}
        prepared.summary = {
            "workflow_id": item.id,
            "workflow_name": item.name,
            "workflow_version": item.version,
            "total_steps": len(steps),
            "current_step": first_step(steps),
            "parameters": params,
            **resumed,
        }
        return prepared

    def status_fields(self, task: Any) -> dict[str, Any]:
        result = task.result or {}
        return {
            # Until a step has started, the one that will (as the execute answer said).
            "current_step": result.get("current_step") or task.summary.get("current_step"),
            "total_steps": task.summary.get("total_steps"),
            "steps": [step_on_wire(state) for state in result.get("steps", [])],
        }

    async def _load(self, ctx: TaskContext) -> tuple[WorkflowDefinition, dict[str, str]]:
        # The version this task started with, even if the workflow was edited since.
        item = await get_pinned(
            ctx.knm, "workflow", ctx.request.workflow_id, ctx.task.summary["workflow_version"]
        )
        return item.body, dict(ctx.task.summary.get("parameters", {}))

    async def _original(self, ctx: TaskContext) -> dict[str, Any]:
        origin = ctx.request.resumed_from
        if not origin:
            return {}
        original = await task_store.get_task(ctx.knm.pool, origin)
        return original.result if original else {}

    @staticmethod
    def _completed_before(original: dict[str, Any], steps: list[Step]) -> dict[int, set[str]]:
        """Per batch, the steps a resumed run does not run again.

        A batch the original finished (every step succeeded) is done. In any other batch the
        resumed run re-establishes before it continues: steps that establish node conditions
        (``cordon``, ``drain``) run again (at no cost where the state held), and finalizers
        (``when: always``) always run; every step is checked against the node's live state
        anyway."""
        by_batch: dict[int, list[dict[str, Any]]] = {}
        for state in original.get("steps", []):
            by_batch.setdefault(state.get("batch", 0), []).append(state)
        when = {s.common.id: s.common.when for s in steps}
        again = {s.common.id for s in steps if establishes(s) or s.common.when == "always"}
        done: dict[int, set[str]] = {}
        for batch, found in by_batch.items():

            def finished(state: dict[str, Any]) -> bool:
                if state.get("status") == "success":
                    return True
                # Skipped for a reason other than a failure or a cancel elsewhere.
                return state.get("status") == "skipped" and (
                    when.get(state["id"]) != "on_success"
                    or state.get("error") == "no target nodes in this batch"
                )

            if all(finished(state) for state in found):
                done[batch] = {state["id"] for state in found}
            else:
                succeeded = {s["id"] for s in found if s.get("status") == "success"}
                done[batch] = succeeded - again
        return done

    async def _gate(self, ctx: TaskContext, steps: list[Step], journal: Journal) -> Gate:
        probe: Probe | None = await probe_for(ctx)
        return Gate(
            root=ctx.task_id,
            probe=probe,
            steps={s.common.id: s for s in steps},
            boots=journal.boots,
            changed=journal.boots_changed,
            persist=journal.flush,
        )

    async def _admit_batch(
        self,
        ctx: TaskContext,
        definition: WorkflowDefinition,
        steps: list[Step],
        gate: Gate,
        nodes: list[TargetNode],
    ) -> tuple[list[TargetNode], bool]:
        """The batch's nodes that go ahead, and whether one was refused in a way that fails the
        batch. A node cordoned by hand is skipped or refused (``on_hand_cordoned``) in a
        workflow that cordons; a ``disruptive`` workflow takes each node's lock, counting
        against the cluster's ``max_unavailable``."""
        going: list[TargetNode] = []
        failed = False
        probe = gate.probe
        for node in nodes:
            if probe is not None and touches_cordons(steps):
                state = await probe.state(node.name)
                if hand_cordoned(state):
                    message = (
                        f"node {node.name} was cordoned by hand (it has no knm.io/cordoned-by "
                        "annotation); knm leaves it alone"
                    )
                    if definition.strategy.on_hand_cordoned == "skip":
                        await ctx.node_finished(
                            node.name,
                            NodeResult.failure(
                                "skipped", f"{message}: skipped (on_hand_cordoned: skip)",
                                tolerated=True,
                            ),
                        )  # fmt: skip
                    else:
                        failed = True
                        await ctx.node_finished(
                            node.name,
                            NodeResult.failure("refused", f"{message} (on_hand_cordoned: fail)"),
                        )
                    continue
            if definition.disruptive:
                refusal = await locks.acquire(
                    ctx.knm.pool,
                    cluster=ctx.task.cluster_name,
                    node=node.name,
                    holder=ctx.task_id,
                    task_id=ctx.task_id,
                    max_unavailable=locks.budget_of(await ctx.cluster()),
                    cordoned_by_knm=probe.cordoned_by_knm if probe is not None else None,
                )
                if refusal is not None:
                    failed = True
                    await ctx.node_finished(
                        node.name, NodeResult.failure(refusal.reason, refusal.message)
                    )
                    continue
            going.append(node)
        return going, failed

    async def run(self, ctx: TaskContext) -> None:
        definition, params = await self._load(ctx)
        steps = steps_of(definition)
        batches = batches_of(ctx.nodes, definition)
        states = [
            StepState(
                id=s.common.id, name=s.common.name or s.common.id, type=s.common.type, batch=b
            )
            for b in range(len(batches))
            for s in steps
        ]
        original = await self._original(ctx)
        boots = [msgspec.convert(b, BootRecord) for b in original.get("boot_ids", [])]
        journal = Journal(ctx, states, boots)
        journal.start()
        completed = self._completed_before(original, steps)
        types = {p.name: p.type for p in definition.parameters}
        failed_batches = 0
        limit = ctx.settings.max_concurrent
        #: Set when the roll stopped at its window's end: the unreached nodes' message.
        closed: str | None = None
        ran = False
        try:
            gate = await self._gate(ctx, steps, journal)
            for index, nodes in enumerate(batches):
                if (
                    ctx.cancelled.is_set()
                    or failed_batches > definition.strategy.max_failed_batches
                ):
                    break
                if index and definition.strategy.pause_between > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            ctx.cancelled.wait(), definition.strategy.pause_between
                        )
                done = completed.get(index, set())
                batch_done = bool(steps) and all(s.common.id in done for s in steps)
                if not batch_done:
                    # Re-read each batch: an admin may have changed the window meanwhile.
                    needed = await window.required(
                        ctx.knm, ctx.task.cluster_name, definition, steps
                    )
                    at = check.now()
                    if needed and not needed.is_open(at):
                        if ran or not ctx.request.wait_for_window:
                            closed = await window.stop_roll(ctx, needed, at)
                            break
                        if not await window.wait_for_opening(ctx, definition, steps):
                            break
                    ran = True
                for node in nodes:
                    await ctx.node_started(node.name)
                going, refused = (
                    (nodes, False)
                    if batch_done
                    else await self._admit_batch(ctx, definition, steps, gate, nodes)
                )
                if refused:
                    failed_batches += 1
                if going:
                    runner = BatchRunner(
                        ctx=ctx,
                        journal=journal,
                        steps=steps,
                        batch=index,
                        nodes=going,
                        params=params,
                        completed=done,
                        cancelled=ctx.cancelled,
                        gate=gate,
                        types=types,
                        keep_failed_cordoned=ctx.request.keep_failed_cordoned,
                    )
                    await runner.run(limit)
                    if runner.failed and not refused:
                        failed_batches += 1
                    await self._settle(ctx, runner, going)
                else:
                    for state in states:
                        if state.batch == index and state.status == "pending":
                            state.status = "skipped"
                            state.error = "no node of this batch went ahead"
                            journal.changed(state)
                await _release_node_locks(ctx, nodes)
                await ctx.progress(
                    100 * (index + 1) / len(batches), f"batch {index + 1} of {len(batches)} done"
                )
        finally:
            await journal.close()
            await _release_node_locks(ctx, None)
        for nodes in batches:
            for node in nodes:
                if not ctx.finished(node.name):
                    message = (
                        "cancelled" if ctx.cancelled.is_set() else "not reached: the roll stopped"
                    )
                    reason = "cancelled" if ctx.cancelled.is_set() else "skipped"
                    if closed is not None and not ctx.cancelled.is_set():
                        reason, message = check.WINDOW_CLOSED, closed
                    await ctx.node_finished(node.name, NodeResult.failure(reason, message))
        if closed is not None:
            raise check.WindowClosed()

    async def _settle(self, ctx: TaskContext, runner: BatchRunner, nodes: list[TargetNode]) -> None:
        for node in nodes:
            if node.name in runner.failed_nodes:
                reason, message = runner.failed_nodes[node.name]
                await ctx.node_finished(node.name, NodeResult.failure(reason, message))
            elif ctx.cancelled.is_set():
                await ctx.node_finished(
                    node.name, NodeResult.failure("cancelled", "workflow cancelled")
                )
            elif runner.incomplete_for(node.name):
                await ctx.node_finished(
                    node.name,
                    NodeResult.failure("skipped", "later steps did not run after a failure"),
                )
            else:
                await ctx.node_finished(node.name, NodeResult.success("all steps done"))

    async def recover(self, ctx: TaskContext) -> None:
        """The worker running this workflow died: steps it ran are lost; finalizers still run."""
        await _end_children(ctx)
        definition, params = await self._load(ctx)
        steps = steps_of(definition)
        batches = batches_of(ctx.nodes, definition)
        saved = {(s["batch"], s["id"]): s for s in ctx.task.result.get("steps", [])}
        states = []
        for b in range(len(batches)):
            for s in steps:
                old = saved.get((b, s.common.id), {})
                state = msgspec.convert(
                    old
                    or {
                        "id": s.common.id,
                        "name": s.common.name or s.common.id,
                        "type": s.common.type,
                        "batch": b,
                    },
                    StepState,
                )
                if s.common.when == "always" and state.status != "success":
                    # A finalizer the lost worker did not finish (it may have died during an
                    # earlier recovery) runs again: they are written to be idempotent.
                    state.status, state.error, state.task_id = "pending", None, None
                elif state.status == "running":
                    state.status = "failed"
                    state.error = "worker lost"
                states.append(state)
        boots = [msgspec.convert(b, BootRecord) for b in ctx.task.result.get("boot_ids", [])]
        journal = Journal(ctx, states, boots)
        journal.start()
        types = {p.name: p.type for p in definition.parameters}
        try:
            gate = await self._gate(ctx, steps, journal)
            for index, nodes in enumerate(batches):
                batch_states = [s for s in states if s.batch == index]
                if all(s.status == "pending" for s in batch_states):
                    continue  # never reached
                if all(s.status in ("success", "skipped") for s in batch_states):
                    for node in nodes:
                        if not ctx.finished(node.name):
                            await ctx.node_finished(node.name, NodeResult.success("all steps done"))
                    continue
                # Run what is left of the interrupted batch as if cancelled: only ``always`` steps.
                lost = asyncio.Event()
                lost.set()
                runner = BatchRunner(
                    ctx=ctx,
                    journal=journal,
                    steps=steps,
                    batch=index,
                    nodes=nodes,
                    params=params,
                    completed=set(),
                    cancelled=lost,
                    gate=gate,
                    types=types,
                    keep_failed_cordoned=ctx.request.keep_failed_cordoned,
                )
                await runner.run(ctx.settings.max_concurrent)
                for node in nodes:
                    if not ctx.finished(node.name):
                        await ctx.node_finished(
                            node.name,
                            NodeResult.failure("worker_lost", "worker lost; finalizers ran"),
                        )
        finally:
            await journal.close()
            await _release_node_locks(ctx, None)
        for nodes in batches:
            for node in nodes:
                if not ctx.finished(node.name):
                    await ctx.node_finished(
                        node.name, NodeResult.failure("worker_lost", "worker lost")
                    )


async def _end_children(ctx: TaskContext) -> None:
    """Step tasks the lost worker started, or left queued, end before the finalizers run: a
    queued cordon must not run later, for a workflow that is over, and cordon a node then."""
    from knm.core.tasks.steps import wait_for_task

    stop = asyncio.Event()
    stop.set()
    for child in await task_store.open_children(ctx.knm.pool, ctx.task_id):
        # Cancels it and waits for its end (a dead worker's child ends when it is reaped).
        await wait_for_task(ctx.knm, child, stop)


async def _release_node_locks(ctx: TaskContext, nodes: list[TargetNode] | None) -> None:
    """Node locks taken for this workflow's steps (its disruptive steps, its k8s actions) are
    held for their batch only, so ``max_unavailable`` lets the next batch proceed (a node left
    cordoned still counts). Not by a worker that lost the workflow's lease: they are the new
    owner's."""
    if ctx.lease_lost:
        return
    if nodes is None:
        await locks.release_all(ctx.knm.pool, ctx.task_id)
        return
    for node in nodes:
        await locks.release(ctx.knm.pool, ctx.task.cluster_name, node.name, ctx.task_id)
