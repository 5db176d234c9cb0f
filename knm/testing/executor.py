"""A test executor, so the task engine is tested (by knm and by plugin authors) without SSH.

Register ``TestExecutorPlugin()`` through ``knm_extra_plugins``. Its kind is ``test``: node
names are taken as given (no cluster needed); each node sleeps, echoes, fails or hangs as asked.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.features import ExecutorSettings, FeatureSpec
from knm.core.hookspecs import hookimpl
from knm.core.tasks import ExecRequest, Executor, NodeResult, Prepared, TargetNode, TaskContext

if TYPE_CHECKING:
    from knm.core.state import Knm


class TestRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    __test__ = False

    #: Seconds each node sleeps.
    sleep: float = 0.0
    #: Text every node prints on stdout (``{node}`` is replaced by its name).
    echo: str = ""
    #: Lines of output each node prints.
    output_lines: int = 0
    #: Progress events the task emits.
    events: int = 0
    fail_nodes: list[str] = msgspec.field(default_factory=list)
    hang_nodes: list[str] = msgspec.field(default_factory=list)
    #: A secret; ``{secret}`` in ``echo`` prints it, and it must come out masked.
    secret: str = ""
    #: Seconds each node stays running after its output (output of a running node).
    linger: float = 0.0


class TestSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    __test__ = False
    timeout: int = 60
    max_concurrent: int = 100


class TestExecutor(Executor):
    __test__ = False
    kind = "test"
    route = "test"
    feature = "test"
    request_type = TestRequest
    requires_credential = False

    def __init__(self, *, max_tasks: int = 100, recoverable: bool = False) -> None:
        self.max_tasks = max_tasks  # type: ignore[misc]
        self.recoverable = recoverable  # type: ignore[misc]
        self.recovered: list[str] = []

    async def prepare(self, knm: Knm, request: TestRequest, principal: Any) -> Prepared:
        nodes = [TargetNode(name=name, address="127.0.0.1") for name in request.target_nodes]
        stored = msgspec.to_builtins(request)
        # Values an executor marks secret are sealed with the task and masked everywhere.
        stored["secret"] = ""
        secrets = {"secret": request.secret} if request.secret else {}
        return Prepared(
            nodes=nodes, summary={"echo": request.echo}, stored_request=stored, secrets=secrets
        )

    async def run(self, ctx: TaskContext) -> None:
        request: TestRequest = ctx.request
        for i in range(request.events):
            await ctx.progress(
                100 * (i + 1) / max(1, request.events), f"event {i + 1} of {request.events}"
            )

        async def work(node: TargetNode) -> NodeResult:
            if node.name in request.hang_nodes:
                await asyncio.sleep(3600)
            if request.sleep:
                await asyncio.sleep(request.sleep)
            if request.echo:
                text = request.echo.replace("{node}", node.name)
                text = text.replace("{secret}", ctx.secrets.get("secret", ""))
                ctx.output(node.name, "stdout", text + "\n")
            for line in range(request.output_lines):
                ctx.output(node.name, "stdout", f"{node.name} line {line}\n")
            if request.linger:
                await asyncio.sleep(request.linger)
            if node.name in request.fail_nodes:
                ctx.output(node.name, "stderr", "failing as asked\n")
                return NodeResult.failure("exit_code", "exit code 1", exit_code=1)
            return NodeResult.success("ok")

        await ctx.fan_out(work)

    async def recover(self, ctx: TaskContext) -> None:
        self.recovered.append(ctx.task_id)
        await ctx.save_result(recovered_by=ctx.knm.runner.worker_id)
        for node in ctx.nodes:
            if not ctx.finished(node.name):
                await ctx.node_finished(
                    node.name, NodeResult.failure("worker_lost", "recovered: worker lost")
                )


class TestExecutorPlugin:
    __test__ = False

    def __init__(self, **options: Any) -> None:
        self.executor = TestExecutor(**options)

    @hookimpl
    def knm_executors(self) -> list[Executor]:
        return [self.executor]

    @hookimpl
    def knm_features(self) -> list[FeatureSpec]:
        return [FeatureSpec("test", TestSettings, description="the test executor")]


class RecoverableTestExecutorPlugin(TestExecutorPlugin):
    """The test executor declared recoverable: a lost worker's task is taken over, not failed."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__(recoverable=True)
