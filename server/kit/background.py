"""Background loops shared by the replicas, under fenced Redis leases.

``LeasedLoop`` is work done once per cluster (one lease: a leader); ``ShardedLoop`` is work
split by shard, here by dark store: each store has a lease of its own, and the replicas
running the loop share the stores between them. Each replica keeps a heartbeat in the
loop's member set; with ``n`` replicas alive it holds at most ``ceil(stores / n)`` store
leases, gives back what is above that (so a replica that joins gets work within a lease
period) and takes free ones up to it (so the stores of a replica that died are taken over
within one lease period).

Each lease (``lua/lease.lua``) carries a fencing token, larger for every new holder. A run
happens with its lease's ``Fence`` current (``server.kit.fencing``), so every database
transaction it commits first checks, in that transaction, that no newer holder has written
under the lease; a holder that stalled past its lease and wakes after a takeover has its
writes refused and rolled back.

A lease is short (three ticks), so the work of a replica that died is taken over within
seconds; a run that may last longer (a full reconciliation pass, a forecast refit) renews
its lease while it runs, up to its loop's ``longest_run_s``: a run hung past that loses the
lease as a dead replica's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from server.kit import fencing, keys, scripts

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # how long a stopping loop's run may take to end
GIVE_BACK_S = 2.0  # then its leases are given back, or left to expire


class _Lease:
    def __init__(
        self,
        redis: aioredis.Redis,
        name: str,
        owner: str,
        lease_ms: int,
        longest_run_s: float | None = None,
    ) -> None:
        self.redis, self.name, self.owner, self.lease_ms = redis, name, owner, lease_ms
        # a run renews the lease this long at most (None: no renewal, the lease alone)
        self.longest_run_s = max(lease_ms / 1000, longest_run_s or 0.0)
        self.floor = 0  # the newest token PostgreSQL refused this replica for

    async def take(self, *, renew_only: bool = False) -> int:
        """Take or renew the lease: its fencing token while this replica holds it, else 0.
        ``renew_only``: a lapsed lease is not taken again (under a new token)."""
        args: list[str | int] = [self.owner, self.lease_ms, self.floor]
        args.append("renew" if renew_only else "")
        return int(
            await scripts.run(
                self.redis,
                "kit/lease",
                keys=[keys.lease(self.name), keys.lease_fence(self.name)],
                args=args,
            )
        )

    async def give_back(self) -> None:
        await scripts.run(
            self.redis, "kit/unlease", keys=[keys.lease(self.name)], args=[self.owner]
        )


async def _renew_while_running(lease: _Lease, token: int) -> None:
    """Renew the lease every third of it while a run lasts, up to ``longest_run_s``; stop
    at once if it was lost (taken over: the fence refuses the run's writes from then on)."""
    until = time.monotonic() + lease.longest_run_s - lease.lease_ms / 1000
    while True:
        await asyncio.sleep(lease.lease_ms / 3000)
        if time.monotonic() >= until:  # the last renewal ran out by the longest run's end
            return
        with contextlib.suppress(Exception):  # a Redis blip: the next beat tries again
            if await lease.take(renew_only=True) != token:  # lost: nothing to renew
                return


async def _run_fenced(
    lease: _Lease, token: int, run: Callable[[], Awaitable[object]], store_id: str = ""
) -> None:
    """``run()`` with the lease's fence current, the lease renewed while it lasts. Refused
    because PostgreSQL holds a newer token: the lease is given back, to be taken again above
    that token (a holder that lost it takes it no more; a Redis that lost its fence counter
    is set past the books')."""
    entered = fencing.enter(fencing.Fence(lease.name, token, lease.owner, store_id))
    heartbeat = None
    if lease.longest_run_s > lease.lease_ms / 1000:
        heartbeat = asyncio.create_task(
            _renew_while_running(lease, token), name=f"lease:{lease.name}"
        )
    try:
        await run()
    except fencing.Fenced as exc:
        if heartbeat is not None:  # it must not take the lease back once given back
            heartbeat.cancel()
        lease.floor = max(lease.floor, exc.newest)
        await lease.give_back()
        raise
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        fencing.leave(entered)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _stop_if_cancelled() -> None:
    """Raise the cancellation a run lost. A stop cancels a loop mid-run, and a library can
    swallow that cancellation (or turn it into an error): seen on ``qc serve``, where the
    journal writer and the reconciler then slept out a whole interval past the stop."""
    if _cancelling():
        raise asyncio.CancelledError


class _Loop:
    """Runs ``tick`` every ``interval_s`` (after each tick ends: a slow one never overlaps
    itself) until stopped."""

    name: str
    interval_s: float
    _task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        raise NotImplementedError

    async def _give_back(self) -> None:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except fencing.Fenced:  # the fence did its job: a newer holder runs it now
                log.warning(
                    "background run refused: a newer lease holder", extra={"loop": self.name}
                )
            except Exception:
                if not _cancelling():
                    log.exception("background loop failed", extra={"loop": self.name})
            _stop_if_cancelled()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"loop:{self.name}")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Cancel the run, wait at most ``grace_s`` for it to end, give the leases back.

        ``asyncio.wait``, not ``wait_for``: a run stuck on a dead connection (or one that
        swallows its cancellation) must not hold up the shutdown past its grace."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=grace_s)
            if not self._task.done():
                log.warning(
                    "background loop still running after its grace",
                    extra={"loop": self.name, "grace_s": grace_s},
                )
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GIVE_BACK_S):
                await self._give_back()


async def stop_all(loops: Sequence[_Loop], *, grace_s: float = STOP_GRACE_S) -> None:
    """Stop every loop at once: each is cancelled before any is waited on, so a shutdown
    lasts as long as the slowest loop (bounded by ``grace_s`` and the give-back), not the
    sum of them all."""
    await asyncio.gather(*(loop.stop(grace_s) for loop in loops))


def _lease_ms(interval_s: float, lease_ms: int | None) -> int:
    """A loop's lease unless given: three of its intervals (at least 3 s)."""
    return lease_ms or max(3000, int(interval_s * 3000))


class LeasedLoop(_Loop):
    """Work done by one replica at a time: the holder of the loop's lease."""

    def __init__(
        self,
        redis: aioredis.Redis,
        name: str,
        interval_s: float,
        run: Callable[[], Awaitable[object]],
        lease_ms: int | None = None,
        longest_run_s: float | None = None,
    ) -> None:
        self.redis, self.name, self.interval_s, self.run = redis, name, interval_s, run
        self.lease_ms = _lease_ms(interval_s, lease_ms)
        self.owner = uuid.uuid4().hex
        self._lease = _Lease(redis, name, self.owner, self.lease_ms, longest_run_s)
        self.longest_run_s = self._lease.longest_run_s

    async def holds_lease(self) -> bool:
        return await self._lease.take() > 0

    async def tick(self) -> None:
        token = await self._lease.take()
        if token:
            await _run_fenced(self._lease, token, self.run)

    async def _give_back(self) -> None:
        await self._lease.give_back()


class ShardedLoop(_Loop):
    """Work split by shard (a store): ``run(shard)`` for every shard whose lease this
    replica holds, each under its own fence; the replicas share the shards evenly."""

    def __init__(
        self,
        redis: aioredis.Redis,
        name: str,
        interval_s: float,
        shards: Callable[[], Awaitable[Sequence[str]]],
        run: Callable[[str], Awaitable[object]],
        lease_ms: int | None = None,
    ) -> None:
        self.redis, self.name, self.interval_s = redis, name, interval_s
        self.shards, self.run = shards, run
        self.lease_ms = _lease_ms(interval_s, lease_ms)
        self.owner = uuid.uuid4().hex
        self.held: dict[str, int] = {}  # shard -> fencing token
        self._leases: dict[str, _Lease] = {}
        self.last_run: dict[str, float] = {}  # shard -> monotonic time its last run ended

    def _lease(self, shard: str) -> _Lease:
        if shard not in self._leases:
            self._leases[shard] = _Lease(
                self.redis, f"{self.name}:{shard}", self.owner, self.lease_ms
            )
        return self._leases[shard]

    async def replicas(self) -> int:
        return int(
            await scripts.run(
                self.redis,
                "kit/members",
                keys=[keys.loop_replicas(self.name)],
                args=[self.owner, int(time.time() * 1000), self.lease_ms],
            )
        )

    async def balance(self) -> dict[str, int]:
        """Renew the leases held, give back those above this replica's share, take free
        ones up to it. Answers the shards held now, with their tokens."""
        shards = list(await self.shards())
        share = math.ceil(len(shards) / max(1, await self.replicas()))
        for shard in list(self.held):
            token = await self._lease(shard).take() if shard in shards else 0
            if token:
                self.held[shard] = token
            else:
                del self.held[shard]  # taken over while this replica stalled, or gone
        for shard in sorted(self.held)[share:]:
            await self._lease(shard).give_back()
            del self.held[shard]
        # each replica tries the free shards in its own order: fewer collisions
        start = zlib.crc32(self.owner.encode()) % max(1, len(shards))
        for shard in shards[start:] + shards[:start]:
            if len(self.held) >= share:
                break
            if shard not in self.held and (token := await self._lease(shard).take()):
                self.held[shard] = token
        return dict(self.held)

    async def tick(self) -> None:
        for shard, token in (await self.balance()).items():
            try:
                await _run_fenced(
                    self._lease(shard), token, functools.partial(self.run, shard), shard
                )
            except asyncio.CancelledError:
                raise
            except fencing.Fenced as exc:  # the fence did its job: a newer holder runs it now
                log.warning(
                    "background run refused: %s", exc, extra={"loop": self.name, "shard": shard}
                )
            except Exception:
                if not _cancelling():
                    log.exception(
                        "background loop failed", extra={"loop": self.name, "shard": shard}
                    )
            _stop_if_cancelled()
            self.last_run[shard] = time.monotonic()

    async def _give_back(self) -> None:
        for shard in list(self.held):
            await self._lease(shard).give_back()
        self.held.clear()
        await self.redis.zrem(keys.loop_replicas(self.name), self.owner)
