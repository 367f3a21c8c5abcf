"""``qc bench ops``: what the control-tower feed costs on a busy evening.

The full seeded city (12 stores, 5,000 SKUs, 120 riders all on duty) with ``active``
orders spread over the in-flight states and ``delivered`` orders earlier today. Measured:
building the city snapshot fresh (every query) and as the socket does it (stock counts and
forecast risk cached), the diff between two snapshots, evaluating the alerts, and, side by
side, one bare ``SELECT 1`` round trip on the same pool as the floor. Sizes of the snapshot
and of a typical change message are printed too.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import text

from qc.bench.harness import Result, conditions, measure, print_table
from qc.bench.stack import bench_stack, one_row
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from server.ops import alerts, feed
from shared.enums import OrderStatus

STATES = [
    OrderStatus.CONFIRMED,
    OrderStatus.PICKING,
    OrderStatus.PACKED,
    OrderStatus.DISPATCHED,
    OrderStatus.OUT_FOR_DELIVERY,
]


def _fill(url: str, *, active: int, delivered: int, now: datetime) -> None:
    rng = random.Random(5)
    with psycopg.connect(url) as conn:
        stores = conn.execute("SELECT store_id, lat, lng FROM dark_stores").fetchall()
        user = one_row(conn, "SELECT id FROM users WHERE role = 'customer' LIMIT 1")[0]
        conn.execute(
            "UPDATE riders SET on_duty = true, status = 'IDLE', "
            "lat = s.lat + (random() - 0.5) / 50, lng = s.lng + (random() - 0.5) / 50 "
            "FROM dark_stores s WHERE s.store_id = riders.home_store_id"
        )
        rows = []
        for i in range(active + delivered):
            store, lat, lng = rng.choice(stores)
            placed = now - timedelta(seconds=rng.uniform(0, 900 if i < active else 36_000))
            done = i >= active
            status = OrderStatus.DELIVERED if done else rng.choice(STATES)
            rows.append(
                (
                    store,
                    uuid.uuid4(),
                    user,
                    status.value,
                    lat + rng.uniform(-0.02, 0.02),
                    lng + rng.uniform(-0.02, 0.02),
                    placed,
                    placed + timedelta(minutes=15),
                    placed + timedelta(seconds=rng.uniform(360, 1100)) if done else None,
                )
            )
        with conn.cursor().copy(
            "COPY orders (store_id, order_id, user_id, status, delivery_lat, delivery_lng, "
            "placed_at, sla_deadline, delivered_at, city_id, currency, subtotal_paise, "
            "delivery_fee_paise, handling_fee_paise, discount_paise, total_amount_paise) "
            "FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row((*row, "BLR", "INR", 0, 0, 0, 0, 0))
        conn.execute("ANALYZE orders")


async def run(
    settings: Settings, *, active: int, delivered: int, repeats: int
) -> tuple[list[Result], dict[str, object]]:
    clock = Clock()
    async with bench_stack(settings, stores=12, skus=5000, riders=120, pool=4) as stack:
        _fill(stack.database_url, active=active, delivered=delivered, now=clock.now())
        cache = feed.FeedCache()

        async def fresh(_: int) -> None:
            async with transaction(stack.sessions) as session:
                await feed.build_snapshot(session, city_id="BLR", now=clock.now())

        async def cached(_: int) -> None:
            async with transaction(stack.sessions) as session:
                await feed.build_snapshot(session, city_id="BLR", now=clock.now(), cache=cache)

        async def evaluate(_: int) -> None:
            async with transaction(stack.sessions) as session:
                now = clock.now()
                snap = await feed.build_snapshot(session, city_id="BLR", now=now, cache=cache)
                await alerts.evaluate_city(session, snapshot=snap, now=now)

        async def floor(_: int) -> None:
            async with transaction(stack.sessions) as session:
                await session.connection()
                await session.execute(text("SELECT 1"))

        async with transaction(stack.sessions) as session:
            first = await feed.build_snapshot(session, city_id="BLR", now=clock.now())
        clock.advance(20)
        async with transaction(stack.sessions) as session:
            second = await feed.build_snapshot(session, city_id="BLR", now=clock.now())
        started = time.perf_counter()
        for _ in range(200):
            changes = feed.changes_between(first, second)
        diff_ms = (time.perf_counter() - started) / 200 * 1000

        results = [
            await measure("SELECT 1 round trip (floor)", floor, total=repeats * 10, concurrency=1),
            await measure("city snapshot, every query", fresh, total=repeats, concurrency=1),
            await measure(
                "city snapshot, as the socket builds it", cached, total=repeats, concurrency=1
            ),
            await measure("snapshot + alert evaluation", evaluate, total=repeats, concurrency=1),
        ]
        cond = conditions(
            stores=12,
            skus=5000,
            riders_on_duty=len(first.riders),
            active_orders=len(first.orders),
            delivered_today=first.city.delivered_today,
            snapshot_bytes=len(first.model_dump_json()),
            changes_after_20s_bytes=len(changes.model_dump_json()) if changes else 0,
            diff_ms=round(diff_ms, 3),
            embedded=stack.embedded,
        )
    return results, cond


async def run_and_report(
    settings: Settings, *, active: int, delivered: int, repeats: int
) -> dict[str, object]:
    results, cond = await run(settings, active=active, delivered=delivered, repeats=repeats)
    print_table(
        "control-tower feed (one city, one process)", results, "SELECT 1 round trip (floor)", cond
    )
    return {"conditions": cond, "results": [r.as_dict() for r in results]}
