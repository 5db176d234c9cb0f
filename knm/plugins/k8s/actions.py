"""Node actions: cordon, uncordon, label, unlabel, taint, untaint, record_boot_id, wait_ready.

Every change is a merge patch carrying the node's ``resourceVersion``, so a concurrent writer
makes it fail with 409; the change is then computed again from a fresh read and retried. Each
action is idempotent: a node already in the wanted state succeeds and says so.

knm marks its own cordons with the annotations ``knm.io/cordoned-by`` (the root task id: the
workflow's for its steps) and ``knm.io/cordoned-at``. ``uncordon`` undoes only those: a node
cordoned by hand fails with reason ``refused`` and stays cordoned, unless ``params.force``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from knm.core.clusters import Cluster
from knm.core.tasks import Cancelled, NodeResult, TaskContext, locks
from knm.plugins.k8s import objects
from knm.plugins.k8s.client import Kube, KubeError
from knm.plugins.k8s.provider import BOOT_ID, CORDONED_AT, CORDONED_BY
from knm.plugins.k8s.schemas import (
    LabelParams,
    RecordBootIdParams,
    TaintParams,
    UncordonParams,
    UnlabelParams,
    UntaintParams,
    WaitReadyParams,
)

#: Conflicting writes tolerated in a row before a change gives up.
MAX_CONFLICTS = 10


@dataclass
class Job:
    """One node's work: where, for whom, and until when (``time.monotonic`` deadline)."""

    ctx: TaskContext
    kube: Kube
    cluster: Cluster
    node: str
    #: The root task id: holder of locks and the ``cordoned-by`` mark.
    root: str
    deadline: float
    conflicts: int = 0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def sleep(self, seconds: float, until: float | None = None) -> None:
        """Sleep, but not past the deadline; ``Cancelled`` as soon as the task is."""
        end = self.deadline if until is None else until
        seconds = max(0.0, min(seconds, end - time.monotonic()))
        try:
            await asyncio.wait_for(self.ctx.cancelled.wait(), seconds)
        except TimeoutError:
            return
        raise Cancelled(self.ctx.cancel_reason or "cancelled")

    async def say(self, message: str, **data: Any) -> None:
        await self.ctx.progress(
            self.ctx.progress_value, f"{self.node}: {message}", node=self.node, **data
        )


class Refused(Exception):
    """The node is not in a state this action may change."""


Change = Callable[[objects.NodeDoc], dict[str, Any] | None]


async def update_node(job: Job, change: Change) -> tuple[objects.NodeDoc, bool]:
    """Apply ``change`` (a merge patch from the node as read, or None when nothing is to do),
    retrying on conflicts. Returns the node and whether it changed."""
    for attempt in range(MAX_CONFLICTS):
        job.ctx.check_cancelled()
        doc = await job.kube.node(job.node)
        patch = change(doc)
        if patch is None:
            return doc, False
        meta = patch.setdefault("metadata", {})
        meta["resourceVersion"] = doc.metadata.resource_version
        try:
            return await job.kube.patch_node(job.node, patch), True
        except KubeError as exc:
            if exc.reason != "conflict":
                raise
            job.conflicts += 1
            await job.sleep(0.02 * (attempt + 1))
    raise KubeError(
        "conflict", f"node {job.node} kept changing: gave up after {MAX_CONFLICTS} conflicts"
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unmark() -> dict[str, Any]:
    return {"annotations": {CORDONED_BY: None, CORDONED_AT: None}}


# --- cordon -------------------------------------------------------------------------------------


async def _finished_holder(job: Job) -> str | None:
    """The task whose knm cordon the node carries, when that task has ended (a resumed
    workflow takes over its original's cordon, so its steps see the node cordoned by it)."""
    from knm.core.tasks import store

    doc = await job.kube.node(job.node)
    by = doc.metadata.annotations.get(CORDONED_BY)
    if not doc.spec.unschedulable or not by or by == job.root:
        return None
    task = await store.get_task(job.ctx.knm.pool, by)
    return by if task is None or task.status not in ("pending", "running") else None


async def cordon_node(job: Job) -> tuple[objects.NodeDoc, bool]:
    adopt = await _finished_holder(job)

    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        if doc.spec.unschedulable:
            if adopt is not None and doc.metadata.annotations.get(CORDONED_BY) == adopt:
                return {"metadata": {"annotations": {CORDONED_BY: job.root}}}
            return None
        return {
            "spec": {"unschedulable": True},
            "metadata": {"annotations": {CORDONED_BY: job.root, CORDONED_AT: _now()}},
        }

    return await update_node(job, change)


def cordon_message(doc: objects.NodeDoc, changed: bool) -> str:
    if changed:
        return "cordoned"
    by = doc.metadata.annotations.get(CORDONED_BY)
    if by:
        return f"already cordoned by knm (task {by})"
    return "already cordoned by hand; left as it is"


async def cordon(job: Job, params: Any) -> NodeResult:
    adopted = await _finished_holder(job)
    if params.dry_run:
        doc = await job.kube.node(job.node)
        if not doc.spec.unschedulable:
            return NodeResult.success("dry run: would cordon", changed=False, would_change=True)
        if adopted:
            what = f"already cordoned by knm (task {adopted}, which has ended); would take it over"
        else:
            what = cordon_message(doc, False)
        return NodeResult.success(f"dry run: {what}", changed=False, would_change=False)
    doc, changed = await cordon_node(job)
    if adopted and doc.metadata.annotations.get(CORDONED_BY) == job.root:
        message = f"already cordoned by knm (task {adopted}, which has ended); now this task's"
        return NodeResult.success(message, changed=changed)
    return NodeResult.success(cordon_message(doc, changed), changed=changed)


async def uncordon_node(job: Job, force: bool) -> tuple[objects.NodeDoc, bool]:
    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        marked = CORDONED_BY in doc.metadata.annotations or CORDONED_AT in doc.metadata.annotations
        if not doc.spec.unschedulable:
            return {"metadata": _unmark()} if marked else None
        if CORDONED_BY not in doc.metadata.annotations and not force:
            raise Refused(
                f"node {job.node} was cordoned by hand (it has no {CORDONED_BY} annotation); "
                "knm leaves it cordoned: give params.force=true to uncordon it anyway"
            )
        return {"spec": {"unschedulable": False}, "metadata": _unmark()}

    return await update_node(job, change)


async def uncordon(job: Job, params: UncordonParams) -> NodeResult:
    holder = await locks.holder_of(job.ctx.knm.pool, job.cluster.name, job.node)
    if holder is not None and holder != job.root:
        dry = "dry run: " if params.dry_run else ""
        return NodeResult.failure(
            "locked", f"{dry}node {job.node} is locked by task {holder}; not uncordoning it"
        )
    before = await job.kube.node(job.node)
    if params.dry_run:
        return _would_uncordon(job, before, params.force)
    try:
        _, changed = await uncordon_node(job, params.force)
    except Refused as exc:
        return NodeResult.failure("refused", str(exc))
    # Back in service: the node no longer counts against max_unavailable for this holder
    # (unless this worker lost the task's lease: the lock is the new owner's to release).
    if not job.ctx.lease_lost:
        await locks.release(job.ctx.knm.pool, job.cluster.name, job.node, job.root)
    if not before.spec.unschedulable:
        return NodeResult.success("not cordoned", changed=changed)
    by = before.metadata.annotations.get(CORDONED_BY)
    how = f"cordoned by knm task {by}" if by else "cordoned by hand; forced"
    return NodeResult.success(f"uncordoned ({how})", changed=changed)


def _would_uncordon(job: Job, doc: objects.NodeDoc, force: bool) -> NodeResult:
    if not doc.spec.unschedulable:
        return NodeResult.success("dry run: not cordoned", changed=False, would_change=False)
    by = doc.metadata.annotations.get(CORDONED_BY)
    if not by and not force:
        return NodeResult.failure(
            "refused",
            f"dry run: node {job.node} was cordoned by hand (it has no {CORDONED_BY} "
            "annotation); knm would leave it cordoned: give params.force=true to uncordon it",
        )
    how = f"cordoned by knm task {by}" if by else "cordoned by hand; forced"
    return NodeResult.success(f"dry run: would uncordon ({how})", changed=False, would_change=True)


# --- labels and taints --------------------------------------------------------------------------


async def label(job: Job, params: LabelParams) -> NodeResult:
    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        current = doc.metadata.labels
        if all(current.get(k) == v for k, v in params.labels.items()):
            return None
        return {"metadata": {"labels": dict(params.labels)}}

    _, changed = await update_node(job, change)
    return _done(job, changed, "labelled", "labels already set")


async def unlabel(job: Job, params: UnlabelParams) -> NodeResult:
    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        present = [k for k in params.keys if k in doc.metadata.labels]
        if not present:
            return None
        return {"metadata": {"labels": dict.fromkeys(present)}}

    _, changed = await update_node(job, change)
    return _done(job, changed, "labels removed", "labels already absent")


def _taints(taints: list[objects.Taint]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(taint) for taint in taints]


async def taint(job: Job, params: TaintParams) -> NodeResult:
    wanted = objects.Taint(key=params.key, effect=params.effect, value=params.value or None)

    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        same = [t for t in doc.spec.taints if t.key == wanted.key and t.effect == wanted.effect]
        if same and (same[0].value or "") == params.value:
            return None
        kept = [
            t for t in doc.spec.taints if not (t.key == wanted.key and t.effect == wanted.effect)
        ]
        return {"spec": {"taints": _taints([*kept, wanted])}}

    _, changed = await update_node(job, change)
    return _done(job, changed, f"tainted {wanted}", f"taint {wanted} already set")


async def untaint(job: Job, params: UntaintParams) -> NodeResult:
    def gone(t: objects.Taint) -> bool:
        return t.key == params.key and (params.effect is None or t.effect == params.effect)

    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        kept = [t for t in doc.spec.taints if not gone(t)]
        if len(kept) == len(doc.spec.taints):
            return None
        return {"spec": {"taints": _taints(kept)}}

    _, changed = await update_node(job, change)
    what = params.key + (f":{params.effect}" if params.effect else "")
    return _done(job, changed, f"taint {what} removed", f"taint {what} already absent")


def _done(job: Job, changed: bool, did: str, already: str) -> NodeResult:
    message = did if changed else already
    if job.conflicts:
        message += f" (retried after {job.conflicts} conflicting change(s))"
    return NodeResult.success(message, changed=changed, conflicts=job.conflicts)


# --- boot id and readiness ----------------------------------------------------------------------


async def record_boot_id(job: Job, params: RecordBootIdParams) -> NodeResult:
    found: list[str] = []

    def change(doc: objects.NodeDoc) -> dict[str, Any] | None:
        boot = doc.status.node_info.boot_id
        found[:] = [boot]
        if not boot or doc.metadata.annotations.get(BOOT_ID) == boot:
            return None
        return {"metadata": {"annotations": {BOOT_ID: boot}}}

    await update_node(job, change)
    if not found or not found[0]:
        return NodeResult.failure("no_boot_id", f"node {job.node} reports no bootID")
    return NodeResult.success(f"boot id {found[0]} recorded", boot_id=found[0])


async def wait_ready(job: Job, params: WaitReadyParams) -> NodeResult:
    doc = await job.kube.node(job.node)
    before = (params.boot_ids or {}).get(job.node) or params.boot_id
    if params.after_reboot and not before:
        before = doc.metadata.annotations.get(BOOT_ID)
        if not before:
            return NodeResult.failure(
                "no_boot_id",
                f"no boot id recorded for node {job.node}: run record_boot_id before the "
                "reboot, or give params.boot_id",
            )
    interval, last = 0.1, ""
    while True:
        boot = doc.status.node_info.boot_id
        rebooted = not params.after_reboot or (bool(boot) and boot != before)
        if doc.ready and rebooted:
            how = f" after reboot (boot id {boot})" if params.after_reboot else ""
            return NodeResult.success(f"Ready{how}", boot_id=boot)
        condition = doc.ready_condition
        state = (
            f"Ready={condition.status if condition else 'unknown'}"
            + (f" ({condition.message})" if condition and condition.message else "")
            + ("" if rebooted else "; not rebooted yet")
        )
        if state != last:
            await job.say(f"waiting: {state}")
            last = state
        if job.left() <= 0:
            return NodeResult.failure("not_ready", f"node {job.node} not ready in time: {state}")
        await job.sleep(interval)
        interval = min(interval * 1.5, 2.0)
        try:
            doc = await job.kube.node(job.node)
        except KubeError as exc:
            # An API server restarting with the node (a control-plane reboot) is not the end.
            if exc.reason not in ("api_unreachable", "api_error"):
                raise
            last = exc.message
