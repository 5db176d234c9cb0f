"""A fair semaphore: waiters queue per owner (a task), and owners are served round-robin.

A plain semaphore serves waiters first come, first served, so a task that queued 1,000 nodes
starves a 2-node task that arrived a moment later. Here each free slot goes to the next owner
in turn, so every waiting task gets slots at the same pace whatever its size.

``StartRamp`` paces how many sessions may be *starting* at once (handshake, channel open, the
command's start), so that the first nodes' results come at once instead of after everyone's.
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


class RampSlot:
    """One session start's place in a ``StartRamp``; ``release`` it once (more calls are no-ops)."""

    __slots__ = ("_ramp", "_stale", "counted", "generation", "released")

    def __init__(self, ramp: StartRamp) -> None:
        self._ramp = ramp
        self.generation = ramp.generation
        #: Still holds a place in the window (not yet released, not yet presumed stalled).
        self.counted = True
        self.released = False
        self._stale: asyncio.TimerHandle | None = None

    def release(self, *, completed: bool) -> None:
        if self.released:
            return
        self.released = True
        if self._stale is not None:
            self._stale.cancel()
            self._stale = None
        self._ramp._release(self, completed=completed)

    def _stalled(self) -> None:
        self._stale = None
        if self.counted and not self.released:
            self._ramp._uncount(self)


class StartRamp:
    """How many sessions may be starting at once (the SSH handshake for a new connection, then
    the channel open and the command's start): few at first, one more with every start that
    completes (slow start, as TCP's congestion window), without limit past ``ceiling``.

    Starting a session is mostly CPU on both ends. Started all at once on one event loop, 200
    starts interleave and the first command runs only when nearly all have; the first node's
    result came seconds after the POST. With a small window the first starts finish at once
    while the CPU stays just as busy (on a LAN a window of a few already fills it), and the
    window doubles per round of completions, so a link with real latency loses a few round
    trips only. A session holds one place from before its handshake until its command runs, so
    a node that has connected is never queued behind the handshakes of nodes still waiting.

    Starts that stall do not hold the rest back: a start in progress for longer than ``stale``
    seconds stops counting against the window (a blackholed node until its connect timeout, a
    very loaded peer), and a ``step`` in which nothing completed doubles the window (a front of
    blackholed nodes delays the others by a few steps). The step is long enough for a first
    handshake in a process under load: doubling every 0.1 s, as this ramp first did, opened
    the window to everyone before the first start completed on a busy machine. Once no start
    is in progress, the next burst starts small again.
    """

    def __init__(
        self, start: int = 4, step: float = 0.5, stale: float = 1.0, ceiling: int = 4096
    ) -> None:
        self.start = max(1, start)
        self.step = step
        self.stale = stale
        self.ceiling = ceiling
        self.window = self.start
        #: Starts holding a place in the window.
        self.in_progress = 0
        self._completed_in_step = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        #: The event loop the state belongs to, and a count of the resets it caused.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The running loop; the state of a loop that is gone is dropped (one process may run
        several loops in turn, as tests do): its starts will never release their places, nor
        its timers fire."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self.generation += 1
            self.window = self.start
            self.in_progress = 0
            self._completed_in_step = 0
            self._waiters = deque()
            self._timer = None
        return loop

    @property
    def waiting(self) -> int:
        """Starts queued for a place."""
        return sum(1 for future in self._waiters if not future.done())

    async def acquire(self) -> RampSlot:
        loop = self._bind()
        if not (self.in_progress < self.window and not self._waiters):
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append(future)
            if self._timer is None:
                self._completed_in_step = 0
                self._timer = loop.call_later(self.step, self._tick)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    # Granted in the same instant as cancelled: hand the place on.
                    self.in_progress -= 1
                    self._grant()
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(future)
                raise
        else:
            self.in_progress += 1
        slot = RampSlot(self)
        if self.stale > 0:
            slot._stale = loop.call_later(self.stale, slot._stalled)
        return slot

    def _uncount(self, slot: RampSlot) -> None:
        slot.counted = False
        if slot.generation != self.generation:
            return
        self.in_progress -= 1
        self._grant()

    def _release(self, slot: RampSlot, *, completed: bool) -> None:
        if slot.generation != self.generation:
            return  # a place of a loop that is gone: its state was dropped
        if slot.counted:
            slot.counted = False
            self.in_progress -= 1
        if completed:
            self._completed_in_step += 1
            self.window = min(self.ceiling, self.window + 1)
        if self.in_progress == 0 and not self._waiters:
            self.window = self.start
        self._grant()

    def _tick(self) -> None:
        self._timer = None
        if not self._completed_in_step:
            # Nothing finished starting in a whole step: whatever is in progress is stuck.
            self.window = min(self.ceiling, self.window * 2)
            self._grant()
        self._completed_in_step = 0
        if self._waiters:
            self._timer = asyncio.get_running_loop().call_later(self.step, self._tick)

    def _grant(self) -> None:
        while self._waiters and self.in_progress < self.window:
            future = self._waiters.popleft()
            if future.done():
                continue
            self.in_progress += 1
            future.set_result(None)

    @contextlib.asynccontextmanager
    async def starting(self) -> AsyncIterator[None]:
        """A place held for the block; a block that raises did not complete."""
        slot = await self.acquire()
        completed = False
        try:
            yield
            completed = True
        finally:
            slot.release(completed=completed)
