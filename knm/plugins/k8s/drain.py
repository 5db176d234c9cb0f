"""Draining a node: cordon, then evict its pods through the Eviction API (policy/v1).

Like ``kubectl drain --ignore-daemonsets``: DaemonSet-managed and mirror (static) pods stay; pods
no controller manages are refused unless ``params.force``, pods with emptyDir volumes unless
``params.delete_emptydir_data`` — checked before anything changes. An eviction a
PodDisruptionBudget refuses (429) is retried with backoff until the drain's timeout, and each
change in what blocks is reported as a progress event naming the pods and budgets. The drain
ends when every evicted pod is gone. At the timeout ``params.on_timeout`` decides: ``fail`` (the
node stays cordoned), ``uncordon`` (knm's own cordon is undone, then fail) or ``delete`` (the
remaining pods are deleted, budgets notwithstanding). ``params.dry_run`` reports what would be
evicted and which budgets would block, and changes nothing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec

from knm.core.tasks import NodeResult
from knm.plugins.k8s import objects
from knm.plugins.k8s.actions import Job, cordon_node, update_node
from knm.plugins.k8s.client import KubeError
from knm.plugins.k8s.provider import CORDONED_AT, CORDONED_BY
from knm.plugins.k8s.schemas import DrainParams

_BUDGET = re.compile(r"disruption budget (\S+)")
#: Seconds between eviction attempts at most, and between checks that pods are gone.
MAX_BACKOFF = 2.0
POLL = 0.1
#: At least this long between two reports of an unchanged block.
REPORT_EVERY = 10.0


class Plan(msgspec.Struct, kw_only=True):
    evict: list[objects.PodDoc] = []
    skipped: list[str] = []
    refused: list[str] = []


def plan(pods: list[objects.PodDoc], params: DrainParams) -> Plan:
    found = Plan()
    for pod in pods:
        if pod.mirror:
            found.skipped.append(f"{pod.ref} (mirror pod)")
            continue
        if pod.daemonset and not pod.finished:
            found.skipped.append(f"{pod.ref} (DaemonSet-managed)")
            continue
        why = []
        if not pod.finished:
            if pod.controller is None and not params.force:
                why.append("no controller manages it (params.force evicts it for good)")
            if pod.empty_dir and not params.delete_emptydir_data:
                why.append("it has emptyDir data (params.delete_emptydir_data deletes it)")
        if why:
            found.refused.append(f"{pod.ref}: {'; '.join(why)}")
        else:
            found.evict.append(pod)
    return found


async def blocking_budgets(job: Job, pods: list[objects.PodDoc]) -> list[str]:
    """Budgets that would refuse evicting all of ``pods`` now."""
    blocking = []
    for budget in await job.kube.pdbs():
        mine = [p for p in pods if budget.selects(p) and not p.finished]
        allowed = budget.status.disruptions_allowed
        if len(mine) > allowed:
            blocking.append(
                f"{budget.metadata.namespace}/{budget.metadata.name} allows {allowed} "
                f"disruption(s) now; {len(mine)} of its pods are on the node"
            )
    return blocking


def _budget_of(exc: KubeError) -> str:
    causes = exc.body.details.get("causes") or []
    for cause in causes if isinstance(causes, list) else []:
        match = _BUDGET.search(str(cause.get("message", "")) if isinstance(cause, dict) else "")
        if match:
            return match.group(1)
    if "more than one PodDisruptionBudget" in exc.message:
        return "(more than one budget)"
    return "(unknown budget)"


class Leftover(msgspec.Struct, kw_only=True):
    pod: objects.PodDoc
    why: str


async def evict_all(
    job: Job, pods: list[objects.PodDoc], params: DrainParams, until: float
) -> tuple[list[str], list[Leftover]]:
    """Evict ``pods`` and wait until they are gone, or ``until``. Returns (gone, left)."""
    pending = {pod.metadata.uid: pod for pod in pods}
    leaving: dict[str, objects.PodDoc] = {}
    blocked: dict[str, str] = {}
    gone: list[str] = []
    backoff, next_try, reported, reported_at = POLL, 0.0, "", 0.0
    announced = 0
    while True:
        job.ctx.check_cancelled()
        if pending and time.monotonic() >= next_try:
            for uid, pod in list(pending.items()):
                try:
                    await job.kube.evict(pod, params.grace_period)
                except KubeError as exc:
                    if exc.reason in ("not_found", "conflict"):
                        # Gone already, or replaced by a pod of the same name (uid precondition).
                        gone.append(pending.pop(uid).ref)
                        blocked.pop(pod.ref, None)
                    elif exc.status == 429 or "PodDisruptionBudget" in exc.message:
                        budget = _budget_of(exc)
                        if not budget.startswith("("):
                            budget = f"{pod.metadata.namespace}/{budget}"
                        blocked[pod.ref] = budget
                    else:
                        raise
                else:
                    leaving[uid] = pending.pop(uid)
                    blocked.pop(pod.ref, None)
            if pending:
                next_try = time.monotonic() + backoff
                backoff = min(backoff * 2, MAX_BACKOFF)
        if leaving:
            present = {p.metadata.uid for p in await job.kube.pods_on(job.node)}
            for uid in [uid for uid in leaving if uid not in present]:
                gone.append(leaving.pop(uid).ref)
        if len(gone) > announced:
            # Which pods left, as they leave: a long drain shows its way, not only its end.
            await job.say(f"evicted {', '.join(gone[announced:])}", evicted=gone[announced:])
            announced = len(gone)
        if not pending and not leaving:
            return gone, []
        report = ", ".join(f"{pod} by budget {budget}" for pod, budget in sorted(blocked.items()))
        now = time.monotonic()
        if blocked and (report != reported or now - reported_at >= REPORT_EVERY):
            await job.say(
                f"eviction blocked: {report}; retrying",
                blocked=[{"pod": p, "budget": b} for p, b in sorted(blocked.items())],
            )
            reported, reported_at = report, now
        if now >= until:
            left = [
                Leftover(pod=pod, why=f"blocked by budget {blocked[pod.ref]}")
                if pod.ref in blocked
                else Leftover(pod=pod, why="not evicted")
                for pod in pending.values()
            ]
            left += [Leftover(pod=pod, why="still terminating") for pod in leaving.values()]
            return gone, left
        await job.sleep(min(POLL * 2, max(0.0, next_try - now)) or POLL, until=until)


async def drain(job: Job, params: DrainParams) -> NodeResult:
    before = plan(await job.kube.pods_on(job.node), params)
    if params.dry_run:
        budgets = await blocking_budgets(job, before.evict)
        would = [pod.ref for pod in before.evict]
        message = f"dry run: would evict {len(would)} pod(s)"
        if budgets:
            message += f"; blocked for now by {'; '.join(budgets)}"
        if before.refused:
            message += f"; would refuse: {'; '.join(before.refused)}"
        return NodeResult.success(
            message,
            would_evict=would,
            blocking_budgets=budgets,
            skipped=before.skipped,
            refused=before.refused,
        )
    if before.refused:
        return NodeResult.failure(
            "refused", f"not draining: {'; '.join(before.refused)}", refused=before.refused
        )
    doc, cordoned = await cordon_node(job)
    mine = doc.metadata.annotations.get(CORDONED_BY) == job.root
    # Pods scheduled before the cordon took effect are seen now.
    after = plan(await job.kube.pods_on(job.node), params)
    if after.refused:
        return NodeResult.failure(
            "refused",
            f"not draining (the node stays cordoned): {'; '.join(after.refused)}",
            refused=after.refused,
        )
    if after.evict:
        await job.say(f"evicting {len(after.evict)} pod(s)")
    reserve = min(30.0, 0.25 * max(0.0, job.left()))
    until = job.deadline - reserve
    if params.drain_timeout is not None:
        until = min(job.deadline, time.monotonic() + params.drain_timeout)
    gone, left = await evict_all(job, after.evict, params, until)
    data: dict[str, Any] = {"evicted": gone, "skipped": after.skipped, "cordoned": cordoned}
    if not left:
        return NodeResult.success(f"drained: {len(gone)} pod(s) evicted", **data)
    remaining = [f"{item.pod.ref} ({item.why})" for item in left]
    data["remaining"] = remaining
    summary = f"drain timed out with {len(left)} pod(s) left: {', '.join(remaining)}"
    if params.on_timeout == "delete":
        return await _delete_left(job, params, left, summary, data)
    if params.on_timeout == "uncordon":
        if mine:
            await update_node(job, _give_back(job.root))
            return NodeResult.failure("drain_timeout", f"{summary}; node uncordoned", **data)
        return NodeResult.failure(
            "drain_timeout",
            f"{summary}; the node was cordoned before, so it stays cordoned",
            **data,
        )
    return NodeResult.failure("drain_timeout", f"{summary}; the node stays cordoned", **data)


def _give_back(root: str) -> Any:
    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        if not doc.spec.unschedulable or doc.metadata.annotations.get(CORDONED_BY) != root:
            return None
        return {
            "spec": {"unschedulable": False},
            "metadata": {"annotations": {CORDONED_BY: None, CORDONED_AT: None}},
        }

    return change


async def _delete_left(
    job: Job, params: DrainParams, left: list[Leftover], summary: str, data: dict[str, Any]
) -> NodeResult:
    deleted = []
    for item in left:
        try:
            await job.kube.delete_pod(item.pod, params.grace_period)
        except KubeError as exc:
            if exc.reason not in ("not_found", "conflict"):
                raise
        deleted.append(item.pod.ref)
    data["deleted"] = deleted
    waiting = {item.pod.metadata.uid for item in left}
    while waiting:
        present = {p.metadata.uid for p in await job.kube.pods_on(job.node)}
        waiting &= present
        if not waiting:
            break
        if job.left() <= 0:
            return NodeResult.failure(
                "drain_timeout", f"{summary}; deleted them, but they are still terminating", **data
            )
        await job.sleep(POLL * 2)
    return NodeResult.success(f"{summary}; deleted them: {', '.join(deleted)}", **data)
