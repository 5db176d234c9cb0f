"""What an executor plugin supplies, and the context its ``run`` gets.

An executor declares its kind, its request struct (extending ``ExecRequest``) and implements
``prepare`` (checks and the task's summary, before any task exists) and ``run(ctx)``. The
engine does everything else: routes, the task row, claiming, leases, cancel, events, results.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from knm.core.tasks.nodewriter import NodeWriter
from knm.core.tasks.output import CHUNK, Masker, StreamBuffer
from knm.core.tasks.schemas import ExecRequest, NodeResult, TaskRow
from knm.core.tasks.targets import Prepared, TargetNode, prepare_targets

if TYPE_CHECKING:
    from knm.core.state import Knm


class Executor(abc.ABC):
    """Base class of executors. Subclasses set the class attributes and implement ``run``."""

    #: The id prefix and ``GET /tasks?kind=`` value (``ssh``, ``ansible``, ``script``).
    kind: ClassVar[str]
    #: The path segment of its routes: ``/automation/<route>/...`` (``scripts`` for ``script``).
    route: ClassVar[str]
    #: The feature switch guarding it (``knm.features.require(feature)``).
    feature: ClassVar[str]
    request_type: ClassVar[type[ExecRequest]] = ExecRequest
    #: The last path segment of the start route (the spec says ``run`` for Ansible).
    execute_path: ClassVar[str] = "execute"
    requires_credential: ClassVar[bool] = True
    #: A request naming no ``credential_id`` gets its cluster's ``default_credential_id``
    #: (False for executors that never log in to nodes, such as k8s).
    uses_credential: ClassVar[bool] = True
    #: The executor's own fields in its execute and status answers and history rows (what
    #: ``prepare`` puts in ``summary``, and ``status_fields``), by type: the OpenAPI document
    #: shows them (``{"command": str}``).
    answer_fields: ClassVar[dict[str, Any]] = {}
    #: An execute request the OpenAPI document shows as the example (the contract's own).
    request_example: ClassVar[dict[str, Any] | None] = None
    #: Recoverable executors get ``recover(ctx)`` on another worker when their worker dies.
    recoverable: ClassVar[bool] = False
    #: Status answers include each node's stdout and stderr.
    node_output_in_status: ClassVar[bool] = True
    #: Status answers include the whole task's ``output`` (Ansible's play output).
    task_output_in_status: ClassVar[bool] = False
    #: Its tasks (and its workflow steps) take each node's lock (``knm.core.tasks.locks``) for
    #: their length and count against the cluster's ``max_unavailable``: reboots, drains.
    disruptive: ClassVar[bool] = False
    #: A hard cap on tasks of this kind running at once; the ``max_tasks`` setting (default 100)
    #: is what admins change, and the lower of the two applies.
    max_tasks: ClassVar[int] = 10_000

    async def prepare(self, knm: Knm, request: Any, principal: Any) -> Prepared:
        """Check the request (raise ``Invalid``/``NotFound``…) and return the nodes to run on.

        The default loads the credential and the cluster once and resolves
        ``target_nodes``/``target_selector``; keep its ``credential`` and ``cluster``."""
        return await prepare_targets(knm, request)

    @abc.abstractmethod
    async def run(self, ctx: TaskContext) -> None:
        """Do the work on ``ctx.nodes`` and report through ``ctx``; ``ctx.fan_out`` helps."""

    async def recover(self, ctx: TaskContext) -> None:
        """Finish a task whose worker died (only for ``recoverable`` executors)."""
        return None

    def status_fields(self, task: TaskRow) -> dict[str, Any]:
        """Extra fields of the status answer, beyond ``summary``."""
        return {}


#: How much of a node's stderr ``run_shell`` hands its ``judge``.
_STDERR_HEAD = 4096


class Cancelled(Exception):
    """Raised inside an executor's work when its task is cancelled."""


class TaskContext:
    """Everything ``run`` needs: nodes, credential, settings, and how to report."""

    def __init__(
        self,
        *,
        knm: Knm,
        task: TaskRow,
        executor: Executor,
        request: Any,
        nodes: list[TargetNode],
        credential: Any,
        settings: Any,
        masker: Masker,
        secrets: dict[str, str] | None = None,
        cluster: Any = None,
        carried: dict[str, Any] | None = None,
    ) -> None:
        self.knm = knm
        self.task = task
        self.task_id = task.task_id
        self.executor = executor
        self.request = request
        self.nodes = nodes
        self.credential = credential
        self.settings = settings
        self.mask = masker
        self.secrets = secrets or {}
        #: The task's ``Cluster`` as ``prepare`` loaded it (read on first use otherwise).
        self._cluster = cluster
        #: What ``prepare`` carried beyond the credential and cluster (``Prepared.carried``).
        self.carried: dict[str, Any] = carried or {}
        self.cancelled = asyncio.Event()
        self.cancel_reason = ""
        #: Another worker holds the task now (this one stalled past its lease): what the task
        #: holds (its node locks) and its end are that worker's, not to be released here.
        self.lease_lost = False
        self.progress_value = 0
        self.output_cap: int = getattr(knm.config, "output_cap", 1024 * 1024)
        #: Per node, per stream.
        self._streams: dict[str, dict[str, StreamBuffer]] = {}
        self._writer = NodeWriter(knm.pool, task.task_id, task.worker_id)
        #: Nodes started and not yet finished.
        self._working: set[str] = set()
        self._finished: set[str] = set()
        self._finished_count = 0
        #: A node's end has been handed to the writer (the task's first is written at once).
        self._any_ended = False
        self.result: dict[str, Any] = dict(task.result)
        #: Whatever plugins keep for the length of the task (the SSH transport's host key pins),
        #: under keys they own; dropped with the context.
        self.cache: dict[Any, Any] = {}

    # --- time -----------------------------------------------------------------------------

    @property
    def node_timeout(self) -> float:
        timeout = self.request.timeout if self.request.timeout else self.settings.timeout
        return float(timeout)

    def remaining(self) -> float | None:
        """Seconds left before the task's deadline, if it has one."""
        if self.task.deadline_at is None:
            return None
        from datetime import UTC, datetime

        return (self.task.deadline_at - datetime.now(UTC)).total_seconds()

    def node_time_limit(self) -> float:
        """Seconds a node's work, starting now, may take: the node timeout, cut short by the
        task's deadline."""
        timeout = self.node_timeout
        remaining = self.remaining()
        if remaining is not None:
            timeout = min(timeout, max(remaining, 0.001))
        return timeout

    def node_deadline(self) -> float:
        """The ``time.monotonic()`` by which a node's work, starting now, must end."""
        return time.monotonic() + self.node_time_limit()

    # --- the cluster ----------------------------------------------------------------------

    async def cluster(self) -> Any:
        """The task's ``Cluster`` (its config, its bastion): the one ``prepare`` loaded when the
        task started in this process, else read once."""
        if self._cluster is None:
            from knm.core.clusters import get_cluster

            self._cluster = await get_cluster(self.knm, self.task.cluster_name)
        return self._cluster

    # --- reporting ------------------------------------------------------------------------

    def emit(
        self,
        type: str,
        message: str = "",
        data: dict[str, Any] | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Adds an event to the task's log; ``urgent``: written without waiting for the log's
        next interval (someone is waiting for exactly this one)."""
        if self.lease_lost:
            return  # the task's story is told by the worker that holds it now
        self.knm.events.emit(self.task_id, type, self.progress_value, message, data, urgent=urgent)

    async def progress(self, percent: float, message: str = "", **data: Any) -> None:
        self.progress_value = max(0, min(100, int(percent)))
        self.emit("progress", message, data)

    async def node_started(self, node: str) -> None:
        """Marks the node running: written with the next batch, not awaited."""
        self._writer.start(node)
        self._working.add(node)
        self.emit("node", f"{node} started", {"node": node, "status": "running"})

    def output(self, node: str, stream: str, text: str, *, final: bool = False) -> None:
        streams = self._streams.get(node)
        if streams is None:
            streams = self._streams[node] = {}
        buffer = streams.get(stream)
        if buffer is None:
            buffer = streams[stream] = StreamBuffer(self.output_cap, self.mask)
        if buffer.truncated:
            return
        safe = buffer.feed(text, final=final)
        if not safe:
            return
        rows = []
        for start in range(0, len(safe), CHUNK):
            rows.append((self.task_id, node, stream, buffer.seq, safe[start : start + CHUNK]))
            buffer.seq += 1
        self._writer.chunks(rows)
        self.emit(
            "output",
            f"output from {node} ({stream})",
            {"node": node, "stream": stream, "text": safe},
        )

    async def flush_output(self) -> None:
        """Writes every pending node start, output chunk and node end now."""
        await self._writer.flush()

    async def node_finished(self, node: str, result: NodeResult) -> None:
        """Records the node's end (once) with its output; returns once both are stored."""
        streams = self._streams.get(node, {})
        for stream, buffer in list(streams.items()):
            if buffer.carry:
                self.output(node, stream, "", final=True)
        sizes = {stream: (buffer.stored, buffer.truncated) for stream, buffer in streams.items()}
        result.message = self.mask(result.message)
        self._working.discard(node)
        # No other node is working: nothing will join this batch, so waiting for one would only
        # delay the end of a small task or of a batch_size wave. The task's first end: a
        # dashboard is waiting for a first result, and one batch more per task costs nothing.
        urgent = not self._working or not self._any_ended
        self._any_ended = True
        if not await self._writer.end(node, result, sizes, urgent=urgent):
            return
        self._finished.add(node)
        self._finished_count += 1
        total = max(1, len(self.nodes))
        self.progress_value = int(100 * self._finished_count / total)
        data: dict[str, Any] = {"node": node, "status": result.status}
        if result.reason:
            data["reason"] = result.reason
        if result.exit_code is not None:
            data["exit_code"] = result.exit_code
        self.emit(
            "node", result.message or f"{node} {result.status}", data,
            urgent=self._finished_count == 1,
        )  # fmt: skip

    def finished(self, node: str) -> bool:
        return node in self._finished

    async def save_result(self, **fields: Any) -> bool:
        """Task-level results beyond nodes (workflow steps …), shown in status answers; False
        when not stored (the task ended, or another worker holds it now)."""
        from knm.core.tasks import store

        self.result.update(fields)
        return await store.set_result(self.knm.pool, self.task_id, self.result, self.task.worker_id)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled(self.cancel_reason or "cancelled")

    # --- fan-out --------------------------------------------------------------------------

    async def fan_out(
        self,
        work: Callable[[TargetNode], Awaitable[NodeResult]],
        *,
        nodes: Sequence[TargetNode] | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Run ``work`` on every node with the request's ``batch_size`` and ``max_failures``,
        each node bounded by the node timeout, all of it by cancellation.

        A node's timeout starts when its work starts, so nodes waiting for a free slot never
        time out. Exceptions from ``work`` fail that node only."""
        targets = list(nodes if nodes is not None else self.nodes)
        limit = self.request.batch_size or concurrency or len(targets) or 1
        if concurrency:
            limit = min(limit, concurrency)
        max_failures = self.request.max_failures
        slots = asyncio.Semaphore(limit)
        failures = 0
        stop_starting = asyncio.Event()

        async def one(node: TargetNode) -> None:
            nonlocal failures
            async with slots:
                if self.finished(node.name):
                    return
                if self.cancelled.is_set():
                    return
                if stop_starting.is_set():
                    result = NodeResult.failure(
                        "skipped", f"not started: more than {max_failures} nodes failed"
                    )
                else:
                    await self.node_started(node.name)
                    result = await self._bounded(work, node, cancel_wait)
                    if result.status == "failed":
                        failures += 1
                        if max_failures is not None and failures > max_failures:
                            stop_starting.set()
                # Inside the slot: a node counts as in flight until its end is stored.
                await self.node_finished(node.name, result)

        # One waiter on the cancel event for the whole fan-out, not one per node.
        cancel_wait = asyncio.ensure_future(self.cancelled.wait())
        try:
            await asyncio.gather(*(one(node) for node in targets))
        finally:
            cancel_wait.cancel()

    async def run_shell(
        self,
        nodes: Sequence[TargetNode] | None,
        command: str,
        *,
        stdin: str | None = None,
        sudo: bool = False,
        env: dict[str, str] | None = None,
        pty: bool = False,
        concurrency: int | None = None,
        judge: Callable[[NodeResult, str], NodeResult] | None = None,
    ) -> None:
        """Run ``command`` on ``nodes`` (None: every node of the task) through the cluster's
        transport, with ``fan_out``'s batch, failure, timeout and cancel rules.

        Output streams to ``output`` as it arrives; each node's result is recorded: success on
        exit code 0, else ``exit_code``/``signal``, or the transport's reason (``unreachable``,
        ``auth_failed`` …). ``stdin`` is sent and then closed; ``sudo`` runs the command as root
        with the task's credential (its password on stdin, never in argv); ``judge(result,
        stderr_head)`` may refine a node's result from the first 4 KB of its stderr. Check
        the command with ``knm.core.policy.check`` in ``prepare``, before the task exists."""
        from knm.core.transport import TransportError, node_result, sudo_command

        cluster = await self.cluster()
        transport = self.knm.registry.transport_for(cluster)
        credential = self.credential
        if sudo:
            command, password = sudo_command(command, credential)
            if password:
                stdin = password + (stdin or "")
        # No more nodes in flight than sessions exist: a node's timeout starts with its work,
        # and should not tick while it waits for the transport's limiter.
        limit = await transport.concurrency(self.knm)
        if concurrency is not None:
            limit = min(limit, concurrency) if limit else concurrency
        bastion = getattr(cluster, "bastion", None)

        async def work(node: TargetNode) -> NodeResult:
            head: list[str] = []

            def on_stdout(text: str) -> None:
                self.output(node.name, "stdout", text)

            def on_stderr(text: str) -> None:
                if judge is not None and sum(map(len, head)) < _STDERR_HEAD:
                    head.append(text)
                self.output(node.name, "stderr", text)

            try:
                async with transport.session(self, node, credential, bastion=bastion) as conn:
                    result = await transport.run(
                        conn, command, stdin=stdin, env=env, pty=pty,
                        on_stdout=on_stdout, on_stderr=on_stderr,
                    )  # fmt: skip
            except TransportError as exc:
                return NodeResult.failure(exc.reason, exc.message)
            outcome = node_result(result)
            return judge(outcome, "".join(head)) if judge is not None else outcome

        try:
            await self.fan_out(work, nodes=nodes, concurrency=limit)
        finally:
            await transport.release_task(self.task_id)

    async def _bounded(
        self,
        work: Callable[[TargetNode], Awaitable[NodeResult]],
        node: TargetNode,
        cancel_wait: asyncio.Future[Any],
    ) -> NodeResult:
        timeout = self.node_time_limit()
        job = asyncio.ensure_future(work(node))
        done, _ = await asyncio.wait(
            {job, cancel_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if job in done:
            try:
                return job.result()
            except Cancelled as exc:
                return NodeResult.failure("cancelled", str(exc))
            except Exception as exc:  # one node's failure never fails the others
                return NodeResult.failure("error", f"{type(exc).__name__}: {exc}")
        job.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(job, 10)
        if cancel_wait in done:
            return NodeResult.failure("cancelled", self.cancel_reason or "cancelled")
        return NodeResult.failure("timeout", f"timed out after {timeout:g} s")
