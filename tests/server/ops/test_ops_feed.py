"""The /ws/ops feed: its figures equal what PostgreSQL says, changes follow events, and
only the city's own managers may watch it."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import httpx
import numpy as np
import psycopg
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from server.forecast.history import ist_midnight
from server.identity.service import hash_secret
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.schemas.ops import OpsChanges, OpsSnapshot
from tests.helpers import login, one_row
from tests.server.ops.ops_script import MANAGER, STORE, scripted_day
from tests.server.picking.test_picking_api import place_confirmed_order


def ws_url(base: str, token: str, city: str = "BLR") -> str:
    return base.replace("http", "ws", 1) + f"/ws/ops?city={city}&token={token}"


async def manager_token(client: httpx.AsyncClient) -> str:
    return (await login(client, *MANAGER))["Authorization"][7:]


def database_view(url: str, at) -> dict:
    """The same figures, asked of PostgreSQL directly (written independently of the feed)."""
    midnight = ist_midnight(at)
    with psycopg.connect(url) as conn:
        q = conn.execute
        active = {
            (store, status): n
            for store, status, n in q(
                "SELECT store_id, status, count(*) FROM orders "
                "WHERE status NOT IN ('DELIVERED', 'CANCELLED') GROUP BY store_id, status"
            )
        }
        active_ids = {
            str(r[0])
            for r in q("SELECT order_id FROM orders WHERE status NOT IN ('DELIVERED', 'CANCELLED')")
        }
        door = [
            r[0]
            for r in q(
                "SELECT extract(epoch FROM delivered_at - placed_at)::float FROM orders "
                "WHERE status = 'DELIVERED' AND delivered_at >= %s AND delivered_at <= %s",
                (midnight, at),
            )
        ]
        cancelled = Counter(
            (r[0] or "unspecified").split(":")[0]
            for r in q(
                "SELECT cancel_reason FROM orders WHERE status = 'CANCELLED' "
                "AND cancelled_at >= %s AND cancelled_at <= %s",
                (midnight, at),
            )
        )
        stock = {
            store: (low, outs)
            for store, low, outs in q(
                "SELECT store_id, sum((available_qty BETWEEN 1 AND reorder_level)::int), "
                "sum((available_qty = 0)::int) FROM store_inventory GROUP BY store_id"
            )
        }
        pickers = Counter(
            r[0]
            for r in q(
                "SELECT DISTINCT store_id, picker_id FROM pick_tasks WHERE picker_id IS NOT NULL "
                "AND (status = 'PICKING' OR claimed_at > %s - interval '15 minutes')",
                (at,),
            )
        )
        riders = Counter(r[0] for r in q("SELECT status FROM riders WHERE on_duty"))
        placed_30 = one_row(
            q(
                "SELECT count(*) FROM orders WHERE placed_at > %s - interval '30 minutes' "
                "AND placed_at <= %s",
                (at, at),
            )
        )[0]
    return {
        "active": active,
        "active_ids": active_ids,
        "door": door,
        "cancelled": dict(cancelled),
        "stock": stock,
        "pickers": pickers,
        "riders": riders,
        "placed_30": placed_30,
    }


async def test_the_feed_equals_the_database_after_a_scripted_day(city, live_server, stack) -> None:
    async with live_server.client() as client:
        day = await scripted_day(client, stack, city.database_url)
        token = await manager_token(client)
    async with websockets.connect(ws_url(live_server.url, token)) as ws:
        snap = OpsSnapshot.model_validate_json(await ws.recv())
    db = database_view(city.database_url, snap.at)

    assert {str(o.order_id) for o in snap.orders} == db["active_ids"]
    assert set(day.waiting + day.packed) <= db["active_ids"]
    for store in snap.stores:
        expected = {s: n for (st, s), n in db["active"].items() if st == store.store_id}
        assert store.orders_by_state == expected, store.store_id
        assert (store.low_stock, store.stock_outs) == db["stock"][store.store_id]
        assert store.active_pickers == db["pickers"].get(store.store_id, 0)
    kor = next(s for s in snap.stores if s.store_id == STORE)
    assert kor.orders_by_state == {"CONFIRMED": 2, "PACKED": 1}
    assert kor.active_pickers == 1
    # the one rider on duty is idle near Koramangala
    assert (kor.idle_riders, kor.busy_riders) == (1, 0) and db["riders"] == {"IDLE": 1}

    c = snap.city
    door = np.array(db["door"])
    assert c.delivered_today == len(door) == 2
    assert c.within_10_share == pytest.approx(float(np.mean(door <= 600)), abs=1e-4)
    assert c.within_15_share == pytest.approx(float(np.mean(door <= 900)), abs=1e-4)
    assert (c.within_10_share, c.within_15_share) == (0.5, 1.0)
    assert c.p50_door_s == pytest.approx(float(np.percentile(door, 50)), abs=0.1)
    assert c.p90_door_s == pytest.approx(float(np.percentile(door, 90)), abs=0.1)
    assert c.cancellations_by_reason == db["cancelled"] == {"changed my mind": 1}
    assert sum(c.orders_per_minute) == db["placed_30"]
    assert len(c.orders_per_minute) == 30


async def test_changes_follow_events_without_resending_what_did_not_change(
    city, live_server, stack
) -> None:
    async with live_server.client() as client:
        token = await manager_token(client)
        async with websockets.connect(ws_url(live_server.url, token)) as ws:
            snap = OpsSnapshot.model_validate_json(await ws.recv())
            assert snap.orders == []
            order = await place_confirmed_order(client, city.database_url, lines=1)
            deadline = time.monotonic() + 15
            seen: OpsChanges | None = None
            while seen is None and time.monotonic() < deadline:
                message = json.loads(await ws.recv())
                if message["type"] == "changes":
                    changes = OpsChanges.model_validate(message)
                    # the feed may show the order PLACED first (a tick between placing
                    # and the payment's confirmation); wait for it confirmed
                    if any(
                        str(o.order_id) == order["order_id"] and o.status == "CONFIRMED"
                        for o in changes.orders
                    ):
                        seen = changes
            assert seen is not None, "the new order never reached the feed"
            # only what changed: the store that took the order, not the other two
            assert [s.store_id for s in seen.stores] == [STORE]
            assert seen.stores[0].orders_by_state == {"CONFIRMED": 1}
            assert seen.city is not None and seen.city.orders_last_minute >= 1


@pytest.fixture
def other_city_manager(city) -> tuple[str, str]:
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "INSERT INTO cities (city_id, name, timezone) VALUES ('MUM', 'Mumbai', 'Asia/Kolkata')"
        )
        conn.execute(
            "INSERT INTO users (id, login, name, role, city_id, secret_hash, is_active) "
            "VALUES (%s, 'manager.mum', 'Mumbai manager', 'manager', 'MUM', %s, true)",
            (uuid.uuid4(), hash_secret("mumbai-secret")),
        )
    return "manager.mum", "mumbai-secret"


async def test_a_manager_of_another_city_is_refused(city, live_server, other_city_manager) -> None:
    async with live_server.client() as client:
        headers = await login(client, *other_city_manager)
        r = await client.get("/v1/ops/snapshot", params={"city": "BLR"}, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "not_your_city"
        picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    for token, code in (
        (headers["Authorization"][7:], 4403),
        (picker["Authorization"][7:], 4403),
        ("junk", 4401),
    ):
        async with websockets.connect(ws_url(live_server.url, token)) as ws:
            error = json.loads(await ws.recv())
            assert error["type"] == "error"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_the_rest_snapshot_matches_the_socket_schema(city, client) -> None:
    headers = await login(client, *MANAGER)
    r = await client.get("/v1/ops/snapshot", params={"city": "BLR"}, headers=headers)
    assert r.status_code == 200, r.text
    snap = OpsSnapshot.model_validate(r.json())
    assert [s.store_id for s in snap.stores] == ["BLR-HSR", "BLR-IND", "BLR-KOR"]
    assert all(s.is_operational and s.risk == 0 for s in snap.stores)
    assert snap.city.timezone == "Asia/Kolkata"  # the tower shows the city's times in it
    r = await client.get("/v1/ops/snapshot", params={"city": "NOPE"}, headers=headers)
    assert r.status_code == 403
