"""``shared.aio``: a wait that never loses a cancellation, a stop that never hangs."""

from __future__ import annotations

import asyncio

from shared.aio import cancel_and_wait, wait_event


async def test_wait_event_tells_set_from_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(event, 0) is True  # already set: no wait at all


async def test_a_cancellation_arriving_with_the_wake_up_is_not_lost() -> None:
    """The loop every app and actor runs ("wait for a wake-up or a timeout, again") must
    stop when cancelled in the very turn its event is set (asyncio.wait_for on 3.11 loses
    that cancellation and the loop runs on)."""
    event = asyncio.Event()
    waiting = asyncio.Event()
    rounds = 0

    async def loop_forever() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            event.clear()
            waiting.set()
            await wait_event(event, 60)

    for _ in range(20):
        rounds = 0
        waiting.clear()
        task = asyncio.create_task(loop_forever())
        await waiting.wait()
        event.set()
        task.cancel()  # same turn as the wake-up
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done and task.cancelled(), f"still looping after {rounds} rounds"


async def test_cancel_and_wait_cancels_again_a_task_that_swallowed_one() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 2:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], grace_s=10) == set()
    assert task.cancelled() and swallowed == 3


async def test_cancel_and_wait_gives_up_on_a_task_that_never_stops() -> None:
    release = asyncio.Event()

    async def immovable() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immovable())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0)
    assert await cancel_and_wait([task, finished], grace_s=0.3) == {task}
    release.set()
    task.cancel()
    await asyncio.wait({task})
