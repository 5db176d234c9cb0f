"""Running a workflow's DAG over one batch of nodes.

Every step whose dependencies are settled starts at once (bounded by ``max_concurrent``) and is
awaited to its real end: an executor step is a child task of that executor. ``when`` decides what
runs after a failure; ``always`` steps run even after a cancel, with a fresh cancel signal and
their own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core import policy
from knm.core.errors import KnmError
from knm.core.policy import CommandContext
from knm.core.selectors import parse_selector
from knm.core.tasks import TargetNode, TaskContext, locks
from knm.core.tasks.steps import NodeDetail, StepOutcome, StepRun, StepType
from knm.plugins.workflows.checks import run_time_reboots
from knm.plugins.workflows.conditions import k8s_action
from knm.plugins.workflows.definition import Step, resolve_references
from knm.plugins.workflows.gate import BootRecord, Gate
from knm.plugins.workflows.schemas import WIRE_STEP_RESULT, WIRE_STEP_STATUS
from knm.plugins.workflows.templates import RenderError, render, render_command

if TYPE_CHECKING:
    from knm.core.state import Knm

SETTLED = frozenset({"success", "failed", "skipped", "cancelled"})
#: Node ends after which a rebooting step may or may not have rebooted the node.
UNCERTAIN = frozenset({"cancelled", "timeout", "worker_lost", "connection_lost", "error"})


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class StepState(msgspec.Struct, kw_only=True, omit_defaults=False):
    """One step in one batch, as status answers show it."""

    id: str
    name: str
    type: str
    batch: int
    status: str = "pending"
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    result: dict[str, Any] = msgspec.field(default_factory=dict)
    progress: int = 0
    attempts: int = 0
    error: str | None = None
    task_id: str | None = None
    nodes: list[str] = msgspec.field(default_factory=list)


class Journal:
    """The workflow's step states, written to the task as they change, and announced (``step``
    events) only once written: a client that acts on an event, or a worker that recovers the
    run, never finds the announced state missing from the store.

    :meth:`changed` is write-behind: writes coalesce for ~0.1 s and the change is announced
    after the write that stores it. :meth:`announce` stores at once (joining a write already
    under way where it can) and returns once announced: the engine awaits it before work the
    stored state must cover — a step's work begins only once it is stored ``running``, and its
    dependents only once its end is stored."""

    def __init__(
        self, ctx: TaskContext, states: list[StepState], boots: list[BootRecord] | None = None
    ) -> None:
        self.ctx = ctx
        self.states = states
        #: Boot ids recorded before each rebooting step, per node, kept with the run.
        self.boots: list[BootRecord] = boots if boots is not None else []
        self._dirty = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.current_step: str | None = None
        #: Running steps in the order they started (a dict keeps insertion order).
        self._running: dict[tuple[int, str], None] = {}
        #: Step events whose states are not stored yet, in the order of the changes.
        self._unannounced: list[tuple[str, dict[str, Any]]] = []
        #: Changes made, and changes stored (the count when the last write began).
        self._made = 0
        self._stored = 0
        self._writing = asyncio.Lock()

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.flush()

    def changed(self, state: StepState) -> None:
        key = (state.batch, state.id)
        if state.status == "running":
            self._running[key] = None
        elif state.status in SETTLED:
            self._running.pop(key, None)
        self.current_step = next(reversed(self._running))[1] if self._running else state.id
        status = WIRE_STEP_STATUS.get(state.status, state.status)
        self._unannounced.append(
            (
                f"step {state.id} {status}"
                + (f" (batch {state.batch + 1})" if state.batch else ""),
                {
                    "step_id": state.id,
                    # A client tells an approval it may answer from another running step.
                    "step_type": state.type,
                    "status": status,
                    "result": WIRE_STEP_RESULT.get(state.status),
                    "batch": state.batch,
                    **({"task_id": state.task_id} if state.task_id else {}),
                    **({"error": state.error} if state.error else {}),
                },
            )
        )
        self._made += 1
        self._dirty.set()

    async def announce(self, state: StepState) -> None:
        """``state``'s change, stored and then announced, before this returns."""
        self.changed(state)
        await self.stored()

    async def stored(self) -> None:
        """Every change so far, stored and announced (at no cost when they are)."""
        await self._store(self._made)

    async def flush(self) -> None:
        """Everything, stored now (boot ids included), and what it covers announced."""
        await self._store(None)

    def boots_changed(self) -> None:
        self._dirty.set()

    async def _store(self, upto: int | None) -> None:
        async with self._writing:
            if upto is not None and self._stored >= upto:
                return  # a write that began after the change stored it (and announced it)
            self._dirty.clear()
            made = self._made
            events, self._unannounced = self._unannounced, []
            try:
                saved = await self.ctx.save_result(
                    steps=[msgspec.to_builtins(s) for s in self.states],
                    current_step=self.current_step,
                    boot_ids=[msgspec.to_builtins(b) for b in self.boots],
                )
            except BaseException:
                # Not stored: not announced either; the next write carries them.
                self._unannounced[:0] = events
                self._dirty.set()
                raise
            self._stored = made
            if not saved:
                return  # the task ended, or another worker holds it: its states are not these
            for message, data in events:
                self.ctx.emit("step", message, data)

    async def _write_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.1)
            await self.flush()


class BatchRunner:
    def __init__(
        self,
        *,
        ctx: TaskContext,
        journal: Journal,
        steps: list[Step],
        batch: int,
        nodes: list[TargetNode],
        params: dict[str, str],
        completed: set[str],
        cancelled: asyncio.Event,
        gate: Gate,
        types: dict[str, str] | None = None,
        keep_failed_cordoned: bool = False,
    ) -> None:
        self.gate = gate
        #: Declared parameter types (``integer``, ``boolean``, ``command``).
        self.types = types or {}
        self.keep_failed_cordoned = keep_failed_cordoned
        self.ctx = ctx
        self.knm = ctx.knm
        self.journal = journal
        self.steps = {s.common.id: s for s in steps}
        self.order = [s.common.id for s in steps]
        self.batch = batch
        self.nodes = nodes
        self.params = params
        self.completed = completed
        self.cancelled = cancelled
        self.step_types = ctx.knm.registry.step_types
        self.states = {s.id: s for s in journal.states if s.batch == batch}
        self.results: dict[str, dict[str, Any]] = {}
        #: node → (reason, message) for nodes a failed step failed.
        self.failed_nodes: dict[str, tuple[str, str]] = {}
        self.failed = False

    # --- scheduling -----------------------------------------------------------------------

    def _decide(self, step: Step) -> str | None:
        """``run`` or ``skipped``, or None while dependencies are unsettled."""
        deps = [self.states[d] for d in step.common.depends_on]
        if any(d.status not in SETTLED for d in deps):
            return None
        if self.ctx.lease_lost:
            # Another worker holds the workflow: its recovery runs the finalizers, once.
            return "skipped"
        if self.cancelled.is_set() and step.common.when != "always":
            return "skipped"
        ok = all(
            d.status == "success"
            or (d.status == "failed" and self.steps[d.id].common.continue_on_error)
            for d in deps
        )
        any_failed = any(d.status in ("failed", "cancelled") for d in deps)
        if step.common.when == "always":
            return "run"
        if step.common.when == "on_failure":
            return "run" if any_failed else "skipped"
        return "run" if ok else "skipped"

    async def run(self, limit: int) -> None:
        """Start every step as its dependencies settle; linear in the number of steps (each
        settled step only looks at its own dependents)."""
        slots = asyncio.Semaphore(limit)
        dependents: dict[str, list[str]] = {i: [] for i in self.order}
        waiting: dict[str, int] = {}
        for step_id in self.order:
            deps = self.steps[step_id].common.depends_on
            waiting[step_id] = len(deps)
            for dep in deps:
                dependents[dep].append(step_id)
        ready = deque(i for i in self.order if waiting[i] == 0)
        running: dict[asyncio.Task[None], str] = {}

        def settled(step_id: str) -> None:
            for follower in dependents[step_id]:
                waiting[follower] -= 1
                if waiting[follower] == 0:
                    ready.append(follower)

        while ready or running:
            while ready:
                step_id = ready.popleft()
                state = self.states[step_id]
                if state.status in SETTLED:
                    settled(step_id)
                    continue
                # A step re-run to re-establish a resumed batch may fail: what follows it is
                # skipped even where the original run completed it.
                if self._decide(self.steps[step_id]) == "skipped":
                    state.status = "skipped"
                    self.journal.changed(state)
                    settled(step_id)
                    continue
                if step_id in self.completed:
                    state.status = "success"
                    state.error = None
                    state.result = {**state.result, "resumed": True}
                    self.results[step_id] = state.result
                    self.journal.changed(state)
                    settled(step_id)
                    continue
                running[asyncio.create_task(self._guarded(step_id, slots))] = step_id
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                settled(running.pop(task))
        # A step left pending here depends on one that never settled (cannot happen in a DAG
        # that passed validation); say so rather than leave it pending forever.
        for step_id in self.order:
            if self.states[step_id].status == "pending":
                self.states[step_id].status = "skipped"
                self.states[step_id].error = "dependencies never settled"
                self.journal.changed(self.states[step_id])
        # The batch's step states are stored before its nodes' results are.
        await self.journal.stored()

    async def _guarded(self, step_id: str, slots: asyncio.Semaphore) -> None:
        async with slots:
            await self._run_step(self.steps[step_id])

    # --- one step -------------------------------------------------------------------------

    def _targets(self, step: Step) -> list[TargetNode]:
        targets = step.common.targets
        if targets is None:
            return list(self.nodes)
        if isinstance(targets, list):
            return [n for n in self.nodes if n.name in targets]
        selector = parse_selector(targets)
        return [n for n in self.nodes if selector.matches(n.labels)]

    def incomplete_for(self, node: str) -> bool:
        """Whether a step meant for ``node`` failed, or did not run because another failed."""
        for step_id, step in self.steps.items():
            state = self.states[step_id]
            try:
                targeted = node in {n.name for n in self._targets(step)}
            except KnmError:
                targeted = True
            if not targeted:
                continue
            if state.status in ("failed", "cancelled") and not step.common.continue_on_error:
                return True
            if (
                state.status == "skipped"
                and step.common.when == "on_success"
                and state.error is None
            ):
                return True
        return False

    async def _run_step(self, step: Step) -> None:
        common = step.common
        state = self.states[common.id]
        step_type = self.step_types[common.type]
        nodes = self._targets(step)
        state.nodes = [n.name for n in nodes]
        if not nodes:
            state.status = "skipped"
            state.error = "no target nodes in this batch"
            await self.journal.announce(state)
            return
        if (
            self.keep_failed_cordoned
            and k8s_action(step) == "uncordon"
            and (self.failed or self.cancelled.is_set())
        ):
            state.status = "skipped"
            state.error = "kept cordoned: the request asked for keep_failed_cordoned"
            await self.journal.announce(state)
            return
        # An ``always`` step still runs after a cancel, so it gets a signal of its own.
        cancel = asyncio.Event() if common.when == "always" else self.cancelled
        state.start_time = now()
        started = time.monotonic()
        if not step_type.waits_for_client:
            # Stored before the step's work begins: a worker that dies during it leaves the
            # step ``running`` to the one that recovers the run (which fails it and runs the
            # finalizers), never ``pending`` as if it had not started.
            state.status = "running"
            await self.journal.announce(state)
        outcome = StepOutcome(status="failed", message="not run")
        delay = common.retry.delay
        for attempt in range(1, common.retry.max_attempts + 1):
            state.attempts = attempt
            outcome = await self._attempt(step, step_type, nodes, cancel)
            if (
                outcome.status != "failed"
                or attempt == common.retry.max_attempts
                or cancel.is_set()
            ):
                break
            state.error = f"attempt {attempt} failed: {outcome.message}"
            self.journal.changed(state)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), timeout=delay)
            delay *= common.retry.backoff
        state.status = outcome.status if outcome.status in SETTLED else "failed"
        state.end_time = now()
        state.duration = int(time.monotonic() - started)
        state.task_id = outcome.task_id or state.task_id
        state.result = outcome.result
        state.progress = 100
        state.error = None if outcome.status == "success" else outcome.message
        self.results[common.id] = {
            **outcome.result,
            "status": state.status,
            "message": outcome.message,
        }
        if common.reboots:
            bad_nodes = {
                n
                for n, s in outcome.nodes.items()
                if s != "success"
                and (outcome.details.get(n) or NodeDetail(reason="")).reason not in UNCERTAIN
            }
            if outcome.status == "failed" and not outcome.nodes:
                bad_nodes = set(state.nodes)  # nothing ran
            self.gate.step_ended(step, self.batch, bad_nodes)
        if state.status in ("failed", "cancelled") and not common.continue_on_error:
            self.failed = self.failed or state.status == "failed"
            bad = [n for n, s in outcome.nodes.items() if s != "success"] or state.nodes
            for node in bad:
                # The node's own reason (``drain_timeout`` naming the budget, ``refused``,
                # ``not_ready``, ``locked``, ``precondition`` …) is the workflow's for it.
                detail = outcome.details.get(node)
                if detail is not None:
                    reason = detail.reason
                    message = f"step {common.id}: {detail.message or detail.reason}"
                else:
                    reason = "step_failed"
                    message = f"step {common.id} {state.status}: {outcome.message}"
                self.failed_nodes.setdefault(node, (reason, message))
        # Stored before it is announced and before any step that depends on it starts.
        await self.journal.announce(state)

    async def _lock(self, nodes: list[TargetNode]) -> locks.Refusal | None:
        """A disruptive step's nodes are locked for the workflow (released after the batch), and
        count against the cluster's ``max_unavailable``."""
        ctx = self.ctx
        return await locks.acquire_nodes(
            ctx.knm.pool,
            cluster=ctx.task.cluster_name,
            nodes=[node.name for node in nodes],
            holder=ctx.task_id,
            task_id=ctx.task_id,
            max_unavailable=locks.budget_of(await ctx.cluster()),
        )

    def _child_started(self, step_id: str, task_id: str) -> None:
        state = self.states[step_id]
        state.task_id = task_id
        self.journal.changed(state)

    async def _attempt(
        self, step: Step, step_type: StepType, nodes: list[TargetNode], cancel: asyncio.Event
    ) -> StepOutcome:
        common = step.common
        try:
            raw = dict(step.fields)
            template = raw.pop("command", None)
            fields = render(raw, self.params, self.results, types=self.types)
            command = None
            if isinstance(template, str):
                command = render_command(template, self.params, self.results, types=self.types)
                fields["command"] = command.run
            fields = await resolve_references(self.knm, fields)
            context = CommandContext(
                kind=step_type.name,
                cluster_name=self.ctx.task.cluster_name,
                username=self.ctx.task.username,
                sudo=bool(fields.get("sudo")),
            )
            if command is not None:
                violation = await _policy(self.knm, [command.checked, *command.values], context)
                if violation:
                    return StepOutcome(status="failed", message=violation)
            refusal_text = await run_time_reboots(
                self.knm, step, fields, command.checked if command else None
            )
            if refusal_text:
                return StepOutcome(status="failed", message=refusal_text)
            if step_type.disruptive:
                refusal = await self._lock(nodes)
                if refusal is not None:
                    return StepOutcome(status="failed", message=refusal.message)
            # The node's live state, right before the step runs on it (after any lock wait).
            admitted, refused = await self.gate.admit(step, nodes, self.batch)
            if not admitted:
                return _refused(refused)
            if k8s_action(step) == "wait_ready":
                params = dict(fields.get("params") or {})
                if params.get("after_reboot") and "boot_id" not in params:
                    boots = self.gate.boot_ids(admitted)
                    if boots:
                        params["boot_ids"] = boots
                    fields["params"] = params
            run = StepRun(
                workflow_task_id=self.ctx.task_id,
                step_id=common.id,
                batch=self.batch,
                cluster_name=self.ctx.task.cluster_name,
                nodes=admitted,
                credential_id=self.ctx.request.credential_id,
                timeout=common.timeout,
                params=fields,
                user_id=self.ctx.task.user_id,
                username=self.ctx.task.username,
                on_task=lambda task_id: self._child_started(common.id, task_id),
            )
            await step_type.open(self.knm, run)
            if step_type.waits_for_client:
                # Announced (again, on a retry) only now that what the client acts on exists.
                state = self.states[common.id]
                state.status = "running"
                await self.journal.announce(state)
            work = step_type.run(self.knm, run, cancel)
            if common.timeout and not hasattr(step_type, "executor"):
                outcome = await asyncio.wait_for(work, timeout=common.timeout)
            else:
                outcome = await work
            return _with_refused(outcome, refused)
        except RenderError as exc:
            return StepOutcome(status="failed", message=f"template: {exc}")
        except TimeoutError:
            return StepOutcome(status="failed", message=f"timed out after {common.timeout} s")
        except KnmError as exc:
            return StepOutcome(status="failed", message=exc.error or exc.message)
        except Exception as exc:
            return StepOutcome(status="failed", message=f"{type(exc).__name__}: {exc}")


def _refused(refused: dict[str, NodeDetail]) -> StepOutcome:
    first = next(iter(refused.values()))
    return StepOutcome(
        status="failed",
        message=first.message,
        nodes=dict.fromkeys(refused, "failed"),
        details=refused,
    )


def _with_refused(outcome: StepOutcome, refused: dict[str, NodeDetail]) -> StepOutcome:
    """A step that ran on some nodes failed on those whose conditions did not hold."""
    if not refused:
        return outcome
    first = next(iter(refused.values()))
    return StepOutcome(
        status="failed" if outcome.status == "success" else outcome.status,
        message=outcome.message if outcome.status != "success" else first.message,
        task_id=outcome.task_id,
        nodes={**outcome.nodes, **dict.fromkeys(refused, "failed")},
        details={**outcome.details, **refused},
        result=outcome.result,
    )


async def _policy(knm: Knm, texts: list[str], context: CommandContext) -> str | None:
    """The command policy again (the core's one ``check``, site rules included), on the
    rendered command (values inlined as words) and on each value rendered into it, since a
    command may hand one to a shell."""
    for text in texts:
        found = await policy.violations(knm, text, context)
        if found:
            return found[0].message
    return None
