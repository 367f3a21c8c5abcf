"""A closed store says so: the customer looking for a store, or checking out at one, reads
that it is closed and when it opens (409 ``store_closed`` with ``opens_at``), not that
nobody delivers to the address."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from server.seed.generate import DEMO_SECRETS
from server.stores.selection import next_opening
from shared.enums import Role
from tests.helpers import login
from tests.server.picking.test_picking_api import ADDRESS

IST = ZoneInfo("Asia/Kolkata")
KORAMANGALA = {"lat": 12.9352, "lng": 77.6245}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _close_every_store(url: str, now: datetime) -> datetime:
    """Every store keeps one daily window that starts two hours from now; its opening."""
    local = now.astimezone(IST)
    opens = (local + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    window = [[f"{opens:%H:%M}", f"{closes:%H:%M}"]]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE dark_stores SET operating_hours = %s",
            (json.dumps({day: window for day in DAYS}),),
        )
    return opens


def test_the_next_opening_is_the_next_window_start() -> None:
    hours = {"mon": [["06:00", "02:00"]], "tue": [["09:00", "21:00"]]}
    tue_3am = datetime(2026, 11, 24, 3, 0, tzinfo=IST)
    assert next_opening(hours, tue_3am) == datetime(2026, 11, 24, 9, 0, tzinfo=IST)
    wed_night = datetime(2026, 11, 25, 22, 0, tzinfo=IST)  # nothing until Monday 06:00
    assert next_opening(hours, wed_night) == datetime(2026, 11, 30, 6, 0, tzinfo=IST)
    assert next_opening(hours, datetime(2026, 11, 23, 7, 0, tzinfo=IST)) is None  # open
    assert next_opening({}, tue_3am) is None  # no hours kept: always open


async def test_looking_for_a_store_at_a_closed_hour_says_when_it_opens(city, client, clock) -> None:
    opens = _close_every_store(city.database_url, clock.now())
    r = await client.get("/v1/stores/serviceable", params=KORAMANGALA)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "store_closed" and problem["store_id"] == "BLR-KOR"
    assert datetime.fromisoformat(problem["opens_at"]) == opens
    assert f"closed now: it opens at {opens:%H:%M} (Asia/Kolkata)" in problem["detail"]
    # nowhere near a store stays what it was
    far = await client.get("/v1/stores/serviceable", params={"lat": 28.61, "lng": 77.21})
    assert far.status_code == 404 and far.json()["code"] == "not_serviceable"


async def test_checking_out_at_a_closed_store_says_it_is_closed(city, client, clock) -> None:
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    with psycopg.connect(city.database_url) as conn:
        row = conn.execute(
            "SELECT sku_id FROM store_inventory WHERE store_id = 'BLR-KOR' "
            "AND available_qty >= 5 ORDER BY sku_id LIMIT 1"
        ).fetchone()
    assert row is not None
    sku = row[0]
    cart = (await client.post("/v1/carts", json={"store_id": "BLR-KOR"}, headers=customer)).json()
    line = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=customer
    )
    assert line.status_code < 300, line.text
    opens = _close_every_store(city.database_url, clock.now())
    r = await client.post(
        f"/v1/carts/{cart['cart_id']}/checkout",
        json=ADDRESS,
        headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "store_closed"
    assert datetime.fromisoformat(problem["opens_at"]) == opens
    assert "qc Koramangala is closed now" in problem["detail"]


async def test_the_control_tower_feed_says_which_stores_are_closed_and_until_when(
    city, client, clock
) -> None:
    manager = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    before = (await client.get("/v1/ops/snapshot?city=BLR", headers=manager)).json()
    assert all(s["opens_at"] is None for s in before["stores"])  # open round the clock
    opens = _close_every_store(city.database_url, clock.now())
    after = (await client.get("/v1/ops/snapshot?city=BLR", headers=manager)).json()
    assert {datetime.fromisoformat(s["opens_at"]) for s in after["stores"]} == {opens}
