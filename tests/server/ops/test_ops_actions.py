"""Manager actions: pause/resume, radius, reassign, cancel; each audited, each refused
outside the manager's city or role."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import websockets

from server.delivery.worker import dispatch_all
from server.events.relay import relay_once
from server.seed.generate import DEMO_SECRETS
from shared.client import ManagerClient
from shared.enums import Role
from shared.geo import destination
from tests.helpers import login, one_row
from tests.server.ops.ops_script import KOR, MANAGER, STORE, pick_and_pack, rider_on_duty, riders_of
from tests.server.picking.test_picking_api import place_confirmed_order


def audit_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT action, target, reason, actor_id FROM ops_audit_log ORDER BY entry_id"
        ).fetchall()


def available(url: str, store: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "SELECT sku_id, available_qty FROM store_inventory WHERE store_id = %s", (store,)
            ).fetchall()
        )


async def serving(client: httpx.AsyncClient, lat: float, lng: float) -> list[str]:
    r = await client.get("/v1/stores/serviceable", params={"lat": lat, "lng": lng})
    return [s["store_id"] for s in r.json()["stores"]] if r.status_code == 200 else []


async def test_a_paused_store_receives_no_new_orders_until_resumed(city, client) -> None:
    manager = ManagerClient("http://qc.test", transport=client._transport)
    me = await manager.login(*MANAGER)
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    assert STORE in await serving(client, KOR.lat, KOR.lng)
    open_cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)).json()

    paused = await manager.pause_store(STORE, reason="cold room failure")
    assert not paused.is_operational and paused.paused_reason == "cold room failure"
    assert STORE not in await serving(client, KOR.lat, KOR.lng)
    r = await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)
    assert r.status_code == 409 and r.json()["code"] == "store_paused"
    # a cart opened before the pause cannot check out either
    with psycopg.connect(city.database_url) as conn:
        sku = one_row(
            conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty > 3 LIMIT 1",
                (STORE,),
            )
        )[0]
    await client.put(
        f"/v1/carts/{open_cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=customer
    )
    r = await client.post(
        f"/v1/carts/{open_cart['cart_id']}/checkout",
        json={"address": {"line1": "5th Block", "lat": KOR.lat, "lng": KOR.lng}},
        headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 409, r.text
    with psycopg.connect(city.database_url) as conn:
        assert one_row(conn.execute("SELECT count(*) FROM orders"))[0] == 0

    again = await client.post(
        f"/v1/ops/stores/{STORE}/pause", json={"reason": "twice"}, headers=manager._headers()
    )
    assert again.status_code == 409 and again.json()["code"] == "store_already_paused"
    resumed = await manager.resume_store(STORE)
    assert resumed.is_operational and resumed.paused_reason is None
    assert STORE in await serving(client, KOR.lat, KOR.lng)
    assert [(a, t, r) for a, t, r, _ in audit_rows(city.database_url)] == [
        ("store.pause", STORE, "cold room failure"),
        ("store.resume", STORE, None),
    ]
    assert {actor for *_, actor in audit_rows(city.database_url)} == {me.user.id}
    await manager.aclose()


async def test_a_smaller_radius_stops_serving_far_addresses(city, client) -> None:
    headers = await login(client, *MANAGER)
    far = destination(KOR, 0, 2000)
    assert STORE in await serving(client, far.lat, far.lng)
    r = await client.put(
        f"/v1/ops/stores/{STORE}/radius",
        json={"service_radius_m": 1500, "reason": "rain"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["service_radius_m"] == 1500
    assert STORE not in await serving(client, far.lat, far.lng)
    assert STORE in await serving(client, KOR.lat, KOR.lng)
    bad = await client.put(
        f"/v1/ops/stores/{STORE}/radius", json={"service_radius_m": 50}, headers=headers
    )
    assert bad.status_code == 422
    assert [a for a, *_ in audit_rows(city.database_url)] == ["store.radius"]


async def test_a_reassigned_order_reaches_the_new_riders_socket(city, live_server, stack) -> None:
    async with live_server.client() as client:
        first_login, second_login = riders_of(city.database_url, n=2)
        first = await rider_on_duty(client, first_login, stack.clock)
        order = await place_confirmed_order(client, city.database_url, lines=1)
        await pick_and_pack(client, order["order_id"])
        (trip,) = await dispatch_all(stack.sessions, stack.redis, stack.clock)
        assert (await client.get("/v1/riders/me/trip", headers=first)).json()["stops"][0][
            "order_id"
        ] == order["order_id"]
        second = await rider_on_duty(client, second_login, stack.clock)
        second_id = (await client.get("/v1/riders/me", headers=second)).json()["rider_id"]
        await relay_once(stack.engine, stack.redis)  # earlier events out of the way

        manager = await login(client, *MANAGER)
        socket = live_server.url.replace("http", "ws", 1) + "/ws/rider"
        async with websockets.connect(f"{socket}?token={second['Authorization'][7:]}") as ws:
            r = await client.post(
                f"/v1/ops/orders/{order['order_id']}/reassign",
                json={"rider_id": second_id, "reason": "first rider's scooter broke"},
                headers=manager,
            )
            assert r.status_code == 200, r.text
            assert r.json()["rider_id"] == second_id
            await relay_once(stack.engine, stack.redis)
            deadline = time.monotonic() + 30
            event: dict[str, Any] = {}
            while event.get("type") != "delivery.offered" and time.monotonic() < deadline:
                event = json.loads(await ws.recv())
            assert event.get("type") == "delivery.offered" and event["rider_id"] == second_id
        new_trip = (await client.get("/v1/riders/me/trip", headers=second)).json()
        assert new_trip["status"] == "OFFERED"
        assert [s["order_id"] for s in new_trip["stops"]] == [order["order_id"]]
        # the first rider's trip is gone and they are free again
        assert (await client.get("/v1/riders/me/trip", headers=first)).json() is None
        assert (await client.get("/v1/riders/me", headers=first)).json()["status"] == "IDLE"
        with psycopg.connect(city.database_url) as conn:
            assert conn.execute(
                "SELECT status FROM trips WHERE trip_id = %s", (trip.trip_id,)
            ).fetchone() == ("CANCELLED",)
        # a rider who is busy cannot be given another order by hand
        r = await client.post(
            f"/v1/ops/orders/{order['order_id']}/reassign",
            json={"rider_id": second_id, "reason": "again"},
            headers=manager,
        )
        assert r.status_code == 409 and r.json()["code"] == "same_rider"
    rows = audit_rows(city.database_url)
    assert [(a, t) for a, t, *_ in rows] == [("order.reassign", order["order_id"])]


async def test_cancelling_an_order_releases_its_stock_and_is_audited(city, client) -> None:
    before = available(city.database_url, STORE)
    order = await place_confirmed_order(client, city.database_url, lines=2)
    taken = {k: v for k, v in available(city.database_url, STORE).items() if v != before[k]}
    assert taken
    headers = await login(client, *MANAGER)
    r = await client.post(
        f"/v1/ops/orders/{order['order_id']}/cancel",
        json={"reason": "customer unreachable"},
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED", r.text
    assert available(city.database_url, STORE) == before
    r = await client.post(
        f"/v1/ops/orders/{order['order_id']}/cancel", json={"reason": "again"}, headers=headers
    )
    assert r.status_code == 409 and r.json()["code"] == "order_closed"
    with psycopg.connect(city.database_url) as conn:
        reason = one_row(
            conn.execute(
                "SELECT cancel_reason FROM orders WHERE order_id = %s", (order["order_id"],)
            )
        )[0]
        tasks = conn.execute(
            "SELECT status FROM pick_tasks WHERE order_id = %s", (order["order_id"],)
        ).fetchall()
    assert reason == "ops: customer unreachable" and tasks == [("CANCELLED",)]
    assert [(a, t, why) for a, t, why, _ in audit_rows(city.database_url)] == [
        ("order.cancel", order["order_id"], "customer unreachable")
    ]
    log = (await client.get("/v1/ops/audit", params={"city": "BLR"}, headers=headers)).json()
    assert [(e["action"], e["target"]) for e in log] == [("order.cancel", order["order_id"])]


async def test_actions_are_for_managers_of_the_city_only(city, client) -> None:
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    r = await client.post(f"/v1/ops/stores/{STORE}/pause", json={"reason": "x"}, headers=picker)
    assert r.status_code == 403
    r = await client.post(f"/v1/ops/stores/{STORE}/pause", json={"reason": "x"})
    assert r.status_code == 401
    manager = await login(client, *MANAGER)
    r = await client.post("/v1/ops/stores/NOPE-1/pause", json={"reason": "x"}, headers=manager)
    assert r.status_code == 404 and r.json()["code"] == "store_not_found"
    r = await client.post(f"/v1/ops/stores/{STORE}/pause", json={"reason": ""}, headers=manager)
    assert r.status_code == 422
    r = await client.post(
        f"/v1/ops/orders/{uuid.uuid4()}/cancel", json={"reason": "x"}, headers=manager
    )
    assert r.status_code == 404
    assert audit_rows(city.database_url) == []


async def test_a_manager_sets_how_short_lines_are_settled(city, client) -> None:
    api = ManagerClient("http://qc.test", transport=client._transport)
    await api.login(*MANAGER)
    headers = await login(client, *MANAGER)
    store = await api.set_store_substitution(
        STORE, policy="ask", fallback="refund", reason="customers complained"
    )
    assert (store.substitution_policy, store.substitution_fallback) == ("ask", "refund")
    with psycopg.connect(city.database_url) as conn:
        row = conn.execute(
            "SELECT substitution_policy, substitution_fallback FROM dark_stores "
            "WHERE store_id = %s",
            (STORE,),
        ).fetchone()
    assert row == ("ask", "refund")
    bad = await client.put(
        f"/v1/ops/stores/{STORE}/substitution", json={"policy": "sometimes"}, headers=headers
    )
    assert bad.status_code == 422 and "policy" in bad.text
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    r = await client.put(
        f"/v1/ops/stores/{STORE}/substitution", json={"policy": "never"}, headers=picker
    )
    assert r.status_code == 403
    assert [(a, why) for a, _, why, _ in audit_rows(city.database_url)] == [
        ("store.substitution", "customers complained")
    ]
