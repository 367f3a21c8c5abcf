"""``qc bench dispatch``: assignment latency and location-ingest throughput.

1. Matching 500 waiting orders of one store (as the dispatcher runs it) against 2,000
   riders (the seed's scoring, maximum-weight matching), against the same-run reference of
   one Hungarian solve over the full matrix; the same across 12 stores; batching 500 orders
   of one store. Pure computations (median of runs).
2. Location ingest: fixes/s through the rider socket's path (Redis GEO, last fix and
   sampled history stream in one script that also hands back the rider's tracking
   context, so no PostgreSQL statement once it is warm: each rider's first fix reads it;
   fan-out with live ETAs to the tracking channel of every order on the rider's trip)
   with every rider on a trip, so the fan-out is running; from one process, then from
   ``processes`` at once (as the API's workers take fixes: ``qc.bench.ingest``; each run
   also says how much Python CPU a fix cost). Same-run references: the
   Redis script alone (the ceiling of this design), and one PostgreSQL write per fix (the
   rider row updated in its own transaction: the floor the old path sat below). Then the
   history writer: the stream the run left, written to ``rider_locations`` in batches.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import psycopg
from scipy.optimize import linear_sum_assignment
from sqlalchemy import text

from qc.bench.harness import Result, conditions, measure, print_table
from qc.bench.ingest import DROP, KOR, ingest
from qc.bench.stack import bench_stack, one_row
from server.delivery import locations, planning
from server.kit import keys
from server.kit.clock import Clock
from server.kit.config import Settings
from shared.geo import destination
from shared.schemas.delivery import GpsFix

DENSE = "same, Hungarian on the full matrix (reference)"
SCRIPT_ALONE = "reference: the fix script alone (Redis only), 1 process"


def _timed(fn: Callable[[], object], repeats: int) -> Result:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return Result("", 1, 0, sum(samples), statistics.median(samples) * 1000, samples[-1] * 1000)


def matching_figures(orders: int, riders: int, repeats: int) -> list[Result]:
    rng = random.Random(11)
    now = time.time()
    waiting = [
        planning.WaitingOrder(
            f"o{i}",
            "BLR-KOR",
            KOR,
            destination(KOR, rng.uniform(0, 360), rng.uniform(200, 2500)),
            now - rng.uniform(0, 300),
            now + rng.uniform(0, 120),
        )
        for i in range(orders)
    ]
    fleet = [
        planning.RiderCandidate(
            f"r{i}",
            destination(KOR, rng.uniform(0, 360), rng.uniform(0, 2500)),
            "IDLE",
            0.0,
            rng.uniform(3.5, 5),
            rng.uniform(20, 100),
            rng.choice([None, rng.uniform(8, 16)]),
        )
        for i in range(riders)
    ]
    match = _timed(lambda: planning.assign(waiting, fleet), repeats)
    match.name, match.ops = f"match {orders} orders x {riders} riders (one store)", orders
    dense = _timed(lambda: _dense_hungarian(waiting, fleet), repeats)
    dense.name, dense.ops = DENSE, orders
    stores = [destination(KOR, rng.uniform(0, 360), rng.uniform(0, 6000)) for _ in range(12)]
    city_orders = [
        planning.WaitingOrder(
            f"c{i}", f"s{i % 12}", stores[i % 12], o.drop, o.placed_at_s, o.ready_at_s
        )
        for i, o in enumerate(waiting)
    ]
    city_fleet = [
        planning.RiderCandidate(
            r.rider_id,
            destination(stores[i % 12], rng.uniform(0, 360), rng.uniform(0, 2500)),
            "IDLE",
            0.0,
            r.rating,
            r.battery_pct,
            r.hist_avg_minutes,
        )
        for i, r in enumerate(fleet)
    ]
    city = _timed(lambda: planning.assign(city_orders, city_fleet), repeats)
    city.name, city.ops = f"match {orders} orders of 12 stores x {riders} riders", orders
    batch = _timed(lambda: planning.plan_batches(waiting, now), repeats)
    batch.name, batch.ops = f"batch {orders} orders of one store", orders
    return [match, dense, city, batch]


def _dense_hungarian(
    orders: list[planning.WaitingOrder], riders: list[planning.RiderCandidate]
) -> int:
    """The matching as it was solved before (one linear_sum_assignment over every order x
    every rider, same scores and eligibility): the same-run reference."""
    weights = planning.DEFAULT_WEIGHTS
    stores = [o.store for o in orders]
    eligible = planning._distance_matrix(stores, [r.position for r in riders]) <= weights.radius_m
    score = planning._distance_term(
        planning._approach_matrix(stores, riders) * planning.BASE_SPEED_MPS / planning.ROAD_FACTOR,
        weights,
    ) + planning._rider_terms(riders, weights, planning.neutral_history_minutes(riders, weights))
    bonus = weights.total * len(orders) + 1.0
    rows, cols = linear_sum_assignment(np.where(eligible, score + bonus, 0.0), maximize=True)
    return int(eligible[rows, cols].sum())


async def run(
    settings: Settings,
    *,
    orders: int = 500,
    riders: int = 2000,
    repeats: int = 5,
    fixes: int = 3000,
    concurrency: int = 16,
    tracked_riders: int = 50,
    processes: int = 2,
) -> dict:
    pure = matching_figures(orders, riders, repeats)
    async with bench_stack(
        settings, stores=1, skus=50, pool=concurrency, riders=tracked_riders
    ) as stack:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT rider_id FROM riders ORDER BY rider_id LIMIT %s", (tracked_riders,)
                )
            ]
            if len(ids) < tracked_riders:
                raise RuntimeError("the bench city has too few riders")
            conn.execute("UPDATE riders SET on_duty = true, status = 'DELIVERING'")
            user = one_row(conn, "SELECT id FROM users WHERE role = 'customer' LIMIT 1")[0]
            for rider_id in ids:  # every tracked rider carries a trip of two orders
                trip = uuid.uuid4()
                conn.execute(
                    "INSERT INTO trips (trip_id, store_id, rider_id, status) "
                    "VALUES (%s, 'BLR-KOR', %s, 'OUT')",
                    (trip, rider_id),
                )
                for seq in (1, 2):
                    order = uuid.uuid4()
                    conn.execute(
                        "INSERT INTO orders (store_id, order_id, user_id, city_id, status, "
                        "currency, subtotal_paise, delivery_fee_paise, handling_fee_paise, "
                        "discount_paise, total_amount_paise, delivery_lat, delivery_lng, "
                        "rider_id) VALUES ('BLR-KOR', %s, %s, 'BLR', 'OUT_FOR_DELIVERY', "
                        "'INR', 0, 0, 0, 0, 0, %s, %s, %s)",
                        (order, user, DROP.lat, DROP.lng, rider_id),
                    )
                    conn.execute(
                        "INSERT INTO trip_stops (store_id, trip_id, order_id, seq, "
                        "status, otp_attempts, otp_locked) VALUES ('BLR-KOR', %s, %s, %s, "
                        "'PENDING', 0, false)",
                        (trip, order, seq),
                    )
        start = Clock().now()
        rng = random.Random(5)
        runs = []
        for n, offset_h in ((1, 0), (processes, 1)):  # later fixes: none is a duplicate
            runs.append(
                await ingest(
                    f"location ingest, fan-out to 2 orders ({tracked_riders} riders), "
                    f"{n} process{'es' if n > 1 else ''}",
                    database_url=stack.database_url,
                    redis_url=stack.redis_url,
                    riders=ids,
                    fixes=fixes,
                    concurrency=concurrency,
                    processes=n,
                    start=start + timedelta(hours=offset_h),
                )
            )
        stream = keys.rider_locations("BLR")
        sampled = int(await stack.redis.xlen(stream))
        began = time.perf_counter()
        written = await locations.write_cities(stack.engine, stack.redis, ["BLR"])
        writer = Result(
            f"history writer, {sampled} sampled fixes in batches",
            written,
            0,
            time.perf_counter() - began,
            0.0,
            0.0,
        )
        later = start + timedelta(hours=2)  # past every fix above: none is a duplicate

        async def script_only(i: int) -> None:
            at = later + timedelta(seconds=5 * (i // len(ids) + 1))
            spot = destination(KOR, rng.uniform(0, 360), rng.uniform(100, 2000))
            fix = GpsFix(lat=spot.lat, lng=spot.lng, at=at, speed_mps=6.0)
            await locations.record(
                stack.redis, city_id="BLR", rider_id=ids[i % len(ids)], fixes=[fix]
            )

        async def row_write(i: int) -> None:
            spot = destination(KOR, rng.uniform(0, 360), rng.uniform(100, 2000))
            async with stack.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE riders SET lat = :lat, lng = :lng, last_fix_at = now() "
                         "WHERE rider_id = :r"),
                    {"lat": spot.lat, "lng": spot.lng, "r": ids[i % len(ids)]},
                )  # fmt: skip

        references = [
            await measure(
                SCRIPT_ALONE,
                script_only,
                total=fixes,
                concurrency=concurrency,
            ),
            await measure(
                "reference: one PostgreSQL row write per fix",
                row_write,
                total=fixes,
                concurrency=concurrency,
            ),
        ]
        await stack.redis.delete(stream)
        cond = conditions(
            orders=orders,
            riders=riders,
            repeats=repeats,
            fixes=fixes,
            concurrency=concurrency,
            processes=processes,
            services="embedded" if stack.embedded else "external",
        )
    print_table("qc bench dispatch: assignment (latency per run)", pure, DENSE, cond)
    results = [r for r, _ in runs]
    print_table(
        "qc bench dispatch: location ingest", [*results, *references, writer], SCRIPT_ALONE, cond
    )
    for result, cpu_us in runs:
        print(f"{result.name}: {cpu_us:,.0f} µs of Python CPU per fix (all its processes)")
    return {
        "conditions": cond,
        "assignment": [r.as_dict() for r in pure],
        "ingest": [r.as_dict() | {"cpu_us_per_fix": round(cpu, 1)} for r, cpu in runs],
        "ingest_references": [r.as_dict() for r in references],
        "history_writer": writer.as_dict(),
    }
