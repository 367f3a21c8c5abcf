"""Store selection: zone, open hours, ranking by load, the 30 s cell cache."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg

from server.stores.selection import is_open
from tests.helpers import one_row

KORAMANGALA = {"lat": 12.9352, "lng": 77.6245}


async def test_nearest_store_serves_its_neighbourhood(city, client) -> None:
    r = await client.get("/v1/stores/serviceable", params=KORAMANGALA)
    assert r.status_code == 200, r.text
    stores = r.json()["stores"]
    assert stores[0]["store_id"] == "BLR-KOR" and stores[0]["distance_m"] < 1


async def test_far_away_location_is_not_serviceable(city, client) -> None:
    r = await client.get("/v1/stores/serviceable", params={"lat": 28.61, "lng": 77.21})
    assert r.status_code == 404 and r.json()["code"] == "not_serviceable"


async def test_a_busy_store_ranks_below_a_slightly_farther_idle_one(city, client) -> None:
    # between Koramangala and HSR Layout, a little closer to Koramangala
    point = {"lat": 12.9255, "lng": 77.6330}
    first = (await client.get("/v1/stores/serviceable", params=point)).json()["stores"]
    assert [s["store_id"] for s in first[:2]] == ["BLR-KOR", "BLR-HSR"]
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        user = one_row(conn.execute("SELECT id FROM users WHERE role = 'customer' LIMIT 1"))[0]
        for _ in range(12):  # a queue of confirmed orders at Koramangala's 2 pickers
            conn.execute(
                "INSERT INTO orders (store_id, order_id, user_id, city_id, status, "
                "currency, subtotal_paise, delivery_fee_paise, handling_fee_paise, "
                "discount_paise, total_amount_paise, delivery_lat, delivery_lng) "
                "VALUES ('BLR-KOR', gen_random_uuid(), %s, 'BLR', 'CONFIRMED', 'INR', "
                "0, 0, 0, 0, 0, 12.93, 77.63)",
                (user,),
            )
    point2 = {"lat": 12.92551, "lng": 77.63301}  # same cell: still cached for 30 s
    cached = (await client.get("/v1/stores/serviceable", params=point2)).json()["stores"]
    assert cached[0]["store_id"] == "BLR-KOR"
    far = {"lat": 12.9200, "lng": 77.6330}  # another cell: fresh ranking sees the queue
    fresh = (await client.get("/v1/stores/serviceable", params=far)).json()["stores"]
    assert fresh[0]["store_id"] == "BLR-HSR"
    # 12 orders queued for 2 pickers: Koramangala cannot reach this far in time any more
    assert "BLR-KOR" not in {s["store_id"] for s in fresh}
    near = (await client.get("/v1/stores/serviceable", params=KORAMANGALA)).json()["stores"]
    kor = next(s for s in near if s["store_id"] == "BLR-KOR")
    assert kor["orders_in_flight"] == 12 and kor["effective_radius_m"] == 500


async def test_a_paused_store_is_not_offered(city, client) -> None:
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        conn.execute("UPDATE dark_stores SET is_operational = false WHERE store_id = 'BLR-KOR'")
    between = {"lat": 12.9230, "lng": 77.6360}  # served by Koramangala and HSR Layout
    r = await client.get("/v1/stores/serviceable", params=between)
    assert [s["store_id"] for s in r.json()["stores"]] == ["BLR-HSR"]


async def test_a_service_zone_polygon_replaces_the_radius(city, client) -> None:
    tiny = {
        "type": "Polygon",
        "coordinates": [
            [
                [77.6240, 12.9347],
                [77.6250, 12.9347],
                [77.6250, 12.9357],
                [77.6240, 12.9357],
                [77.6240, 12.9347],
            ]
        ],
    }
    import json

    with psycopg.connect(city.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE dark_stores SET service_zone = %s WHERE store_id = 'BLR-KOR'",
            (json.dumps(tiny),),
        )
    inside = (await client.get("/v1/stores/serviceable", params=KORAMANGALA)).json()
    assert inside["stores"][0]["store_id"] == "BLR-KOR"
    # 530 m from the store, inside its old radius, outside its zone: nobody serves it
    outside = await client.get("/v1/stores/serviceable", params={"lat": 12.9400, "lng": 77.6245})
    assert outside.status_code == 404 and outside.json()["code"] == "not_serviceable"


def test_operating_hours_including_windows_past_midnight() -> None:
    ist = ZoneInfo("Asia/Kolkata")
    hours = {"mon": [["06:00", "02:00"]], "tue": [["09:00", "21:00"]]}
    assert is_open(hours, datetime(2026, 11, 23, 7, 0, tzinfo=ist))  # Monday 07:00
    assert is_open(hours, datetime(2026, 11, 24, 1, 30, tzinfo=ist))  # Tue 01:30, Mon's window
    assert not is_open(hours, datetime(2026, 11, 24, 3, 0, tzinfo=ist))  # Tue 03:00
    assert not is_open(hours, datetime(2026, 11, 23, 5, 59, tzinfo=ist))
    assert is_open(hours, datetime(2026, 11, 24, 20, 59, tzinfo=ist))
    assert not is_open(hours, datetime(2026, 11, 25, 1, 0, tzinfo=ist))  # Wed: Tue ended 21:00
