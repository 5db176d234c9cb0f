"""The ``ssh`` executor: one shell command fanned out to a cluster's nodes (``ctx.run_shell``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from knm.core import policy
from knm.core.tasks import Executor, Prepared, TaskContext
from knm.plugins.ssh.schemas import SshRequest

if TYPE_CHECKING:
    from knm.core.state import Knm


class SshExecutor(Executor):
    kind = "ssh"
    route = "ssh"
    feature = "ssh"
    request_type = SshRequest
    request_example = {
        "cluster_name": "production", "target_nodes": ["node1", "node2"], "credential_id": 1,
        "command": "df -h", "timeout": 60,
    }  # fmt: skip
    answer_fields = {"command": str, "sudo": bool}

    async def prepare(self, knm: Knm, request: SshRequest, principal: Any) -> Prepared:
        context = policy.CommandContext(
            kind=self.kind,
            cluster_name=request.cluster_name,
            username=getattr(principal, "username", None),
            role=getattr(principal, "role", None),
            sudo=request.sudo,
        )
        await policy.check(knm, request.command, context)
        prepared = await super().prepare(knm, request, principal)
        prepared.summary = {"command": request.command}
        if request.sudo:
            prepared.summary["sudo"] = True
        return prepared

    async def run(self, ctx: TaskContext) -> None:
        request: SshRequest = ctx.request
        await ctx.run_shell(None, request.command, sudo=request.sudo)
