"""Background loops shared by store under fenced leases (server/kit/background.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from server.kit import keys
from server.kit.background import LeasedLoop, ShardedLoop, _Lease, stop_all
from server.kit.db import transaction
from server.kit.redis import sync_client
from tests.conftest import Stack
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster  # the leases run on the cluster pass too

LEASE_MS = 300


async def _store_name(stack: Stack, store_id: str) -> str:
    async with transaction(stack.sessions) as session:
        row = await session.execute(
            text("SELECT store_name FROM dark_stores WHERE store_id = :s"), {"s": store_id}
        )
        return str(row.scalar_one())


async def _stores(stack: Stack) -> list[str]:
    async with transaction(stack.sessions) as session:
        rows = await session.execute(text("SELECT store_id FROM dark_stores ORDER BY store_id"))
        return [r[0] for r in rows]


async def test_a_holder_that_stalls_past_its_lease_has_its_writes_refused(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    store = (await _stores(stack))[0]
    stalled, wake = asyncio.Event(), asyncio.Event()

    def writer(label: str, *, stall: bool = False) -> Callable[[str], Awaitable[None]]:
        async def run(store_id: str) -> None:
            if stall:  # decided what to write, then paused (GC, frozen VM) before writing
                stalled.set()
                await wake.wait()
            async with transaction(stack.sessions) as session:
                await session.execute(
                    text("UPDATE dark_stores SET store_name = :n WHERE store_id = :s"),
                    {"n": label, "s": store_id},
                )

        return run

    async def shards() -> list[str]:
        return [store]

    old = ShardedLoop(
        stack.redis,
        "fence-test",
        1.0,
        shards,
        writer("written by the old holder", stall=True),
        lease_ms=LEASE_MS,
    )
    new = ShardedLoop(
        stack.redis,
        "fence-test",
        1.0,
        shards,
        writer("written by the new holder"),
        lease_ms=60_000,  # the new holder stays: the old one must not get the store back
    )
    old_run = asyncio.create_task(old.tick())
    await stalled.wait()
    old_token = old.held[store]
    # the old holder is paused past its lease: the lease runs out and the new one takes it
    probe = sync_client(stack.redis_url)
    try:
        await wait_until(
            lambda: not probe.exists(keys.lease(f"fence-test:{store}")),
            what="the stalled holder's lease to run out",
        )
    finally:
        probe.close()
    await new.tick()
    assert new.held[store] > old_token
    assert await _store_name(stack, store) == "written by the new holder"

    with caplog.at_level(logging.WARNING, logger="server.kit.background"):
        wake.set()
        await old_run  # the tick logs the refusal, as a warning (no failure); the loop lives on
    (refusal,) = caplog.records
    assert refusal.levelno == logging.WARNING and "superseded" in refusal.getMessage()
    assert await _store_name(stack, store) == "written by the new holder"  # refused, rolled back
    async with transaction(stack.sessions) as session:
        token = (
            await session.execute(
                text("SELECT token FROM loop_leases WHERE name = :n"), {"n": f"fence-test:{store}"}
            )
        ).scalar_one()
    assert token == new.held[store]
    # on its next tick the old holder finds the lease taken and stays off the store
    assert store not in await old.balance()


async def test_replicas_share_the_stores_and_take_over_those_of_one_that_leaves(
    stack: Stack,
) -> None:
    stores = await _stores(stack)
    assert len(stores) == 3
    ran: dict[str, list[str]] = {}

    def loop(name: str) -> ShardedLoop:
        async def run(store_id: str) -> None:
            ran.setdefault(store_id, []).append(name)

        async def shards() -> list[str]:
            return stores

        return ShardedLoop(stack.redis, "share-test", 1.0, shards, run, lease_ms=3000)

    replicas = {name: loop(name) for name in ("a", "b", "c")}
    for _ in range(2):  # the first to come takes all; the next round evens them out
        for replica in replicas.values():
            await replica.tick()
    held = {name: set(r.held) for name, r in replicas.items()}
    assert all(len(h) == 1 for h in held.values()), held
    assert set.union(*held.values()) == set(stores)
    ran.clear()
    for replica in replicas.values():
        await replica.tick()
    assert all(len(names) == 1 for names in ran.values()) and set(ran) == set(stores)

    await replicas.pop("c").stop()  # leaves: gives its store back
    for replica in replicas.values():
        await replica.tick()
    held = {name: set(r.held) for name, r in replicas.items()}
    assert held["a"].isdisjoint(held["b"])
    assert held["a"] | held["b"] == set(stores)
    for replica in replicas.values():
        await replica.stop()


async def test_a_redis_that_lost_its_fence_counter_costs_one_refused_run(stack: Stack) -> None:
    store = (await _stores(stack))[0]

    def loop(label: str) -> ShardedLoop:
        async def run(store_id: str) -> None:
            async with transaction(stack.sessions) as session:
                await session.execute(
                    text("UPDATE dark_stores SET store_name = :n WHERE store_id = :s"),
                    {"n": label, "s": store_id},
                )

        async def shards() -> list[str]:
            return [store]

        return ShardedLoop(stack.redis, "fence-lost", 1.0, shards, run, lease_ms=3000)

    first, second = loop("first"), loop("second")
    await first.tick()
    assert first.held[store] == 1 and await _store_name(stack, store) == "first"
    await stack.redis.flushdb()  # a fresh Redis: counters restart
    await second.tick()  # handed token 1 again: the books know it as first's, so refused
    assert second.held[store] == 1 and await _store_name(stack, store) == "first"
    await second.tick()  # taken again above the books' token, and written
    assert second.held[store] == 2 and await _store_name(stack, store) == "second"


async def test_a_shutdown_stops_every_loop_at_once(stack: Stack) -> None:
    """Every loop is cancelled before any stop ends: each run here, once cancelled, holds
    on until all of them have been, so a one-after-another stop would end the first loop's
    stop (its grace spent, its lease given back) before the next loop heard of it."""
    names = [f"stop-{i}" for i in range(5)]
    running: set[str] = set()
    events: list[str] = []
    all_cancelled = asyncio.Event()

    class Recorded(LeasedLoop):
        async def _give_back(self) -> None:  # the last step of a loop's stop
            await super()._give_back()
            events.append(f"stopped {self.name}")

    def loop(name: str) -> LeasedLoop:
        async def run() -> None:
            running.add(name)
            try:
                await asyncio.Event().wait()  # a run that ends only when cancelled
            except asyncio.CancelledError:
                events.append(f"cancelled {name}")
                if sum(e.startswith("cancelled") for e in events) == len(names):
                    all_cancelled.set()
                await all_cancelled.wait()
                events.append(f"ended {name}")
                raise

        return Recorded(stack.redis, name, 60.0, run, lease_ms=60_000)

    loops = [loop(name) for name in names]
    for each in loops:
        each.start()
    await wait_until(lambda: running == set(names), what="every loop running")
    await stop_all(loops, grace_s=1.0)
    cancelled = [i for i, e in enumerate(events) if e.startswith("cancelled")]
    stopped = [i for i, e in enumerate(events) if e.startswith("stopped")]
    assert len(cancelled) == len(stopped) == len(names), events
    assert max(cancelled) < min(stopped), events  # all cancelled before any stop ended
    # every run ended within its grace (none abandoned), and the leases were given back
    assert sorted(e for e in events if e.startswith("ended")) == [f"ended {n}" for n in names]
    assert all(each._task is not None and each._task.cancelled() for each in loops)
    assert not any([await stack.redis.exists(keys.lease(n)) for n in names])


async def test_a_run_that_swallows_its_cancellation_still_stops_the_loop(stack: Stack) -> None:
    """A library under a run may swallow the stop's cancellation (or turn it into an
    error): the loop must not then sleep out its interval past the stop."""
    swallowed = asyncio.Event()
    running = asyncio.Event()

    async def run() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # and returns as if the run had ended

    loop = LeasedLoop(stack.redis, "swallow", 3600.0, run, lease_ms=60_000)
    loop.start()
    await running.wait()
    await stop_all([loop], grace_s=30)
    assert swallowed.is_set()
    assert loop._task is not None and loop._task.cancelled()  # stopped, not asleep


def test_a_refusal_says_whether_a_newer_token_or_the_same_one_wrote() -> None:
    from server.kit.fencing import Fence, Fenced

    fence = Fence("dispatcher:BLR-KOR", 4, "replica-a", "BLR-KOR")
    assert "superseded by a newer holder's 5" in str(Fenced(fence, 5))
    # the same token from another holder: the lease's counter started again (Redis lost it)
    assert "already written by another holder" in str(Fenced(fence, 4))


async def test_a_run_longer_than_its_lease_renews_it_up_to_its_longest_run(
    stack: Stack,
) -> None:
    """A short lease (a dead replica's work is taken over within seconds) does not cost a
    long run its lease: the run renews it while it lasts, up to the loop's
    ``longest_run_s``; a run hung past that loses it as a dead replica's would."""
    running, release = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        running.set()
        await release.wait()  # a run still working (or hung on a dead connection)

    # beats a second apart: a loaded test machine's pauses do not let the lease lapse
    lease_ms, longest_run_s = 3000, 7.5
    long_run = LeasedLoop(
        stack.redis, "renewed", 1.0, run, lease_ms=lease_ms, longest_run_s=longest_run_s
    )
    other = LeasedLoop(stack.redis, "renewed", 1.0, run, lease_ms=lease_ms)
    ran = asyncio.create_task(long_run.tick())
    await running.wait()
    started = time.monotonic()
    try:
        # longer than the lease: the other replica never gets it
        while time.monotonic() - started < 1.5 * lease_ms / 1000:
            assert not await other.holds_lease()
            await asyncio.sleep(0.05)
        # hung past its longest run: the lease lapses and the other replica takes it
        deadline = started + longest_run_s + 10
        while not await other.holds_lease():
            assert time.monotonic() < deadline, "the hung run's lease never lapsed"
            await asyncio.sleep(0.05)
        # not before its last renewal (a beat before the longest run's end) ran out
        assert time.monotonic() - started >= longest_run_s - lease_ms / 3000
    finally:
        release.set()
        await ran


async def test_a_heartbeat_renews_a_held_lease_and_never_takes_a_lapsed_one(
    stack: Stack,
) -> None:
    """The renewal a running holder sends only extends a lease it holds: once the lease
    lapsed (the run outlived it), the heartbeat must not take it again under a new token
    that its own run never writes with and another replica then waits out."""
    lease = _Lease(stack.redis, "heartbeat", "replica-a", 60_000)
    token = await lease.take()
    assert token > 0 and await lease.take(renew_only=True) == token
    await lease.give_back()  # as if it lapsed
    assert await lease.take(renew_only=True) == 0
    assert not await stack.redis.exists(keys.lease("heartbeat"))
    other = _Lease(stack.redis, "heartbeat", "replica-b", 60_000)
    assert await other.take() > token  # a new holder, a larger token
    assert await lease.take(renew_only=True) == 0  # and never the old holder's again
