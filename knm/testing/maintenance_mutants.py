"""The engine as it was before issue 19's findings 1–3 were fixed, one finding at a time, to
show that :class:`~knm.testing.maintenance_lab.MaintenanceMachine` finds each.

The code before the fix cannot run the machine (it lacks the preconditions, typed parameters
and node locks the machine's workflow uses), so each mutant monkeypatches today's engine back
to the old behaviour for one finding, in a lab's knm processes only (the lab puts a
``sitecustomize`` that calls :func:`apply_from_env` on their ``PYTHONPATH``,
:func:`knm.testing.maintenance_lab.mutant_env`). Nothing here is reachable from the product:
no setting of knm turns a mutant on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: The variable naming the mutant a lab's knm process applies at start.
ENV = "MAINTENANCE_LAB_MUTANT"


#: One move of the maintenance machine: a rule's name and its arguments, or ``("settle", {})``
#: (wait until every task the example started has ended).
Move = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Mutant:
    name: str
    finding: int
    #: What the engine does wrong, as the issue's finding describes it.
    old_behaviour: str
    #: Pieces of the messages of the invariants the machine is expected to break (any one).
    breaks: tuple[str, ...]
    apply: Callable[[], None]
    #: The finding's setting as moves of the machine: on the mutant, its invariants break every
    #: time; on the engine as it is, nothing breaks (:func:`~knm.testing.maintenance_lab.replay`).
    #: The random hunts (``python -m bench.maintenance_mutants``) find the same settings by chance.
    shown_by: tuple[Move, ...]


# --- finding 1: boot ids recorded once, when the batch starts -----------------------------

#: The boot ids a batch started with, for the records its gate takes in this asyncio task.
_batch_start_boots: ContextVar[dict[str, str] | None] = ContextVar(
    "batch_start_boots", default=None
)


def _boot_ids_at_batch_start() -> None:
    from knm.plugins.workflows import engine, gate

    real_record = gate.BootRecord

    def record(**fields: Any) -> Any:
        # The gate records a node's boot id right before each rebooting step; the old engine
        # had one, recorded before cordon (its ``record_boot_id`` first step).
        starts = _batch_start_boots.get()
        if starts is not None and fields["node"] in starts:
            fields["boot_id"] = starts[fields["node"]]
        return real_record(**fields)

    real_run = engine.BatchRunner.run

    async def run(self: engine.BatchRunner, limit: int) -> None:
        starts: dict[str, str] = {}
        if self.gate.probe is not None:
            for node in self.nodes:
                starts[node.name] = (await self.gate.probe.state(node.name)).boot_id
        _batch_start_boots.set(starts)  # the step tasks copy this context when they start
        await real_run(self, limit)

    gate.BootRecord = record  # type: ignore[assignment,misc]
    engine.BatchRunner.run = run  # type: ignore[method-assign]


# --- findings 2 and 3: what resume skips ----------------------------------------------------


def _succeeded(original: dict[str, Any]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for state in original.get("steps", []):
        if state.get("status") == "success":
            found.setdefault(state.get("batch", 0), set()).add(state["id"])
    return found


def _resume_also_skips(which: Callable[[Any], bool]) -> None:
    """Resume treats the steps ``which`` picks as done in a batch where they succeeded
    before, as the old ``_completed_before`` did with every step that succeeded."""
    from knm.plugins.workflows.executor import WorkflowExecutor

    real = WorkflowExecutor._completed_before

    def completed_before(original: dict[str, Any], steps: list[Any]) -> dict[int, set[str]]:
        done = real(original, steps)
        picked = {s.common.id for s in steps if which(s)}
        for batch, succeeded in _succeeded(original).items():
            done[batch] = done.get(batch, set()) | (succeeded & picked)
        return done

    WorkflowExecutor._completed_before = staticmethod(completed_before)  # type: ignore[method-assign]


def _resume_trusts_cordon_and_drain() -> None:
    from knm.plugins.workflows.conditions import establishes
    from knm.plugins.workflows.executor import WorkflowExecutor
    from knm.plugins.workflows.gate import Gate

    _resume_also_skips(establishes)
    real_gate = WorkflowExecutor._gate

    async def make_gate(self: WorkflowExecutor, ctx: Any, steps: Any, journal: Any) -> Gate:
        found = await real_gate(self, ctx, steps, journal)
        # The old engine checked nothing before a step: in a resumed run, the steps it skipped
        # as done are believed to hold (the cordon and the drain).
        found.trusting = bool(ctx.request.resumed_from)  # type: ignore[attr-defined]
        return found

    real_refusal = Gate._refusal

    def refusal(self: Gate, step: Any, state: Any, needed: set[str]) -> str | None:
        if getattr(self, "trusting", False):
            return None
        return real_refusal(self, step, state, needed)

    WorkflowExecutor._gate = make_gate  # type: ignore[method-assign]
    Gate._refusal = refusal  # type: ignore[method-assign]


def _resume_skips_finalizers() -> None:
    _resume_also_skips(lambda step: step.common.when == "always")


MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            name="boot_id_at_batch_start",
            finding=1,
            old_behaviour=(
                "wait_ready after_reboot and the uncordon after it compare the boot id recorded "
                "when the node's batch started, not the one recorded right before the node's own "
                "rebooting step: a reboot by an earlier step (the upgrade's reboot_if_needed) "
                "satisfies them"
            ),
            breaks=(
                "which was schedulable or not cordoned by knm",
                "before its reboot was confirmed",
            ),
            apply=_boot_ids_at_batch_start,
            # Every node's upgrade reboots it: the first batch's wait_ready then sees a new boot
            # id before the reboot step's own reboot has happened.
            shown_by=(
                ("begin", {"nodes": [0, 1, 2]}),
                *(("upgrade_reboots", {"node": n}) for n in (0, 1, 2)),
            ),
        ),
        Mutant(
            name="resume_trusts_cordon",
            finding=2,
            old_behaviour=(
                "resume skips the cordon and drain that succeeded before and checks nothing "
                "before the steps after them, so it reboots a node the failed run's clean-up "
                "gave back"
            ),
            breaks=("which was schedulable or not cordoned by knm", "with pods on it"),
            apply=_resume_trusts_cordon_and_drain,
            # The first batch's upgrade fails, its finalizer gives the node back, the roll is
            # resumed: the resumed run must cordon and drain it again before its reboot.
            shown_by=(
                ("begin", {"nodes": [0, 1, 2]}),
                ("fail_upgrade_then_resume", {"pick": 0}),
            ),
        ),
        Mutant(
            name="resume_skips_finalizers",
            finding=3,
            old_behaviour=(
                "resume skips the finalizers (when: always) of a batch whose finalizers ran "
                "before, so a resumed run that fails after re-cordoning leaves the cordon"
            ),
            breaks=("knm cordons left after every task ended",),
            apply=_resume_skips_finalizers,
            # The first batch's upgrade fails (its finalizer ran), and fails again in the resumed
            # run after that re-cordoned the node: only the finalizer can give it back.
            shown_by=(
                ("begin", {"nodes": [0, 1, 2]}),
                *(("upgrade_fails", {"node": n}) for n in (0, 1, 2)),
                ("settle", {}),
                *(("upgrade_fails", {"node": n}) for n in (0, 1, 2)),
                ("resume", {"pick": 0}),
            ),
        ),
    )
}


def apply(name: str) -> None:
    MUTANTS[name].apply()
    print(f"maintenance mutant {name} applied in pid {os.getpid()}", file=sys.stderr)


def apply_from_env() -> None:
    name = os.environ.get(ENV)
    if name:
        apply(name)
