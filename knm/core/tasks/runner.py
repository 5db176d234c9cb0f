"""The runner: claims pending tasks, runs them under a lease, hears cancels, reaps the lost.

Claims use ``FOR UPDATE SKIP LOCKED`` so any number of workers share one PostgreSQL. A worker
renews the leases of the tasks it runs; when a worker dies its leases expire and any process
reaps them: the task ends ``failed`` ("worker lost") — at most once, never silently re-run —
unless its executor is recoverable, in which case another worker takes it over and calls
``recover(ctx)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.db import UNAVAILABLE
from knm.core.errors import KnmError
from knm.core.tasks import counts, locks, store
from knm.core.tasks.executor import Executor, Prepared, TaskContext
from knm.core.tasks.output import Masker
from knm.core.tasks.schemas import TaskRow

if TYPE_CHECKING:
    from knm.core.state import Knm

log = logging.getLogger("knm.runner")

WAKE_CHANNEL = "knm_tasks"
CANCEL_CHANNEL = "knm_cancel"
#: Seconds the claim loop waits for a wake-up before it looks for work anyway.
CLAIM_POLL = 1.0


#: Tries at writing a task's end while the database is unavailable (about a minute).
FINISH_ATTEMPTS = 15
#: Why a task stops here when its lease turns out to be another worker's.
LEASE_LOST = "lease lost: another worker holds the task"


def _database_down(doing: str, exc: BaseException) -> None:
    """One line, not a traceback: the database restarting is an expected condition."""
    log.warning("%s: the database is unavailable (%s: %s)", doing, type(exc).__name__, exc)


async def _lock_nodes(ctx: TaskContext) -> None:
    """A disruptive executor's task holds its nodes' locks (for its workflow, when it is a
    step) and counts against the cluster's ``max_unavailable``; refused, it does not run."""
    root = ctx.task.parent_task_id or ctx.task_id
    refusal = await locks.acquire_nodes(
        ctx.knm.pool,
        cluster=ctx.task.cluster_name,
        nodes=[node.name for node in ctx.nodes],
        holder=root,
        task_id=ctx.task_id,
        max_unavailable=locks.budget_of(await ctx.cluster()),
    )
    if refusal is not None:
        raise KnmError(refusal.message)


class Running(msgspec.Struct):
    ctx: TaskContext
    job: asyncio.Task[None]


class Runner:
    def __init__(self, knm: Knm, *, claim: bool = True) -> None:
        self.knm = knm
        self.claim_enabled = claim
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = float(knm.config.lease_seconds)
        self.running: dict[str, Running] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.reaped = 0
        #: ``time.monotonic()`` of the last turn of the loop that beats (see ``stalled``).
        self.heartbeat = time.monotonic()

    @property
    def executors(self) -> Mapping[str, Executor]:
        return self.knm.executors

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        # The process's one LISTEN connection, which listens again after the database
        # restarts; a cancel missed meanwhile still arrives with the next lease renewal.
        listener = self.knm.listener
        assert listener is not None, "the engine starts its listener before the runner"
        await listener.subscribe(CANCEL_CHANNEL, self._on_cancel)
        if self.claim_enabled:
            await listener.subscribe(WAKE_CHANNEL, self._on_wake)
            listener.on_reset(self._wake.set)
            self._tasks.append(asyncio.create_task(self._claim_loop(), name="knm-claim"))
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="knm-lease"))
        self._tasks.append(asyncio.create_task(self._reap_loop(), name="knm-reap"))
        from knm.core.tasks.retention import prune_loop

        self._tasks.append(asyncio.create_task(prune_loop(self.knm), name="knm-prune"))
        self._tasks.append(
            asyncio.create_task(counts.fold_loop(self.knm.pool), name="knm-fold-counts")
        )
        from knm.core.windows.resumes import resume_loop

        # Rolls stopped at a window's end start again at its next opening, once across processes.
        self._tasks.append(asyncio.create_task(resume_loop(self.knm), name="knm-window-resumes"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running tasks finish within ``grace``, then cancel them."""
        self._stopping = True
        self._wake.set()
        if self.running:
            jobs = [r.job for r in self.running.values()]
            _, pending = await asyncio.wait(jobs, timeout=grace)
            if pending:
                for running in list(self.running.values()):
                    self._cancel_local(running.ctx, "shutdown")
                await asyncio.wait(pending, timeout=30)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A loop stuck in a call that ignores cancellation must not hold shutdown forever.
            done, stuck = await asyncio.wait(self._tasks, timeout=15)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: it ended the way stop() wanted
            for task in stuck:
                log.warning("shutdown: %s did not stop within 15 s", task.get_name())

    @property
    def beat_interval(self) -> float:
        """Seconds between heartbeats: the claim loop's poll, or (not claiming) the reap loop's."""
        return CLAIM_POLL if self.claim_enabled else max(0.5, self.lease / 2)

    def stalled(self, beats: float = 5) -> str | None:
        """Why this runner is not alive (stopping, a loop ended, or no heartbeat for ``beats``
        intervals), or None when it is."""
        if self._stopping:
            return "stopping"
        for task in self._tasks:
            if task.done():
                return f"{task.get_name()} loop ended"
        age = time.monotonic() - self.heartbeat
        if age > beats * self.beat_interval:
            return f"no heartbeat for {age:.0f}s"
        return None

    def _on_wake(self, *_: Any) -> None:
        self._wake.set()

    def _on_cancel(self, payload: str) -> None:
        running = self.running.get(payload)
        if running is not None:
            self._cancel_local(running.ctx, running.ctx.task.cancel_reason or "cancelled by user")

    def _cancel_local(self, ctx: TaskContext, reason: str) -> None:
        if not ctx.cancelled.is_set():
            ctx.cancel_reason = reason
            ctx.cancelled.set()

    # --- claiming -------------------------------------------------------------------------

    async def _limits(self) -> dict[str, int]:
        limits = {}
        for kind, executor in self.executors.items():
            settings = await self.knm.features.settings(executor.feature)
            limits[kind] = min(
                executor.max_tasks, getattr(settings, "max_tasks", executor.max_tasks)
            )
        return limits

    async def try_claim(self, task_id: str, prepared: Prepared | None = None) -> TaskRow | None:
        """Claim one just-created task for this process (so the answer can say ``running``)."""
        if not self.claim_enabled or self._stopping:
            return None
        limits = await self._limits()
        async with self.knm.pool.acquire() as conn:
            claimed = await store.claim(
                conn,
                worker_id=self.worker_id,
                lease=self.lease,
                limits=limits,
                task_id=task_id,
                max_claims=1,
            )
        for task in claimed:
            self._launch(task, prepared=prepared)
        return claimed[0] if claimed else None

    async def try_claim_many(self, started: Sequence[tuple[str, Prepared]]) -> list[TaskRow]:
        """``try_claim`` for several just-created tasks in one claim (a batch of schedule
        fires); the ones not claimed here stay pending for any runner."""
        if not started or not self.claim_enabled or self._stopping:
            return []
        prepared = dict(started)
        limits = await self._limits()
        async with self.knm.pool.acquire() as conn:
            claimed = await store.claim(
                conn,
                worker_id=self.worker_id,
                lease=self.lease,
                limits=limits,
                task_ids=list(prepared),
                max_claims=len(prepared),
            )
        for task in claimed:
            self._launch(task, prepared=prepared[task.task_id])
        return claimed

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self.heartbeat = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=CLAIM_POLL)
            self._wake.clear()
            if self._stopping:
                return
            try:
                limits = await self._limits()
                async with self.knm.pool.acquire() as conn:
                    claimed = await store.claim(
                        conn, worker_id=self.worker_id, lease=self.lease, limits=limits
                    )
                for task in claimed:
                    self._launch(task)
                if claimed:
                    self._wake.set()
            except UNAVAILABLE as exc:
                _database_down("claiming tasks", exc)
                await asyncio.sleep(1)
            except Exception:
                log.exception("claiming tasks failed")
                await asyncio.sleep(1)

    def _launch(
        self, task: TaskRow, *, recover: bool = False, prepared: Prepared | None = None
    ) -> None:
        job = asyncio.create_task(
            self._execute(task, recover=recover, prepared=prepared), name=task.task_id
        )
        # The context is filled in by _execute; a placeholder keeps cancels from being lost.
        self.running[task.task_id] = Running(ctx=_Placeholder(task), job=job)  # type: ignore[arg-type]

    # --- executing ------------------------------------------------------------------------

    async def _context(self, task: TaskRow, prepared: Prepared | None = None) -> TaskContext:
        """The task's context: from what ``prepare`` carried when the task was created in this
        process (nothing is read or decrypted again), else from the database."""
        executor = self.executors[task.kind]
        request = msgspec.convert(task.request, executor.request_type, strict=False)
        masker = Masker()
        finished: list[str] = []
        if prepared is not None:
            nodes = list(prepared.nodes)
            credential, secrets = prepared.credential, dict(prepared.secrets)
        else:
            stored = await store.nodes_of(self.knm.pool, task.task_id)
            nodes = [node for node, _ in stored]
            finished = [node.name for node, state in stored if state in ("success", "failed")]
            credential, secrets = None, {}
            sealed = await store.sealed_secrets(self.knm.pool, task.task_id)
            if sealed is not None:
                from knm.core.crypto import keyring_of

                opened = store.SECRETS.open(keyring_of(self.knm), sealed, task.task_id)
                secrets = msgspec.json.decode(opened, type=dict[str, str])
            if task.credential_id is not None:
                from knm.core.credentials import load_credential

                credential = await load_credential(self.knm, task.credential_id)
        masker.add(*secrets.values())
        if credential is not None:
            masker.add(*credential.secret_values())
        settings = await self.knm.features.settings(executor.feature)
        ctx = TaskContext(
            knm=self.knm,
            task=task,
            executor=executor,
            request=request,
            nodes=nodes,
            credential=credential,
            settings=settings,
            masker=masker,
            secrets=secrets,
            cluster=prepared.cluster if prepared is not None else None,
            carried=prepared.carried if prepared is not None else None,
        )
        # A recovered task's nodes that already ended are not run again.
        ctx._finished.update(finished)
        ctx._finished_count += len(finished)
        return ctx

    async def _execute(
        self, task: TaskRow, *, recover: bool = False, prepared: Prepared | None = None
    ) -> None:
        ctx: TaskContext | None = None
        error: str | None = None
        try:
            await self.knm.events.open_task(task.task_id)
            ctx = await self._context(task, prepared)
            placeholder = self.running.get(task.task_id)
            if placeholder is not None:
                if placeholder.ctx.cancelled.is_set():
                    self._cancel_local(ctx, placeholder.ctx.cancel_reason)
                ctx.lease_lost = placeholder.ctx.lease_lost
                placeholder.ctx = ctx
            if task.cancel_requested:
                self._cancel_local(ctx, task.cancel_reason or "cancelled by user")
            if not recover:
                ctx.emit("progress", "started", {"status": "running"})
            executor = self.executors[task.kind]
            if recover:
                await executor.recover(ctx)
            else:
                if executor.disruptive:
                    await _lock_nodes(ctx)
                await executor.run(ctx)
        except asyncio.CancelledError:
            error = "interrupted"
        except KnmError as exc:
            error = exc.error or exc.message
        except Exception as exc:
            log.exception("task %s failed", task.task_id)
            error = f"internal error: {type(exc).__name__}"
        finally:
            # A lost lease leaves the task's locks to the worker that holds it now.
            if ctx is not None and self.executors[task.kind].disruptive and not ctx.lease_lost:
                root = task.parent_task_id or task.task_id
                if root == task.task_id:  # a workflow releases its own after each batch
                    with contextlib.suppress(Exception):
                        await locks.release_all(self.knm.pool, root)
            await self._finish(task, ctx, error)

    async def _finish(self, task: TaskRow, ctx: TaskContext | None, error: str | None) -> None:
        try:
            cancelled = bool(ctx and ctx.cancelled.is_set())
            reason = "cancelled" if cancelled else ("error" if error else "skipped")
            message = ctx.cancel_reason if (ctx and cancelled) else (error or "not run")
            if ctx is not None:
                await ctx.flush_output()
            # The end is worth waiting for while the database restarts: otherwise the task
            # would be reaped as "worker lost" once its lease ran out.
            for attempt in range(FINISH_ATTEMPTS):
                try:
                    async with self.knm.pool.acquire() as conn:
                        final = await store.finish(
                            conn,
                            task.task_id,
                            cancelled=cancelled,
                            open_reason=reason,
                            open_message=message,
                            error=None if cancelled else error,
                            message=(ctx.cancel_reason if cancelled and ctx else ""),
                            result=ctx.result if ctx else None,
                            worker_id=self.worker_id,
                        )
                    break
                except UNAVAILABLE as exc:
                    if attempt + 1 == FINISH_ATTEMPTS:
                        raise
                    _database_down(f"writing the end of task {task.task_id}", exc)
                    await asyncio.sleep(min(2.0**attempt, 5.0))
            if final is not None:
                await self.announce_end(final)
        except Exception:
            log.exception("writing the end of task %s failed", task.task_id)
        finally:
            self.running.pop(task.task_id, None)
            self.knm.events.close_task(task.task_id)
            self._wake.set()

    async def announce_end(self, final: TaskRow) -> None:
        """The one ``complete`` event, then the ``knm_task_finished`` hook."""
        self.knm.events.emit(
            final.task_id,
            "complete",
            100,
            final.message or final.status,
            {
                "status": final.status,
                "success_count": final.success_count,
                "failed_count": final.failed_count,
                **({"error": final.error} if final.error else {}),
            },
        )
        await self.knm.events.flush()
        await self.knm.task_finished(final)

    # --- leases ---------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if not self.running:
                continue
            try:
                held = list(self.running)
                async with self.knm.pool.acquire() as conn:
                    cancels = await store.renew(conn, self.worker_id, self.lease, held)
                for task_id in held:
                    running = self.running.get(task_id)
                    if running is None:
                        continue
                    if task_id not in cancels:
                        # Not ours any more (a stall outlived the lease: another process failed
                        # the task or took it over): stop acting on its nodes at once.
                        log.warning("task %s: lease lost to another worker; stopping", task_id)
                        running.ctx.lease_lost = True
                        self._cancel_local(running.ctx, LEASE_LOST)
                    elif cancels[task_id]:
                        self._cancel_local(running.ctx, "cancelled by user")
            except UNAVAILABLE as exc:
                _database_down("renewing leases", exc)
            except Exception:
                log.exception("renewing leases failed")

    async def _reap_loop(self) -> None:
        while True:
            if not self.claim_enabled:
                self.heartbeat = time.monotonic()
            await asyncio.sleep(max(0.5, self.lease / 2))
            try:
                await self.reap()
            except UNAVAILABLE as exc:
                _database_down("reaping expired leases", exc)
            except Exception:
                log.exception("reaping expired leases failed")

    async def reap(self) -> None:
        async with self.knm.pool.acquire() as conn:
            lost = await store.expired(conn)
            for task in lost:
                if task.task_id in self.running:
                    continue
                executor = self.executors.get(task.kind)
                recoverable = executor is not None and executor.recoverable
                if recoverable and not self.claim_enabled and not self._abandoned(task):
                    # Leave it to a worker, which can recover it; fail it here only when no
                    # worker has taken it for a long while.
                    continue
                if recoverable and self.claim_enabled:
                    taken = await store.take_over(
                        conn, task.task_id, task.worker_id, self.worker_id, self.lease
                    )
                    if taken is not None:
                        log.warning(
                            "taking over %s from lost worker %s", task.task_id, task.worker_id
                        )
                        self._launch(taken, recover=True)
                    continue
                final = await store.finish(
                    conn,
                    task.task_id,
                    # Unless the worker came back and renewed its lease since it was read.
                    worker_id=task.worker_id,
                    expired=True,
                    open_reason="worker_lost",
                    open_message=f"worker {task.worker_id} lost",
                    error="worker lost",
                    message="worker lost",
                )
                if final is not None:
                    self.reaped += 1
                    log.warning("task %s failed: worker %s lost", task.task_id, task.worker_id)
                    await self.knm.events.open_task(final.task_id)
                    await self.announce_end(final)
                    self.knm.events.close_task(final.task_id)

    def _abandoned(self, task: TaskRow) -> bool:
        from datetime import UTC, datetime, timedelta

        assert task.lease_until is not None
        return datetime.now(UTC) - task.lease_until > timedelta(seconds=10 * self.lease)


class _Placeholder:
    """Stands in for a context until it is built, remembering a cancel that arrives early."""

    def __init__(self, task: TaskRow) -> None:
        self.task = task
        self.cancelled = asyncio.Event()
        self.cancel_reason = ""
        self.lease_lost = False
