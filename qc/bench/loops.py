"""Per-store background work on 1 and on 3 replicas: ``python -m qc.bench.loops``.

Runs the real per-store loops (``ShardedLoop``: the dispatcher and the hold-expiry
sweeper, each store under its own fenced lease) in R replica processes against one
seeded city on the embedded PostgreSQL and Valkey, for a while, and prints per store how
often its work came round (the gap between two runs of that store's work: an order that
becomes dispatchable, or a hold that falls due, waits at most that long) and how long one
run took, for R = 1 and R = 3 side by side, with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

LOOPS = ("dispatcher", "inventory-sweeper")
Record = tuple[str, str, str, float, float]  # loop, store, replica, started, took


async def _replica(
    database_url: str, redis_url: str, name: str, seconds: float, interval_s: float
) -> list[Record]:
    from server.delivery import planning
    from server.delivery.dispatcher import dispatch_store
    from server.inventory.reconcile import store_ids
    from server.inventory.sweeper import sweep_store
    from server.kit import db
    from server.kit import redis as qredis
    from server.kit.background import ShardedLoop
    from server.kit.clock import Clock
    from server.kit.config import Settings
    from server.stores.models import DarkStore

    settings = Settings(database_url=database_url, redis_url=redis_url, db_pool_size=4)
    engine = db.create_engine(database_url, settings)
    sessions = db.session_maker(engine)
    redis = qredis.create_redis(redis_url)
    clock = Clock()
    stores = await store_ids(engine)
    records: list[Record] = []

    async def shards() -> list[str]:
        return stores

    def timed(
        loop: str, work: Callable[[str], Awaitable[object]]
    ) -> Callable[[str], Awaitable[None]]:
        async def run(store_id: str) -> None:
            started, t0 = time.time(), time.perf_counter()
            await work(store_id)
            records.append((loop, store_id, name, started, time.perf_counter() - t0))

        return run

    async def dispatch(store_id: str) -> None:
        async with db.transaction(sessions) as session:
            store = await session.get(DarkStore, store_id)
            assert store is not None
            await dispatch_store(
                session, redis, store=store, now=clock.now(), weights=planning.DEFAULT_WEIGHTS
            )

    loops = [
        ShardedLoop(redis, "dispatcher", interval_s, shards, timed("dispatcher", dispatch)),
        ShardedLoop(
            redis,
            "inventory-sweeper",
            interval_s,
            shards,
            timed("inventory-sweeper", lambda s: sweep_store(sessions, redis, clock, s)),
        ),
    ]
    for loop in loops:
        loop.start()
    await asyncio.sleep(seconds)
    for loop in loops:
        await loop.stop()
    await redis.aclose()
    await engine.dispose()
    return records


def _replica_process(args: tuple[str, str, str, float, float]) -> list[Record]:
    return asyncio.run(_replica(*args))


def _run(
    database_url: str, redis_url: str, replicas: int, seconds: float, interval_s: float
) -> list[Record]:
    ctx = mp.get_context("spawn")
    jobs = [(database_url, redis_url, f"r{i}", seconds, interval_s) for i in range(replicas)]
    with ctx.Pool(replicas) as pool:
        return [r for part in pool.map(_replica_process, jobs) for r in part]


def _summary(records: list[Record], warmup_s: float) -> dict[str, dict[str, float]]:
    """Per loop: per-store gaps between runs and run times (ms), pooled over the stores,
    after the replicas settled their shares."""
    start = min(r[3] for r in records) + warmup_s
    out: dict[str, dict[str, float]] = {}
    for loop in LOOPS:
        starts: dict[str, list[float]] = defaultdict(list)
        took: list[float] = []
        per_replica: dict[str, set[str]] = defaultdict(set)
        for name, store, replica, at, dt in records:
            if name == loop and at >= start:
                starts[store].append(at)
                took.append(dt * 1000)
                per_replica[replica].add(store)
        gaps = [
            (b - a) * 1000
            for times in starts.values()
            for a, b in itertools.pairwise(sorted(times))
        ]
        q = statistics.quantiles(gaps, n=100) if len(gaps) > 1 else [0.0] * 99
        out[loop] = {
            "stores": len(starts),
            "runs": len(took),
            "gap_p50": statistics.median(gaps) if gaps else 0.0,
            "gap_p95": q[94],
            "gap_max": max(gaps, default=0.0),
            "run_p50": statistics.median(took) if took else 0.0,
            "run_p95": statistics.quantiles(took, n=100)[94] if len(took) > 1 else 0.0,
            "replicas_working": len(per_replica),
            "max_stores_per_replica": max((len(s) for s in per_replica.values()), default=0),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.2, help="loop interval (s)")
    parser.add_argument("--warmup", type=float, default=4.0, help="ignored first seconds")
    args = parser.parse_args()

    from server.kit import db
    from server.kit import redis as qredis
    from server.kit.config import Settings
    from server.kit.migrate import upgrade_to_head
    from server.seed.generate import reset_database, seed_city

    home = Path(tempfile.mkdtemp(prefix="qc-bench-loops-"))
    settings = Settings(home=home, database_name="qc_bench_loops")
    database_url = db.resolve_database_url(settings)
    redis_url = qredis.resolve_redis_url(settings)
    upgrade_to_head(database_url)
    reset_database(database_url)
    seed_city(
        database_url, seed=3, stores=args.stores, skus=100, riders=60, customers=5, hours=None
    )
    results = {}
    for replicas in (1, 3):
        client = qredis.sync_client(redis_url)
        client.flushdb()
        client.close()
        results[replicas] = _summary(
            _run(database_url, redis_url, replicas, args.seconds, args.interval), args.warmup
        )
    print(
        f"per-store loops: {args.stores} stores, interval {args.interval * 1000:.0f} ms, "
        f"{args.seconds:.0f} s per run (first {args.warmup:.0f} s ignored), embedded "
        f"PostgreSQL + Valkey on one machine ({mp.cpu_count()} cores), idle city (no orders "
        "waiting: the floor of each run's cost)"
    )
    header = f"{'loop':18} {'replicas':>8} {'working':>7} {'stores/rep':>10} {'runs':>6} "
    header += f"{'gap p50':>8} {'gap p95':>8} {'gap max':>8} {'run p50':>8} {'run p95':>8}"
    print(header)
    for loop in LOOPS:
        for replicas, summary in results.items():
            s = summary[loop]
            print(
                f"{loop:18} {replicas:>8} {s['replicas_working']:>7.0f} "
                f"{s['max_stores_per_replica']:>10.0f} {s['runs']:>6.0f} "
                f"{s['gap_p50']:>6.0f}ms {s['gap_p95']:>6.0f}ms {s['gap_max']:>6.0f}ms "
                f"{s['run_p50']:>6.1f}ms {s['run_p95']:>6.1f}ms"
            )
        one, three = results[1][loop], results[3][loop]
        if three["gap_p95"]:
            print(
                f"{'':18} ratio gap p95 1 replica / 3 replicas: {one['gap_p95'] / three['gap_p95']:.2f}"
            )


if __name__ == "__main__":
    main()
