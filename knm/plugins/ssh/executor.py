"""The ``ssh`` executor: one shell command fanned out to a cluster's nodes over SSH."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from knm.core.errors import Invalid
from knm.core.manager import collect
from knm.core.policy import check_command
from knm.core.tasks import Executor, NodeResult, Prepared, TargetNode, TaskContext
from knm.plugins.ssh.errors import TransportError
from knm.plugins.ssh.schemas import SshRequest, SshSettings
from knm.plugins.ssh.sudo import sudo_command
from knm.plugins.ssh.transport import TRANSPORT, RunResult, SshTransport


class CommandContext(msgspec.Struct, kw_only=True):
    """What ``knm_check_command`` implementations are told about who asks, and where."""

    kind: str
    cluster_name: str
    username: str | None = None
    role: str | None = None
    sudo: bool = False


async def check_policy(
    knm: Any, command: str, context: CommandContext, settings: SshSettings | None = None
) -> None:
    """Raises the spec's 422 when the command policy, or any plugin's check, blocks ``command``.

    The SSH settings' ``deny_rules`` and ``allow_rules`` apply; every executor that runs shell
    over SSH may call this."""
    if settings is None:
        settings = await knm.features.settings("ssh")
    try:
        violations = check_command(
            command, extra_rules=settings.deny_rules, allowed=settings.allow_rules
        )
    except re.error:
        # Settings are checked when saved; one stored by hand must not let commands through.
        raise Invalid("a deny rule of the SSH settings is not a valid regular expression") from None
    violations.extend(collect(knm.pm.hook.knm_check_command(command=command, context=context)))
    if violations:
        raise Invalid(
            f"dangerous command blocked: {violations[0].matched}",
            message="command validation failed",
        )


class SshExecutor(Executor):
    kind = "ssh"
    route = "ssh"
    feature = "ssh"
    request_type = SshRequest

    def __init__(self, transport: SshTransport = TRANSPORT) -> None:
        self.transport = transport

    async def prepare(self, knm: Any, request: SshRequest, principal: Any) -> Prepared:
        context = CommandContext(
            kind=self.kind,
            cluster_name=request.cluster_name,
            username=getattr(principal, "username", None),
            role=getattr(principal, "role", None),
            sudo=request.sudo,
        )
        await check_policy(knm, request.command, context)
        prepared = await super().prepare(knm, request, principal)
        prepared.summary = {"command": request.command}
        if request.sudo:
            prepared.summary["sudo"] = True
        return prepared

    async def run(self, ctx: TaskContext) -> None:
        request: SshRequest = ctx.request
        transport = self.transport
        command, stdin = request.command, None
        if request.sudo:
            command, stdin = sudo_command(request.command, ctx.credential)
        bastion = await transport.bastion_of(ctx.knm, ctx.task.cluster_name)

        async def work(node: TargetNode) -> NodeResult:
            try:
                async with transport.session(ctx, node, ctx.credential, bastion=bastion) as conn:
                    result = await transport.run(
                        conn,
                        command,
                        stdin=stdin,
                        on_stdout=lambda text: ctx.output(node.name, "stdout", text),
                        on_stderr=lambda text: ctx.output(node.name, "stderr", text),
                    )
            except TransportError as exc:
                return NodeResult.failure(exc.reason, exc.message)
            return node_result(result)

        settings = await ctx.knm.features.settings("ssh")
        try:
            # No more nodes in flight than sessions exist: a node's timeout starts with its
            # work, and should not tick while it waits for the transport's limiter.
            await ctx.fan_out(work, concurrency=settings.max_concurrent)
        finally:
            await transport.release_task(ctx.task_id)


def node_result(result: RunResult) -> NodeResult:
    if result.signal is not None:
        return NodeResult.failure("signal", f"killed by signal {result.signal}")
    if result.exit_code:
        return NodeResult.failure(
            "exit_code", f"exit code {result.exit_code}", exit_code=result.exit_code
        )
    return NodeResult.success("exit code 0", exit_code=0)
