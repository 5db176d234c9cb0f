"""A fair semaphore: waiters queue per owner (a task), and owners are served round-robin.

A plain semaphore serves waiters first come, first served, so a task that queued 1,000 nodes
starves a 2-node task that arrived a moment later. Here each free slot goes to the next owner
in turn, so every waiting task gets slots at the same pace whatever its size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator


class FairLimiter:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.in_use = 0
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def resize(self, capacity: int) -> None:
        """Takes effect at once for new grants; slots in use are never taken back."""
        self.capacity = max(1, capacity)
        self._grant()

    async def acquire(self, owner: str) -> None:
        if self.in_use < self.capacity and not self._queues:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(owner, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted in the same instant as cancelled: hand the slot on.
                self.release()
            else:
                self._discard(owner, future)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._grant()

    @contextlib.asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        await self.acquire(owner)
        try:
            yield
        finally:
            self.release()

    def _discard(self, owner: str, future: asyncio.Future[None]) -> None:
        queue = self._queues.get(owner)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(future)
        if not queue:
            del self._queues[owner]

    def _grant(self) -> None:
        while self.in_use < self.capacity and self._queues:
            owner, queue = self._queues.popitem(last=False)
            future = queue.popleft()
            if queue:
                # The owner goes to the back of the line: round-robin between owners.
                self._queues[owner] = queue
            if future.done():
                continue
            self.in_use += 1
            future.set_result(None)
