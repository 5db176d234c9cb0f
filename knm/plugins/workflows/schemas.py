"""Workflow settings, definitions and request structs."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from knm.core.features import ExecutorSettings
from knm.core.tasks import ExecRequest


class WorkflowsSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: steps of one workflow running at once."""

    timeout: int = 86_400
    max_concurrent: int = 10
    max_steps: int = 200

    def problems(self) -> list[str]:
        found = super().problems()
        if not 1 <= self.max_steps <= 10_000:
            found.append("max_steps must be between 1 and 10000")
        return found


class Parameter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    default: str | None = None
    required: bool = False
    #: ``string``: a value (reaches a command as one word, never as shell syntax).
    #: ``integer``/``boolean``: a value checked as such; a field that is exactly this one
    #: reference gets the typed value. ``command``: a whole command, checked by the guard-rail,
    #: allowed only as a ``command`` field's entire text.
    type: Literal["string", "integer", "boolean", "command"] = "string"


class Retry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_attempts: int = 1
    #: Seconds before the second attempt.
    delay: float = 0.0
    #: Each later delay is the previous one times this.
    backoff: float = 2.0


class Strategy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["all", "rolling"] = "all"
    batch_size: int = 1
    #: Failed batches tolerated before the roll stops (untouched nodes stay untouched).
    max_failed_batches: int = 0
    #: Seconds between batches.
    pause_between: float = 0.0
    #: A node someone cordoned by hand, in a workflow that cordons: ``skip`` it (its result is
    #: ``failed`` with reason ``skipped``; the roll goes on and it alone does not fail the task)
    #: or ``fail`` it (reason ``refused``; the batch fails).
    on_hand_cordoned: Literal["skip", "fail"] = "skip"


class StepCommon(msgspec.Struct, kw_only=True):
    """The fields every step has; the rest of a step belongs to its type."""

    id: str
    type: str
    name: str = ""
    depends_on: list[str] = msgspec.field(default_factory=list)
    timeout: int | None = None
    when: Literal["on_success", "on_failure", "always"] = "on_success"
    continue_on_error: bool = False
    retry: Retry = msgspec.field(default_factory=Retry)
    #: Node names, or a label selector, narrowing the workflow's nodes for this step.
    targets: list[str] | str | None = None
    #: Node conditions the engine checks on each node right before the step runs there:
    #: ``cordoned`` (by this run) and ``drained`` (no evictable pods left).
    requires: list[Literal["cordoned", "drained"]] = msgspec.field(default_factory=list)
    #: The step may reboot its nodes: it requires ``cordoned`` and ``drained``, the engine
    #: records each node's boot id right before it runs, and a later ``uncordon`` waits for a
    #: new one.
    reboots: bool = False


COMMON_FIELDS = frozenset(f.name for f in msgspec.structs.fields(StepCommon))


class WorkflowDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a workflow's ``definition`` holds. Steps stay as objects because each step type adds
    its own fields (``"type": "k8s", "action": "cordon"``)."""

    steps: list[dict[str, Any]] = msgspec.field(default_factory=list)
    parameters: list[Parameter] = msgspec.field(default_factory=list)
    strategy: Strategy = msgspec.field(default_factory=Strategy)
    #: Take knm's per-node disruption locks for each batch, whatever the step types.
    disruptive: bool = False
    #: The name of a maintenance window (``/windows``) this workflow's disruptive work must be
    #: inside, besides the one its cluster requires: a batch with disruptive or rebooting steps
    #: starts only while every required window is open.
    maintenance_window: str | None = None


class StepCount(msgspec.Struct):
    step_count: int


class WorkflowRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    workflow_id: int
    parameters: dict[str, str] = msgspec.field(default_factory=dict)
    #: A workflow task to resume: steps it completed are skipped (set by the resume route).
    resumed_from: str | None = None
    #: Leave nodes of a failed batch cordoned: ``uncordon`` finalizers skip them.
    keep_failed_cordoned: bool = False
    #: Outside the required maintenance window, wait for its next opening instead of the 422.
    wait_for_window: bool = False


class Decision(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    step_id: str
    comment: str = ""


class ResumeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    parameters: dict[str, str] | None = None
    #: Outside the required maintenance window, wait for it (the original's choice otherwise).
    wait_for_window: bool | None = None


#: A step's status as the contract shows it (status answers and ``step`` events): knm keeps
#: ``success`` internally, the contract says ``completed``.
WIRE_STEP_STATUS = {"success": "completed"}
#: A finished step's ``result`` on the wire: the contract's string. Pending, running and
#: skipped steps have none.
WIRE_STEP_RESULT = {"success": "success", "failed": "failed", "cancelled": "failed"}
