"""Orders and riders put straight into the seeded small city for dispatcher tests: packed
or half-picked orders at BLR-KOR, riders on duty at a chosen spot (PostgreSQL row and the
Redis GEO index, as a fix leaves them), a rider out on a trip."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import psycopg

from server.kit import keys
from shared.geo import LatLng

STORE = "BLR-KOR"
KOR = LatLng(12.9352, 77.6245)


def kor_riders(url: str, n: int) -> list[uuid.UUID]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT rider_id FROM riders WHERE home_store_id = %s ORDER BY rider_id LIMIT %s",
                (STORE, n),
            )
        ]


def add_order(
    url: str,
    *,
    drop: LatLng,
    placed: datetime,
    status: str = "PACKED",
    claimed: datetime | None = None,
    estimate_s: float = 120.0,
) -> uuid.UUID:
    """An order of BLR-KOR, paid and (by default) packed, with its pick task."""
    order_id = uuid.uuid4()
    with psycopg.connect(url) as conn:
        user = conn.execute("SELECT id FROM users WHERE role = 'customer' LIMIT 1").fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO orders (store_id, order_id, user_id, city_id, status, currency, "
            "subtotal_paise, delivery_fee_paise, handling_fee_paise, discount_paise, "
            "total_amount_paise, delivery_lat, delivery_lng, placed_at, sla_deadline) "
            "VALUES (%s, %s, %s, 'BLR', %s, 'INR', 0, 0, 0, 0, 0, %s, %s, %s, %s)",
            (
                STORE,
                order_id,
                user[0],
                status,
                drop.lat,
                drop.lng,
                placed,
                placed + timedelta(minutes=15),
            ),
        )
        conn.execute(
            "INSERT INTO order_directory (order_id, store_id) VALUES (%s, %s)", (order_id, STORE)
        )
        conn.execute(
            "INSERT INTO pick_tasks (store_id, order_id, status, sla_deadline, estimate_s, "
            "bin_steps, aisle_changes, units, created_at, claimed_at, bag_label) "
            "VALUES (%s, %s, %s, %s, %s, 0, 0, 1, %s, %s, %s)",
            (
                STORE,
                order_id,
                "PACKED" if status == "PACKED" else "PICKING",
                placed + timedelta(minutes=15),
                estimate_s,
                placed,
                claimed or placed,
                f"QC-KOR-{order_id.hex[:6].upper()}",
            ),
        )
    return order_id


async def put_on_duty(
    url: str, redis, rider_id: uuid.UUID, where: LatLng, now: datetime, *, status: str = "IDLE"
) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE riders SET on_duty = true, status = %s, lat = %s, lng = %s, "
            "last_fix_at = %s WHERE rider_id = %s",
            (status, where.lat, where.lng, now, rider_id),
        )
    await redis.geoadd(keys.rider_geo("BLR"), (where.lng, where.lat, str(rider_id)))


def send_out(url: str, rider_id: uuid.UUID, drop: LatLng, placed: datetime) -> uuid.UUID:
    """The rider is out delivering one order to ``drop``: a trip OUT, the rider DELIVERING."""
    order_id = add_order(url, drop=drop, placed=placed)
    trip_id = uuid.uuid4()
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE orders SET status = 'OUT_FOR_DELIVERY', rider_id = %s WHERE order_id = %s",
            (rider_id, order_id),
        )
        conn.execute(
            "INSERT INTO trips (trip_id, store_id, rider_id, status) VALUES (%s, %s, %s, 'OUT')",
            (trip_id, STORE, rider_id),
        )
        conn.execute(
            "INSERT INTO trip_stops (store_id, trip_id, order_id, seq, status, otp_attempts, "
            "otp_locked) VALUES (%s, %s, %s, 1, 'PENDING', 0, false)",
            (STORE, trip_id, order_id),
        )
        conn.execute("UPDATE riders SET status = 'DELIVERING' WHERE rider_id = %s", (rider_id,))
    return trip_id


def trips_of(url: str) -> list[tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]]:
    """Every open trip not yet picked up: (trip, rider, orders in route order)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT t.trip_id, t.rider_id, array_agg(s.order_id ORDER BY s.seq) FROM trips t "
            "JOIN trip_stops s ON s.trip_id = t.trip_id "
            "WHERE t.status IN ('OFFERED', 'ACCEPTED', 'AT_STORE') GROUP BY t.trip_id, t.rider_id"
        ).fetchall()
    return [(r[0], r[1], list(r[2])) for r in rows]
