"""Group commit of one task's node starts, output chunks and node ends.

A fan-out over 1,000 nodes used to cost three writes per node (start, output, end), each with
its own pool checkout, on the CPUs that also do the SSH work. Here they are gathered and
written together by one statement (``store.write_nodes``): the first write goes at once,
and while writes keep coming, at most one batch per ``INTERVAL``. A start and output are
written behind the caller's back; an end is awaited, so once ``end`` returns the node's row
and output are stored (and ``end`` says whether this call recorded it — a node ends once).
``flush`` writes whatever is pending at once; the runner calls it before the task's terminal
write, so a terminal task never changes afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from knm.core.tasks import store
from knm.core.tasks.schemas import NodeResult

if TYPE_CHECKING:
    import asyncpg

#: Seconds between two batches while writes keep coming.
INTERVAL = 0.05

Chunk = tuple[str, str, str, int, str]


class _Batch:
    __slots__ = ("chunks", "done", "ended", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.started: list[str] = []
        self.chunks: list[Chunk] = []
        self.ended: dict[str, store.NodeEnd] = {}
        self.done: asyncio.Future[set[str]] = loop.create_future()
        # A failed batch nobody awaited must not log "exception was never retrieved".
        self.done.add_done_callback(_retrieve)

    def __bool__(self) -> bool:
        return bool(self.started or self.chunks or self.ended)


def _retrieve(future: asyncio.Future[set[str]]) -> None:
    if not future.cancelled():
        future.exception()


class NodeWriter:
    """The pending writes of one task, and the one job that writes them."""

    def __init__(self, pool: asyncpg.Pool, task_id: str, worker_id: str | None = None) -> None:
        self.pool = pool
        self.task_id = task_id
        #: The worker whose lease the writes are fenced by (``store.write_nodes``).
        self.worker_id = worker_id
        self._loop = asyncio.get_running_loop()
        self._pending = _Batch(self._loop)
        self._writing: _Batch | None = None
        self._job: asyncio.Task[None] | None = None
        self._urgent = asyncio.Event()
        self._last = -INTERVAL
        #: The error of a failed batch that had no end awaiting it, raised by the next flush.
        self._error: BaseException | None = None

    def start(self, node: str) -> None:
        self._pending.started.append(node)
        self._kick()

    def chunks(self, rows: list[Chunk]) -> None:
        self._pending.chunks.extend(rows)
        self._kick()

    async def end(
        self,
        node: str,
        result: NodeResult,
        output: dict[str, tuple[int, bool]],
        *,
        urgent: bool = False,
    ) -> bool:
        """Stores the node's end with everything pending; False when the node had ended.
        ``urgent``: write without waiting for the interval (nothing else is coming)."""
        batch = self._pending
        if node in batch.ended:
            return False
        batch.ended[node] = store.NodeEnd(node, result, output)
        if urgent:
            self._urgent.set()
        self._kick()
        recorded = await asyncio.shield(batch.done)
        return node in recorded

    async def flush(self) -> None:
        """Writes everything pending now, and waits for it and any batch being written."""
        waits = [b.done for b in (self._writing, self._pending) if b]
        if self._pending:
            self._urgent.set()
            self._kick()
        try:
            for done in waits:
                await asyncio.shield(done)
        except Exception as exc:
            if exc is self._error:
                self._error = None  # reported here, not again
            raise
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _kick(self) -> None:
        if self._job is None:
            self._job = self._loop.create_task(self._run(), name=f"knm-nodes-{self.task_id}")

    async def _run(self) -> None:
        try:
            while self._pending:
                wait = self._last + INTERVAL - self._loop.time()
                if wait > 0 and not self._urgent.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), wait)
                self._urgent.clear()
                self._last = self._loop.time()
                batch, self._pending = self._pending, _Batch(self._loop)
                self._writing = batch
                try:
                    async with self.pool.acquire() as conn:
                        recorded = await store.write_nodes(
                            conn, self.task_id, started=batch.started, chunks=batch.chunks,
                            ended=list(batch.ended.values()), worker_id=self.worker_id,
                        )  # fmt: skip
                except Exception as exc:
                    if not batch.ended:
                        self._error = exc
                    batch.done.set_exception(exc)
                else:
                    batch.done.set_result(recorded)
                finally:
                    self._writing = None
                    if not batch.done.done():
                        # Cancelled mid-write (shutdown): whoever awaits it must not hang.
                        batch.done.cancel()
        finally:
            self._job = None
            if self._pending and not self._pending.done.done():
                self._pending.done.cancel()
                self._pending = _Batch(self._loop)
