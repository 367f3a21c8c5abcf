"""Where the minutes go (GET /v1/ops/stages) and the server's clock (GET /v1/ops/clock): the
stage figures equal percentiles computed here from the orders' own timestamps."""

from __future__ import annotations

from datetime import datetime

import httpx
import numpy as np
import psycopg

from tests.helpers import login
from tests.server.ops.ops_script import MANAGER, STORE, scripted_day

# the stages as this test reads them, independently of the server's query
STAGE_COLUMNS = {
    "confirm": ("o.placed_at", "o.confirmed_at"),
    "queue": ("o.confirmed_at", "o.picking_at"),
    "pick": ("o.picking_at", "o.packed_at"),
    "handover": ("o.packed_at", "o.dispatched_at"),
    "ride": ("o.dispatched_at", "ts.arrived_at"),
    "door": ("ts.arrived_at", "o.delivered_at"),
    "total": ("o.placed_at", "o.delivered_at"),
}


def durations(url: str, stage: str) -> list[float]:
    start, end = STAGE_COLUMNS[stage]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT EXTRACT(EPOCH FROM {end} - {start}) FROM orders o "
            "LEFT JOIN trip_stops ts ON ts.order_id = o.order_id AND ts.status = 'DELIVERED' "
            f"WHERE o.store_id = %s AND {end} IS NOT NULL AND {start} IS NOT NULL",
            (STORE,),
        ).fetchall()
    return [float(r[0]) for r in rows]


async def test_stage_percentiles_equal_the_orders_timestamps(city, live_server, stack) -> None:
    async with live_server.client() as client:
        day = await scripted_day(client, stack, city.database_url)
        manager = await login(client, *MANAGER)
        r = await client.get("/v1/ops/stages", params={"city": "BLR"}, headers=manager)
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["window_s"] == 3600
    stores = {s["store_id"]: {f["stage"]: f for f in s["stages"]} for s in body["stores"]}
    kor = stores.pop(STORE)
    assert list(kor) == list(STAGE_COLUMNS)  # every stage, in the order of the way
    assert kor["total"]["count"] == len(day.delivered) == 2
    # the 2 delivered, the packed one: picked and packed; the waiting ones not yet
    assert kor["pick"]["count"] == 3
    assert kor["total"]["label"] == "placed→delivered"
    for stage, figures in kor.items():
        seen = durations(city.database_url, stage)
        assert figures["count"] == len(seen), stage
        if seen:
            assert figures["p50_s"] == round(float(np.percentile(seen, 50)), 1), stage
            assert figures["p90_s"] == round(float(np.percentile(seen, 90)), 1), stage
    # 4 and 12 simulated minutes to the door (see scripted_day): p90 near the slow one
    assert 600 < kor["total"]["p90_s"] < 13 * 60
    assert stores, "the city's other stores are listed too"
    for other in stores.values():  # nothing happened there: counts 0, no figures
        assert all(f["count"] == 0 and f["p50_s"] is None for f in other.values())


async def test_stages_are_the_managers_own_city_only(city, client) -> None:
    manager = await login(client, *MANAGER)
    r = await client.get("/v1/ops/stages", params={"city": "HYD"}, headers=manager)
    assert r.status_code in (403, 404), r.text
    r = await client.get("/v1/ops/stages", params={"city": "BLR"})
    assert r.status_code == 401
    r = await client.get("/v1/ops/stages", params={"city": "BLR", "window_min": 1}, headers=manager)
    assert r.status_code == 422


async def test_the_clock_states_the_servers_time_and_speed(clean, settings) -> None:
    from server.app import create_app
    from server.kit.clock import Clock

    clock = Clock(speed=20.0, anchor=datetime(2026, 3, 2, 3, 30).timestamp())
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://qc.test") as c:
            r = await c.get("/v1/ops/clock")  # no login
    assert r.status_code == 200, r.text
    stated = datetime.fromisoformat(r.json()["now"])
    assert r.json()["speed"] == 20.0
    # a clock anchored in the past at 20x is far ahead of the wall
    assert abs(stated.timestamp() - clock.timestamp()) < 5
    assert stated.timestamp() > datetime.now().timestamp() + 3600
