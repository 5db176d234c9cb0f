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


class HandshakeRamp:
    """How many SSH handshakes may be in progress at once: few at first, then more with every
    handshake that completes and at least twice as many every ``step`` seconds (slow start,
    as TCP's congestion window), without limit once the window passes ``ceiling``.

    A handshake is mostly CPU on both ends. Started all at once on one event loop, 200 of them
    interleave and the first finishes only when nearly all do, so the first node's result came
    seconds after the POST. With a small starting window the first handshakes finish at once
    while the CPU stays just as busy. The window grows by one per completed handshake (it
    doubles every handshake round trip, so a link with real latency loses a few round trips)
    and doubles every ``step`` regardless, so handshakes that hang (a blackholed node) hold
    the others back for a few steps at most. Once no handshake is in progress, the next burst
    starts small again.
    """

    def __init__(self, start: int = 16, step: float = 0.1, ceiling: int = 4096) -> None:
        self.start = max(1, start)
        self.step = step
        self.ceiling = ceiling
        self.window = self.start
        self.in_progress = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        if self.in_progress < self.window and not self._waiters:
            self.in_progress += 1
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        if self._timer is None:
            self._timer = loop.call_later(self.step, self._double)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(completed=False)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise

    def release(self, *, completed: bool) -> None:
        self.in_progress -= 1
        if completed:
            self.window = min(self.ceiling, self.window + 1)
        if self.in_progress == 0 and not self._waiters:
            self.window = self.start
        self._grant()

    def _double(self) -> None:
        self._timer = None
        self.window = min(self.ceiling, self.window * 2)
        self._grant()
        if self._waiters:
            self._timer = asyncio.get_running_loop().call_later(self.step, self._double)

    def _grant(self) -> None:
        while self._waiters and self.in_progress < self.window:
            future = self._waiters.popleft()
            if future.done():
                continue
            self.in_progress += 1
            future.set_result(None)

    @contextlib.asynccontextmanager
    async def handshake(self) -> AsyncIterator[None]:
        await self.acquire()
        completed = False
        try:
            yield
            completed = True
        finally:
            self.release(completed=completed)
