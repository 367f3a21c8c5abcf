"""Location ingest from several processes at once, as the API's workers take fixes.

One Python process spends most of a fix in the Redis client (two round trips: the fix
script, the pipelined publishes), so one process is the limit long before Valkey is; the
API runs a process per core. ``ingest`` starts ``processes`` spawned processes, each with
its own engine and Redis client and its own share of the riders (a rider's fixes stay in
one process, in time order; ``harness.Spawned``), lets them go together, and reports the fixes of
all of them over the wall time from the first start to the last finish, the merged
latencies, and the Python CPU each fix cost.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.synchronize import Barrier

from qc.bench.harness import Result, Spawned, percentile
from server.delivery import tracking
from server.delivery.riders import take_fixes
from server.kit import db
from server.kit import redis as qredis
from server.kit.config import get_settings
from server.kit.db import transaction
from shared.geo import LatLng, destination, haversine_m
from shared.schemas.delivery import GpsFix

KOR = LatLng(12.9352, 77.6245)
DROP = LatLng(12.95, 77.63)  # every benchmark order's door
FIX_EVERY_S = 5


@dataclass(frozen=True)
class Share:
    """One process's part of the run."""

    database_url: str
    redis_url: str
    riders: list[uuid.UUID]
    fixes: int
    concurrency: int
    start: datetime  # the server-clock time of the riders' first fix
    seed: int


@dataclass(frozen=True)
class Done:
    began: float  # wall clock (time.time) once past the barrier
    ended: float
    latencies: list[float]
    cpu_s: float  # the process's CPU over its run


async def play(share: Share, barrier: Barrier) -> Done:
    """One load process's riders (``harness.Spawned``), released at ``barrier``."""
    settings = get_settings().model_copy(
        update={"db_pool_size": share.concurrency, "db_max_overflow": 0}
    )
    engine = db.create_engine(share.database_url, settings)
    sessions = db.session_maker(engine)
    redis = qredis.create_redis(share.redis_url, max_connections=share.concurrency * 2)
    tracking.attach(engine.sync_engine, redis)  # as the app does: trip changes drop contexts
    rng = random.Random(share.seed)
    spots: list[LatLng] = []
    while len(spots) < 64:  # riding, not at a door: a geofence crossing is rare and not timed here
        spot = destination(KOR, rng.uniform(0, 360), rng.uniform(100, 2000))
        if haversine_m(spot, DROP) > 200:
            spots.append(spot)
    latencies: list[float] = []
    counter = iter(range(share.fixes))

    async def worker() -> None:
        for i in counter:
            rider_id = share.riders[i % len(share.riders)]
            at = share.start + timedelta(seconds=FIX_EVERY_S * (i // len(share.riders) + 1))
            spot = spots[i % len(spots)]
            began = time.perf_counter()
            async with transaction(sessions) as session:  # as the rider socket does
                await take_fixes(
                    session,
                    redis,
                    rider_id=rider_id,
                    city_id=await tracking.city_of(session, rider_id),
                    fixes=[GpsFix(lat=spot.lat, lng=spot.lng, at=at, speed_mps=6.0)],
                    now=at,
                )
            latencies.append(time.perf_counter() - began)

    try:
        await redis.ping()  # connected before the start, like a warm worker
        await asyncio.to_thread(barrier.wait)
        cpu = time.process_time()
        began = time.time()
        await asyncio.gather(*(worker() for _ in range(share.concurrency)))
        return Done(began, time.time(), latencies, time.process_time() - cpu)
    finally:
        await redis.aclose()
        await engine.dispose()


async def ingest(
    name: str,
    *,
    database_url: str,
    redis_url: str,
    riders: list[uuid.UUID],
    fixes: int,
    concurrency: int,
    processes: int,
    start: datetime,
) -> tuple[Result, float]:
    """``fixes`` through the rider socket's path from ``processes`` processes of
    ``concurrency`` concurrent fixes each; the result and the Python CPU per fix (µs)."""
    if len(riders) < processes:
        raise ValueError("every process needs riders of its own")
    players = Spawned(
        play,
        [
            Share(
                database_url,
                redis_url,
                riders[k::processes],
                fixes // processes + (1 if k < fixes % processes else 0),
                concurrency,
                start,
                seed=k,
            )
            for k in range(processes)
        ],
    )
    await players.start()
    done = await players.results()
    latencies = sorted(x for d in done for x in d.latencies)
    seconds = max(d.ended for d in done) - min(d.began for d in done)
    cpu_us = 1e6 * sum(d.cpu_s for d in done) / len(latencies)
    result = Result(
        name,
        len(latencies),
        0,
        seconds,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
    )
    return result, cpu_us
