"""The ``k8s`` executor: one node action fanned out to a Kubernetes cluster's nodes.

``POST /automation/k8s/execute {"cluster_name", "target_nodes"|"target_selector", "action",
"params", "timeout"}``. ``params`` is checked against the action's struct (bad shape 400, bad
values 422). Disruptive actions (cordon, drain) take the node's lock first (see
:mod:`knm.core.tasks.locks`); a task releases the locks it holds when it ends, unless it is a
step of a workflow — then the workflow (the root task) holds them until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.clusters import Cluster, get_cluster
from knm.core.errors import BadRequest, Invalid, KnmError
from knm.core.targets import resolve_targets
from knm.core.tasks import Executor, NodeResult, Prepared, TargetNode, TaskContext, locks
from knm.core.tasks import store as task_store
from knm.plugins.k8s import actions
from knm.plugins.k8s.actions import Job
from knm.plugins.k8s.client import Kube, KubeError, hub_of
from knm.plugins.k8s.drain import drain
from knm.plugins.k8s.provider import CORDONED_BY, ApiUnreachable, refuse_commands
from knm.plugins.k8s.schemas import DISRUPTIVE, PARAMS, K8sRequest, LockParams, Params
from knm.wire.errors import field_message

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.k8s")

Action = Callable[[Job, Any], Awaitable[NodeResult]]
ACTIONS: dict[str, Action] = {
    "cordon": actions.cordon,
    "uncordon": actions.uncordon,
    "drain": drain,
    "label": actions.label,
    "unlabel": actions.unlabel,
    "taint": actions.taint,
    "untaint": actions.untaint,
    "wait_ready": actions.wait_ready,
    "record_boot_id": actions.record_boot_id,
}
#: Reasons a failed API call gives a node result; anything else is ``api_error``.
_REASONS = {"api_unreachable", "not_found", "conflict", "api_forbidden"}


def parse_params(request: K8sRequest) -> Params:
    """The action's params struct: 400 for a bad shape (naming the field), 422 for bad values."""
    try:
        params = msgspec.convert(request.params, PARAMS[request.action], strict=True)
    except msgspec.ValidationError as exc:
        text = field_message(str(exc), under="params")
        if text.startswith("params: Object contains unknown field"):
            # Name what the action does take, so the caller fixes the key without the docs.
            valid = ", ".join(PARAMS[request.action].__struct_fields__) or "none"
            text += f"; {request.action} takes: {valid}"
        raise BadRequest(text) from None
    if problems := params.problems():
        raise Invalid("; ".join(problems))
    return params


def _margin(timeout: float) -> float:
    # A node's work ends itself (with its own reason) a little before the engine would cut it.
    return min(5.0, max(0.2, 0.1 * timeout))


class K8sExecutor(Executor):
    kind = "k8s"
    route = "k8s"
    feature = "k8s"
    request_type = K8sRequest
    answer_fields = {"action": str}
    requires_credential = False
    uses_credential = False
    node_output_in_status = False

    async def prepare(self, knm: Knm, request: K8sRequest, principal: Any) -> Prepared:
        parse_params(request)
        cluster = await get_cluster(knm, request.cluster_name)
        if cluster.kind != "kubernetes":
            raise Invalid(
                f"cluster {cluster.name} is a {cluster.kind} cluster; "
                "k8s actions need a kubernetes cluster"
            )
        try:
            resolution = await resolve_targets(knm, request, credential_port=None, cluster=cluster)
        except ApiUnreachable:
            if request.target_selector or not request.target_nodes:
                raise
            # Names cannot be checked now; the task runs and each node reports the API's state.
            if len(set(request.target_nodes)) != len(request.target_nodes):
                raise Invalid("duplicate nodes in target_nodes") from None
            nodes = [TargetNode(name=name) for name in request.target_nodes]
        else:
            nodes = [
                TargetNode(name=n.name, address=n.address, labels=dict(n.labels))
                for n in resolution.nodes
            ]
        return Prepared(nodes=nodes, summary={"action": request.action}, cluster=cluster)

    async def run(self, ctx: TaskContext) -> None:
        request: K8sRequest = ctx.request
        params = parse_params(request)
        root = ctx.task.parent_task_id or ctx.task_id
        if root != ctx.task_id:
            parent = await task_store.get_task(ctx.knm.pool, root)
            if parent is None or parent.status not in ("pending", "running"):
                # A step task left behind by a workflow that is over changes nothing.
                for node in ctx.nodes:
                    await ctx.node_finished(
                        node.name,
                        NodeResult.failure("cancelled", f"workflow {root} has ended"),
                    )
                return
        cluster = await ctx.cluster()
        hub = hub_of(ctx.knm)
        try:
            kube = await self._connect(ctx, cluster)
            if kube is None:
                return

            async def work(node: TargetNode) -> NodeResult:
                timeout = ctx.node_time_limit()
                job = Job(
                    ctx=ctx, kube=kube, cluster=cluster, node=node.name, root=root,
                    deadline=time.monotonic() + timeout - _margin(timeout),
                )  # fmt: skip
                return await self._one(job, request.action, params)

            await ctx.fan_out(work, concurrency=ctx.settings.max_concurrent)
        finally:
            hub.forget_nodes(cluster)
            if request.action in DISRUPTIVE and root == ctx.task_id and not ctx.lease_lost:
                with contextlib.suppress(Exception):
                    await asyncio.shield(locks.release_all(ctx.knm.pool, root))

    async def _connect(self, ctx: TaskContext, cluster: Cluster) -> Kube | None:
        """The cluster's API after a ``/version`` probe; on failure every node fails alike."""
        try:
            await refuse_commands(ctx.knm, cluster.config)
            kube = await hub_of(ctx.knm).kube(cluster)
            await kube.version()
            return kube
        except (KubeError, KnmError) as exc:
            if isinstance(exc, KubeError):
                reason = exc.reason if exc.reason in _REASONS else "api_error"
                message = f"cluster {cluster.name}: {exc.message}"
            else:
                reason, message = "refused", exc.error or exc.message
            for node in ctx.nodes:
                if not ctx.finished(node.name):
                    await ctx.node_finished(node.name, NodeResult.failure(reason, message))
            return None

    async def _one(self, job: Job, action: str, params: Params) -> NodeResult:
        try:
            dry = getattr(params, "dry_run", False)
            if action in DISRUPTIVE:
                assert isinstance(params, LockParams)
                if dry:
                    refusal = await self._would_lock(job, params.wait_for_lock)
                else:
                    refusal = await self._lock(job, params.wait_for_lock)
                if refusal is not None:
                    return refusal
            result = await ACTIONS[action](job, params)
            # API actions have no exit code; NodeResult.success() defaults one.
            result.exit_code = None
            return result
        except KubeError as exc:
            reason = exc.reason if exc.reason in _REASONS else "api_error"
            if reason == "not_found" and f'"{job.node}"' in exc.message:
                return NodeResult.failure(reason, f"node {job.node} not found in the cluster")
            return NodeResult.failure(reason, f"{job.node}: {exc.message}")

    @staticmethod
    def _cordoned_by_knm(job: Job) -> Callable[[], Awaitable[set[str]]]:
        async def cordoned_by_knm() -> set[str]:
            return {
                doc.name
                for doc in await job.kube.list_nodes()
                if doc.spec.unschedulable and CORDONED_BY in doc.metadata.annotations
            }

        return cordoned_by_knm

    async def _would_lock(self, job: Job, wait: bool) -> NodeResult | None:
        """A dry run's answer when the node's lock would be refused now (nothing is taken)."""
        refusal = await locks.check(
            job.ctx.knm.pool,
            cluster=job.cluster.name,
            node=job.node,
            holder=job.root,
            max_unavailable=job.cluster.config.max_unavailable,
            cordoned_by_knm=self._cordoned_by_knm(job),
        )
        if refusal is None:
            return None
        then = "the task would wait for it (wait_for_lock)" if wait else "the task would fail"
        return NodeResult.failure(refusal.reason, f"dry run: {refusal.message}; {then}")

    async def _lock(self, job: Job, wait: bool) -> NodeResult | None:
        ctx, cluster = job.ctx, job.cluster
        cordoned_by_knm = self._cordoned_by_knm(job)

        backoff, said = 0.2, ""
        started = time.monotonic()
        while True:
            refusal = await locks.acquire(
                ctx.knm.pool,
                cluster=cluster.name,
                node=job.node,
                holder=job.root,
                task_id=ctx.task_id,
                max_unavailable=cluster.config.max_unavailable,
                cordoned_by_knm=cordoned_by_knm,
            )
            if refusal is None:
                return None
            if not wait or job.left() <= 0:
                waited = f" (waited {time.monotonic() - started:.0f} s)" if wait else ""
                return NodeResult.failure(refusal.reason, refusal.message + waited)
            if refusal.message != said:
                await job.say(f"waiting: {refusal.message}")
                said = refusal.message
            await job.sleep(backoff)
            backoff = min(backoff * 1.5, 2.0)
