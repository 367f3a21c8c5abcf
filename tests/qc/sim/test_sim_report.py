"""The demo's report counts what the riders delivered: orders placed in the run and those an
earlier run left in flight that this one carried on (the simulation's own counter saw
both, the report used to see only the first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from qc.sim.report import build_report, take_snapshot
from tests.helpers import one_row

START = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)


def _order(conn: psycopg.Connection, user: object, status: str, placed: datetime, **at: datetime):
    columns = "".join(f", {k}" for k in at)
    values = "".join(", %s" for _ in at)
    conn.execute(
        "INSERT INTO orders (store_id, order_id, user_id, city_id, status, currency, "
        "subtotal_paise, delivery_fee_paise, handling_fee_paise, discount_paise, "
        f"total_amount_paise, delivery_lat, delivery_lng, placed_at{columns}) VALUES ('BLR-KOR', "
        f"gen_random_uuid(), %s, 'BLR', %s, 'INR', 0, 0, 0, 0, 0, 12.93, 77.63, %s{values})",
        (user, status, placed, *at.values()),
    )


def test_orders_carried_on_from_an_earlier_run_are_counted_apart_and_in_the_totals(city) -> None:
    before, minute = START - timedelta(minutes=20), timedelta(minutes=1)
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        user = one_row(conn.execute("SELECT id FROM users WHERE role = 'customer' LIMIT 1"))[0]
        # the earlier run's: done before the start (not this run's), carried on and
        # delivered, carried on and still on the road
        _order(conn, user, "DELIVERED", before, delivered_at=START - 5 * minute)
        _order(conn, user, "DELIVERED", before, delivered_at=START + 4 * minute)
        _order(conn, user, "OUT_FOR_DELIVERY", before)
        # this run's: delivered, cancelled
        _order(conn, user, "DELIVERED", START + minute, delivered_at=START + 9 * minute)
        _order(conn, user, "CANCELLED", START + minute, cancelled_at=START + 2 * minute)
    snapshot = take_snapshot(city.database_url, START)
    report = build_report(city.database_url, snapshot, end=START + 30 * minute, wall_s=90, speed=20)
    assert report.orders_placed == 2 and report.orders_carried_over == 2
    assert report.orders_delivered == 2  # what the riders delivered during the run
    assert report.orders_cancelled == 1 and report.orders_in_flight == 1
    assert (
        report.orders_delivered + report.orders_cancelled + report.orders_in_flight
        == report.orders_placed + report.orders_carried_over
    )
    assert report.order_to_door_p50_s is not None
    assert sum(report.cancelled_by_reason.values()) == report.orders_cancelled
