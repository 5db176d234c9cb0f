"""Workflow step types, and the one adapter that makes every executor a step type.

A step type names the fields a step of its type carries (``params_type``), checks them when a
workflow is saved, and runs a step over a set of nodes. An executor's step starts a child task of
that executor (``parent_task_id`` is the workflow's task) and waits for its terminal state, so an
``ansible`` step runs exactly the code an Ansible run does.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from knm.core.errors import KnmError
from knm.core.tasks import store
from knm.core.tasks.executor import Executor, TargetNode
from knm.core.tasks.schemas import TERMINAL, ExecRequest

if TYPE_CHECKING:
    from knm.core.state import Knm

#: Fields every executor request has that a workflow supplies, not the step.
WORKFLOW_SUPPLIED = frozenset(f.name for f in msgspec.structs.fields(ExecRequest))


class NodeDetail(msgspec.Struct, kw_only=True):
    reason: str
    message: str = ""


class StepOutcome(msgspec.Struct, kw_only=True):
    """How a step ended on its nodes."""

    status: str  # "success" | "failed" | "cancelled"
    message: str = ""
    task_id: str | None = None
    #: Per node: "success" or "failed".
    nodes: dict[str, str] = msgspec.field(default_factory=dict)
    #: Per failed node: why (``reason``) and what happened (``message``), as its task said.
    details: dict[str, NodeDetail] = msgspec.field(default_factory=dict)
    #: Values later steps can use as ``{{ steps.<id>.<key> }}``.
    result: dict[str, Any] = msgspec.field(default_factory=dict)


class StepRun(msgspec.Struct, kw_only=True):
    """What a step type gets to run one step."""

    workflow_task_id: str
    step_id: str
    #: The rolling batch (0 in ``all`` mode).
    batch: int = 0
    cluster_name: str
    nodes: list[TargetNode]
    credential_id: int | None
    timeout: int | None
    params: dict[str, Any]
    user_id: int | None
    username: str | None
    #: Called with a child task's id as soon as it exists (status answers show it at once).
    on_task: Any = None


class StepType(abc.ABC):
    """Base of step types that are not executors (``approval``, third parties' ``http``)."""

    name: ClassVar[str]
    params_type: ClassVar[type[msgspec.Struct]]
    #: The feature switch the step needs on (403 at execute when off), if any.
    feature: ClassVar[str | None] = None
    #: Steps of this type take knm's per-node disruption locks for their batch.
    disruptive: ClassVar[bool] = False
    needs_credential: ClassVar[bool] = False
    #: A step of this type waits for a client (an approval's decision): the engine calls
    #: :meth:`open` after the step's checks and announces the step running only once it has
    #: returned, so a client acting on that announcement finds what it acts on. Other steps
    #: are announced running as soon as their checks begin.
    waits_for_client: ClassVar[bool] = False

    def problems(self, knm: Knm, params: Any) -> list[str]:
        """Value problems of a step's fields, checked when a workflow is saved."""
        return []

    async def open(self, knm: Knm, run: StepRun) -> None:
        """Store what a client may act on once the step is announced (an approval's pending
        request), before :meth:`run`; each attempt opens the step again."""
        return None

    @abc.abstractmethod
    async def run(self, knm: Knm, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        """Run the step over ``run.nodes``; return when it has ended (or ``cancelled`` is set)."""


def _params_type(executor: Executor) -> type[msgspec.Struct]:
    """The executor's request fields a step carries itself: all but the workflow-supplied ones,
    with ``cluster_name`` made optional so a step can be checked without a cluster."""
    fields = [
        (
            f.name,
            f.type,
            msgspec.field(default=f.default)
            if f.default is not msgspec.NODEFAULT
            else msgspec.field(default_factory=f.default_factory)
            if f.default_factory is not msgspec.NODEFAULT
            else msgspec.NODEFAULT,
        )
        for f in msgspec.structs.fields(executor.request_type)
        if f.name not in WORKFLOW_SUPPLIED
    ]
    spec = [
        (name, typ) if default is msgspec.NODEFAULT else (name, typ, default)
        for name, typ, default in fields
    ]
    required = [s for s in spec if len(s) == 2]
    optional = [s for s in spec if len(s) == 3]
    return msgspec.defstruct(
        f"{executor.kind.title()}StepFields",
        [*required, *optional],
        kw_only=True,
        forbid_unknown_fields=True,
    )


class ExecutorStep(StepType):
    """An executor as a step type: the step's fields plus the workflow's cluster, nodes,
    credential and the step's timeout make the executor's request."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.name = executor.kind  # type: ignore[misc]
        self.params_type = _params_type(executor)  # type: ignore[misc]
        self.feature = executor.feature  # type: ignore[misc]
        self.disruptive = executor.disruptive  # type: ignore[misc]
        self.needs_credential = executor.requires_credential  # type: ignore[misc]

    def request(self, run: StepRun) -> ExecRequest:
        body = {
            **run.params,
            "cluster_name": run.cluster_name,
            "target_nodes": [n.name for n in run.nodes],
            "credential_id": run.credential_id,
            "timeout": run.timeout if run.timeout else run.params.get("timeout"),
        }
        body = {k: v for k, v in body.items() if v is not None}
        try:
            return msgspec.convert(body, self.executor.request_type, strict=False)
        except msgspec.ValidationError as exc:
            raise StepFailed(f"step fields do not fit {self.name}: {exc}") from None

    async def run(self, knm: Knm, run: StepRun, cancelled: asyncio.Event) -> StepOutcome:
        from knm.core.auth.principal import Principal
        from knm.core.tasks import service

        principal = None
        if run.user_id is not None:
            from knm.core.auth.users import auth_row

            # The starter's role now, not when the workflow began: the credential's limits
            # (``knm.core.credentials.use``) see who they are today.
            row = await auth_row(knm.pool, run.user_id)
            role = row.role if row is not None else "operator"
            principal = Principal(user_id=run.user_id, username=run.username or "", role=role)
        try:
            task = await service.start_task(
                knm,
                self.executor,
                self.request(run),
                principal,
                parent_task_id=run.workflow_task_id,
            )
        except KnmError as exc:
            return StepOutcome(status="failed", message=exc.error or exc.message)
        if run.on_task is not None:
            run.on_task(task.task_id)
        final = await wait_for_task(knm, task.task_id, cancelled)
        nodes = await store.node_states(knm.pool, task.task_id)
        details = {
            node: NodeDetail(reason=reason, message=message)
            for node, (reason, message) in (
                await store.node_failures(knm.pool, task.task_id)
            ).items()
        }
        status = {"completed": "success", "cancelled": "cancelled"}.get(final.status, "failed")
        failed = [name for name, state in nodes.items() if state != "success"]
        message = final.error or (f"failed on {', '.join(failed)}" if failed else final.status)
        return StepOutcome(
            status=status,
            message=message,
            task_id=task.task_id,
            nodes=nodes,
            details=details,
            result={
                "task_status": final.status,
                "task_id": task.task_id,
                "success_count": final.success_count,
                "failed_count": final.failed_count,
            },
        )


class StepFailed(Exception):
    pass


async def wait_for_task(knm: Knm, task_id: str, cancelled: asyncio.Event) -> Any:
    """The task once it is finished; cancels it when ``cancelled`` is set first."""
    from knm.core.progress import Subscriber
    from knm.core.tasks import service

    subscriber = Subscriber()
    knm.progress.subscribe(task_id, subscriber)
    cancel_sent = False
    try:
        while True:
            task = await store.get_task(knm.pool, task_id)
            if task is None:
                raise StepFailed(f"task {task_id} disappeared")
            if task.status in TERMINAL:
                return task
            if cancelled.is_set() and not cancel_sent:
                cancel_sent = True
                with contextlib.suppress(KnmError):
                    await service.cancel_task(knm, task, "workflow cancelled")
            # The complete event usually wakes this at once; polling covers another process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_until_complete(subscriber), timeout=1.0)
    finally:
        knm.progress.unsubscribe(task_id, subscriber)


async def _until_complete(subscriber: Any) -> None:
    while True:
        event = await subscriber.next_event()
        if event.type == "complete":
            return
