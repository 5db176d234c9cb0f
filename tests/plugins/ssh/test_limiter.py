"""The fair session limiter: owners are served in turn, the capacity always holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from knm.plugins.ssh.limiter import FairLimiter, StartRamp


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_small_task_is_served_between_the_grants_of_a_big_one() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    await limiter.acquire("holder")

    async def one(owner: str) -> None:
        async with limiter.slot(owner):
            order.append(owner)
            await asyncio.sleep(0)

    big = [asyncio.create_task(one("big")) for _ in range(6)]
    await settle()
    small = [asyncio.create_task(one("small")) for _ in range(2)]
    await settle()
    limiter.release()
    await asyncio.gather(*big, *small)
    assert order == ["big", "small", "big", "small", "big", "big", "big", "big"]


async def test_the_capacity_is_never_exceeded_and_every_waiter_is_served() -> None:
    limiter = FairLimiter(3)
    inside = peak = 0

    async def one(owner: str) -> None:
        nonlocal inside, peak
        async with limiter.slot(owner):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(one(f"task{i % 4}") for i in range(40)))
    assert peak == 3
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_a_cancelled_waiter_gives_up_its_place_without_losing_a_slot() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire("holder")
    waiter = asyncio.create_task(limiter.acquire("quitter"))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.in_use == 0
    await asyncio.wait_for(limiter.acquire("next"), 5)
    assert limiter.in_use == 1


async def test_growing_the_capacity_admits_waiters_at_once() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire("holder")
    waiters = [asyncio.create_task(limiter.acquire("t")) for _ in range(2)]
    await settle()
    limiter.resize(3)
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert limiter.in_use == 3


async def test_one_owner_is_served_first_come_first_served() -> None:
    limiter = FairLimiter(1)
    order: list[int] = []
    await limiter.acquire("holder")

    async def one(i: int) -> None:
        async with limiter.slot("task"):
            order.append(i)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(one(i)))
        await settle()
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_the_start_ramp_lets_the_first_starts_through_and_widens_with_each_completion() -> (
    None
):
    ramp = StartRamp(start=2, step=60.0, stale=0)
    first = await ramp.acquire()
    await ramp.acquire()
    waiting = [asyncio.ensure_future(ramp.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    # One completion frees its place and opens one more: two of the three start.
    first.release(completed=True)
    await asyncio.sleep(0)
    assert [w.done() for w in waiting] == [True, True, False]
    assert ramp.window == 3
    for w in waiting:
        w.cancel()


async def test_hung_starts_hold_the_others_back_only_until_a_step_passes_without_a_completion() -> (
    None
):
    ramp = StartRamp(start=1, step=0.01, stale=0)
    await ramp.acquire()  # a handshake to a blackholed node: never completes
    late = asyncio.ensure_future(ramp.acquire())
    await asyncio.wait_for(late, timeout=30)
    assert ramp.window >= 2
    assert ramp.in_progress == 2


async def test_a_stalled_start_stops_holding_its_place_and_still_widens_the_window_when_it_ends() -> (
    None
):
    ramp = StartRamp(start=1, step=60.0, stale=0.01)
    stalled = await ramp.acquire()
    late = asyncio.ensure_future(ramp.acquire())
    await asyncio.wait_for(late, timeout=30)
    # The stalled start no longer counts: only the late one holds a place.
    assert ramp.in_progress == 1 and ramp.window == 1
    stalled.release(completed=True)
    assert ramp.in_progress == 1 and ramp.window == 2
    late.result().release(completed=True)
    assert ramp.in_progress == 0


async def test_a_failed_start_does_not_widen_the_window_and_an_idle_ramp_starts_small_again() -> (
    None
):
    ramp = StartRamp(start=2, step=60.0, stale=0)
    async with ramp.starting():
        pass
    assert ramp.window == 2  # back to the start: nothing was in progress any more
    failed = await ramp.acquire()
    done = await ramp.acquire()
    failed.release(completed=False)
    assert ramp.window == 2
    done.release(completed=True)
    assert ramp.window == 2 and ramp.in_progress == 0


async def test_a_place_released_twice_is_given_back_once() -> None:
    ramp = StartRamp(start=2, step=60.0, stale=0)
    first = await ramp.acquire()
    await ramp.acquire()
    first.release(completed=True)
    first.release(completed=False)
    assert ramp.in_progress == 1


async def test_a_block_that_raises_gives_its_place_back_without_widening_the_window() -> None:
    ramp = StartRamp(start=2, step=60.0, stale=0)
    await ramp.acquire()
    with pytest.raises(RuntimeError):
        async with ramp.starting():
            raise RuntimeError("handshake failed")
    assert ramp.in_progress == 1 and ramp.window == 2


async def test_a_cancelled_waiter_gives_up_its_place_in_the_ramp() -> None:
    ramp = StartRamp(start=1, step=60.0, stale=0)
    held = await ramp.acquire()
    first = asyncio.ensure_future(ramp.acquire())
    second = asyncio.ensure_future(ramp.acquire())
    await asyncio.sleep(0)
    first.cancel()
    held.release(completed=False)
    await asyncio.wait_for(second, timeout=30)
    assert ramp.in_progress == 1


def test_a_ramp_used_from_a_new_event_loop_drops_the_places_the_old_one_never_gave_back() -> None:
    ramp = StartRamp(start=1, step=3600, stale=3600)

    async def leave_a_start_and_a_waiter_behind() -> Any:
        held = await ramp.acquire()
        waiter = asyncio.ensure_future(ramp.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()  # left waiting when the loop ends
        return held

    held = asyncio.run(leave_a_start_and_a_waiter_behind())
    assert ramp.in_progress == 1

    async def start_again() -> None:
        slot = await asyncio.wait_for(ramp.acquire(), 30)
        held.release(completed=True)  # the old loop's place: not counted again
        assert ramp.in_progress == 1 and ramp.window == 1
        slot.release(completed=True)

    asyncio.run(start_again())
    assert ramp.in_progress == 0
