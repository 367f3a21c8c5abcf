"""The living city in-process: a small seeded Bengaluru, the API under uvicorn with its
background loops, the simulation against it on the same sped-up clock; the report's
figures checked against PostgreSQL."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from qc.sim import DemoSession, SimConfig, Simulation, run_simulation
from qc.sim.demo import run_with_foreground
from qc.sim.report import WARM_S
from qc.sim.start import anchor_for, choose_start
from server.kit.clock import Clock
from server.kit.config import Settings
from shared.enums import OrderStatus
from tests.conftest import LiveServer, Services, settings_for

SPEED = 30.0
HAPPY_PATH = [
    OrderStatus.PLACED,
    OrderStatus.CONFIRMED,
    OrderStatus.PICKING,
    OrderStatus.PACKED,
    OrderStatus.DISPATCHED,
    OrderStatus.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERED,
]


@pytest.fixture
def clock() -> Clock:
    # the evening peak, whatever the time of day the suite runs at (stores close 02-06)
    start = choose_start(start_at=(18, 30), timezone="Asia/Kolkata", latest=None)
    anchor, _ = anchor_for(start, speed=SPEED)
    return Clock(speed=SPEED, anchor=anchor)


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(
        services,
        clock_speed=SPEED,
        background_loops=True,  # the dispatcher, the sweeper and the outbox relay run
        dispatch_interval_s=0.3,
        sweep_interval_s=0.5,
        relay_interval_s=0.1,
        payment_failure_rate=0.1,
        payment_seed=2,  # the run's first charge is declined, however few the run places
    )


def _rows(database_url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.mark.alone
@pytest.mark.slow
async def test_the_city_delivers_and_the_report_agrees_with_the_database(
    city: Services, live_server: LiveServer, tmp_path: Path
) -> None:
    config = SimConfig(
        orders_per_minute=2.0,
        customers=5,
        pickers_per_store=2,
        riders_per_store=3,
        leave_for_humans=False,
        short_pick_rate=0.15,
        seed=3,
    )
    report = await run_simulation(
        live_server.url,
        clock=live_server.clock,
        database_url=city.database_url,
        config=config,
        duration_s=40,
    )
    report.write_json(tmp_path / "report.json")
    db = city.database_url
    start = report.started_at

    # orders went through every state of the happy path, in order
    paths: dict[str, list[str]] = {}
    for order_id, to_status in _rows(
        db,
        "SELECT e.order_id, e.to_status FROM order_events e JOIN orders o "
        "ON o.store_id = e.store_id AND o.order_id = e.order_id "
        "WHERE o.placed_at >= %s ORDER BY e.order_id, e.at, e.event_id",
        start,
    ):
        paths.setdefault(order_id, []).append(to_status)
    delivered = [p for p in paths.values() if p[-1] == OrderStatus.DELIVERED]
    assert delivered, paths
    for path in delivered:
        assert [s for s in path if s != OrderStatus.PARTIALLY_FULFILLED] == HAPPY_PATH
    # and, over the run, every state there is: short picks, declined payments included
    assert {s for p in paths.values() for s in p} == set(OrderStatus)

    # the report's figures agree with an independent look at the database
    orders = _rows(
        db,
        "SELECT status, cancel_reason, placed_at, delivered_at FROM orders WHERE placed_at >= %s",
        start,
    )
    assert report.orders_placed == len(orders) == len(paths)
    done = [(d - p).total_seconds() for s, _, p, d in orders if s == OrderStatus.DELIVERED]
    assert report.orders_delivered == len(done) == len(delivered)
    cancelled = [r for s, r, _, _ in orders if s == OrderStatus.CANCELLED]
    assert report.orders_cancelled == len(cancelled)
    assert sum(report.cancelled_by_reason.values()) == len(cancelled)
    declined = sum(1 for r in cancelled if r and r.startswith("payment_failed"))
    assert report.cancelled_by_reason.get("payment_failed", 0) == declined
    assert report.payments_failed == declined
    assert report.orders_in_flight == len(orders) - len(done) - len(cancelled)
    q = statistics.quantiles(done, n=10, method="inclusive") if len(done) > 1 else done * 9
    assert report.order_to_door_p50_s == pytest.approx(statistics.median(done))
    assert report.order_to_door_p90_s == pytest.approx(q[8])
    assert report.delivered_within_15_min == pytest.approx(
        sum(1 for x in done if x <= 900) / len(done)
    )
    warm_from = datetime.fromisoformat(start) + timedelta(seconds=WARM_S)
    warm = [
        (d - p).total_seconds()
        for s, _, p, d in orders
        if s == OrderStatus.DELIVERED and p >= warm_from
    ]
    assert report.delivered_warm == len(warm)
    if warm:
        assert report.delivered_within_10_min_warm == pytest.approx(
            sum(1 for x in warm if x <= 600) / len(warm)
        )
    (pick_avg,) = _rows(
        db,
        "SELECT avg(duration_s) FROM pick_tasks WHERE status = 'PACKED' AND order_id IN "
        "(SELECT order_id FROM orders WHERE placed_at >= %s)",
        start,
    )[0]
    assert report.mean_pick_time_s == pytest.approx(pick_avg)
    assert report.rider_utilisation is not None and 0 < report.rider_utilisation <= 1

    # no oversell: no negative bucket, the ledger explains every change
    assert report.oversells == 0
    assert report.ledger_mismatches == 0
    assert _rows(
        db,
        "SELECT count(*) FROM store_inventory WHERE least(available_qty, reserved_qty, "
        "damaged_qty, in_transit_qty) < 0",
    ) == [(0,)]


@pytest.mark.slow
async def test_a_foreground_ui_runs_while_the_city_lives_behind_it(
    city: Services, live_server: LiveServer
) -> None:
    simulation = Simulation(
        live_server.url,
        clock=live_server.clock,
        database_url=city.database_url,
        config=SimConfig(
            orders_per_minute=0.0, customers=2, pickers_per_store=1, riders_per_store=1
        ),
    )
    seen: dict[str, object] = {}

    def ui(session: DemoSession) -> None:
        """Stands in for the control tower: it watches the city, then the user quits."""
        deadline = time.monotonic() + 30
        while session.simulation.world.stats["fixes"] < 3:
            assert time.monotonic() < deadline, "no rider moved"
            time.sleep(0.05)
        seen["logins"] = session.logins
        seen["url"] = session.base_url

    # the day the demo announced opens the report's window: one start time
    since = live_server.clock.now() - timedelta(minutes=3)
    report = await asyncio.to_thread(
        run_with_foreground,
        simulation,
        ui,
        None,
        live_server.clock,
        since=since,
        notes={"demo day": "the day starts"},
    )
    assert report.started_at == since.isoformat()
    assert report.simulated_s == pytest.approx(report.wall_s * report.speed)
    assert seen["url"] == live_server.url
    assert "picker.kor.1" in str(seen["logins"])
    assert seen["logins"]["demo day"] == "the day starts"  # type: ignore[index]
    assert report.riders_on_duty == 3  # one per store, now off shift again
    assert report.oversells == 0
    with psycopg.connect(city.database_url) as conn:
        on_duty = conn.execute("SELECT count(*) FROM riders WHERE on_duty").fetchone()
    assert on_duty == (0,)
