"""What the rider's handheld gets with a trip (the server's clock, the offer's deadline, an
ETA per drop) and giving a trip back before pickup."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx
import psycopg
import pytest
import websockets

from server.delivery.worker import dispatch_all
from server.kit.clock import Clock
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import LatLng, destination
from tests.helpers import login, one_row, pick_and_pack
from tests.server.delivery.test_delivery_api import (
    KOR,
    STORE,
    _fix,
    _packed_order,
    out_for_delivery,
)
from tests.server.picking.test_picking_api import place_confirmed_order


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """The server clock; ``@pytest.mark.parametrize("clock", [speed], indirect=True)``
    runs a test on a sped-up one."""
    return Clock(speed=getattr(request, "param", 1.0))


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _kor_riders(url: str, n: int) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                "WHERE r.home_store_id = %s ORDER BY u.login LIMIT %s",
                (STORE, n),
            )
        ]


async def _on_duty(
    client: httpx.AsyncClient, login_name: str, where: LatLng, clock: Clock
) -> dict[str, str]:
    rider = await login(client, login_name, DEMO_SECRETS[Role.RIDER])
    r = await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=rider)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/riders/me/locations", headers=rider, json={"fixes": [_fix(where, clock.now())]}
    )
    assert r.status_code == 200, r.text
    return rider


async def _my_trip(client: httpx.AsyncClient, rider: dict[str, str]) -> dict:
    r = await client.get("/v1/riders/me/trip", headers=rider)
    assert r.status_code == 200, r.text
    return r.json()


# --- the payload ------------------------------------------------------------------------


async def test_the_offer_expires_when_the_dispatcher_replaces_it(city, live_server, stack) -> None:
    clock = live_server.clock
    async with live_server.client() as client:
        await _packed_order(client, city.database_url)
        (name,) = _kor_riders(city.database_url, 1)
        rider = await _on_duty(client, name, destination(KOR, 90, 300), clock)
        (trip,) = await dispatch_all(stack.sessions, stack.redis, clock)
        offer = await _my_trip(client, rider)
        assert offer["status"] == "OFFERED" and offer["clock_speed"] == 1.0
        left = (_at(offer["offer_expires_at"]) - _at(offer["server_now"])).total_seconds()
        assert 55 < left <= 60  # the dispatcher's 60 s, counted from the offer

        # just before the deadline the dispatcher keeps the offer; just after, it is gone
        clock.advance(max(0.0, (_at(offer["offer_expires_at"]) - clock.now()).total_seconds() - 2))
        await dispatch_all(stack.sessions, stack.redis, clock)
        assert (await _my_trip(client, rider))["trip_id"] == str(trip.trip_id)
        clock.advance(3)
        await dispatch_all(stack.sessions, stack.redis, clock)
        assert await _my_trip(client, rider) is None
        with psycopg.connect(city.database_url) as conn:
            topics = [
                r[0]
                for r in conn.execute(
                    "SELECT topic FROM outbox WHERE aggregate_id = %s", (str(trip.trip_id),)
                )
            ]
        assert "delivery.handed_back:offer_timeout" in topics

        # offered to another rider; once accepted there is no offer deadline any more
        rider2 = await _on_duty(
            client, _kor_riders(city.database_url, 2)[1], destination(KOR, 0, 200), clock
        )
        (again,) = await dispatch_all(stack.sessions, stack.redis, clock)
        assert again.rider_id != trip.rider_id
        r = await client.post(f"/v1/trips/{again.trip_id}/accept", headers=rider2)
        assert r.status_code == 200 and r.json()["offer_expires_at"] is None


async def test_each_drop_carries_the_customers_eta_in_route_order(city, live_server, stack) -> None:
    clock = live_server.clock
    async with live_server.client() as client:
        orders = [await place_confirmed_order(client, city.database_url, lines=1) for _ in range(2)]
        with psycopg.connect(city.database_url) as conn:  # two doors, one behind the other
            for order, metres in zip(orders, (800, 1600), strict=True):
                door = destination(KOR, 45, metres)
                conn.execute(
                    "UPDATE orders SET delivery_lat = %s, delivery_lng = %s WHERE order_id = %s",
                    (door.lat, door.lng, order["order_id"]),
                )
        for order in orders:
            await pick_and_pack(client, order["order_id"])
        (name,) = _kor_riders(city.database_url, 1)
        rider = await _on_duty(client, name, destination(KOR, 270, 600), clock)
        (trip,) = await dispatch_all(stack.sessions, stack.redis, clock)
        view = await _my_trip(client, rider)
        stops = sorted(view["stops"], key=lambda s: s["seq"])
        assert [s["order_id"] for s in stops] == [o["order_id"] for o in orders]
        etas = [_at(s["eta_at"]) for s in stops]
        assert _at(view["server_now"]) < etas[0] < etas[1]  # store first, then door by door

        # the same model as the customer's live view: a fix gives both the same seconds
        customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        base = live_server.url.replace("http", "ws")
        token = customer["Authorization"][7:]
        async with websockets.connect(
            f"{base}/ws/orders/{orders[1]['order_id']}?token={token}"
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            rws = f"{base}/ws/rider?token={rider['Authorization'][7:]}"
            async with websockets.connect(rws) as rsock:
                await rsock.send(json.dumps(_fix(destination(KOR, 270, 400), clock.now())))
                while json.loads(await rsock.recv())["type"] != "ack":
                    pass
            moved = json.loads(await ws.recv())
            while moved.get("type") != "rider.location":
                moved = json.loads(await ws.recv())
        view = await _my_trip(client, rider)
        last = max(view["stops"], key=lambda s: s["seq"])
        left = (_at(last["eta_at"]) - _at(view["server_now"])).total_seconds()
        assert left == moved["eta_s"]
        assert str(trip.trip_id) == view["trip_id"]


@pytest.mark.parametrize("clock", [30.0], indirect=True)
async def test_server_now_follows_a_sped_up_and_stepped_clock(city, live_server, stack) -> None:
    clock = live_server.clock
    async with live_server.client() as client:
        await _packed_order(client, city.database_url)
        (name,) = _kor_riders(city.database_url, 1)
        rider = await _on_duty(client, name, destination(KOR, 90, 300), clock)
        await dispatch_all(stack.sessions, stack.redis, clock)
        before = clock.now()
        view = await _my_trip(client, rider)
        after = clock.now()
        assert view["clock_speed"] == 30.0
        assert before <= _at(view["server_now"]) <= after  # the server's time, not the wall's

        clock.advance(600)
        stepped = await _my_trip(client, rider)
        assert _at(stepped["server_now"]) >= after + timedelta(seconds=600)


# --- giving a trip back before pickup --------------------------------------------------


@pytest.mark.slow
async def test_a_trip_released_at_the_store_is_offered_to_another_rider(
    city, live_server, stack
) -> None:
    clock = live_server.clock
    async with live_server.client() as client:
        order, _ = await _packed_order(client, city.database_url)
        names = _kor_riders(city.database_url, 2)
        riders = [
            await _on_duty(client, n, destination(KOR, 0, 100 + 300 * i), clock)
            for i, n in enumerate(names)
        ]
        (first,) = await dispatch_all(stack.sessions, stack.redis, clock)
        offered = [(await client.get("/v1/riders/me", headers=h)).json()["trip_id"] for h in riders]
        holder = riders[offered.index(str(first.trip_id))]
        tid = first.trip_id
        for step in ("accept", "arrived"):
            assert (await client.post(f"/v1/trips/{tid}/{step}", headers=holder)).status_code == 200

        r = await client.post(
            f"/v1/trips/{tid}/release", headers=holder, json={"reason": "bags not ready"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "CANCELLED"
        me = (await client.get("/v1/riders/me", headers=holder)).json()
        assert me["status"] == "IDLE" and me["trip_id"] is None
        with psycopg.connect(city.database_url) as conn:
            rider_id, status = one_row(
                conn.execute(
                    "SELECT rider_id, status FROM orders WHERE order_id = %s", (order["order_id"],)
                )
            )
            (payload,) = one_row(
                conn.execute(
                    "SELECT payload FROM outbox WHERE topic = 'delivery.released' "
                    "AND aggregate_id = %s",
                    (str(tid),),
                )
            )
        assert rider_id is None and status == "PACKED"  # back with the dispatcher
        assert payload["reason"] == "bags not ready" and payload["rider_id"] == str(first.rider_id)

        (second,) = await dispatch_all(stack.sessions, stack.redis, clock)
        assert second.rider_id != first.rider_id


async def test_release_is_refused_after_pickup_and_for_an_offer(city, live_server, stack) -> None:
    clock = live_server.clock
    async with live_server.client() as client:
        _, bag = await _packed_order(client, city.database_url)
        (name,) = _kor_riders(city.database_url, 1)
        rider = await _on_duty(client, name, KOR, clock)
        (trip,) = await dispatch_all(stack.sessions, stack.redis, clock)
        tid = trip.trip_id
        why = {"reason": "vehicle problem"}

        r = await client.post(f"/v1/trips/{tid}/release", headers=rider, json=why)
        assert r.status_code == 409 and r.json()["trip_status"] == "OFFERED"  # rejected instead
        empty = await client.post(f"/v1/trips/{tid}/release", headers=rider, json={"reason": ""})
        assert empty.status_code == 422

        await client.post(f"/v1/trips/{tid}/accept", headers=rider)
        r = await client.post(f"/v1/trips/{tid}/pickup", headers=rider, json={"bag_labels": [bag]})
        assert r.status_code == 200, r.text
        for state, then in (("PICKED_UP", "depart"), ("OUT", None)):
            r = await client.post(f"/v1/trips/{tid}/release", headers=rider, json=why)
            problem = r.json()
            assert r.status_code == 409 and problem["code"] == "invalid_trip_state"
            assert problem["trip_status"] == state and state in problem["detail"]
            if then:
                assert (await client.post(f"/v1/trips/{tid}/{then}", headers=rider)).is_success
        assert (await _my_trip(client, rider))["status"] == "OUT"  # the bags stay with the rider


async def test_only_the_trips_own_rider_can_release_it(city, live_server, stack) -> None:
    clock = live_server.clock
    async with live_server.client() as client:
        await _packed_order(client, city.database_url)
        owner_name, other_name = _kor_riders(city.database_url, 2)
        owner = await _on_duty(client, owner_name, KOR, clock)
        (trip,) = await dispatch_all(stack.sessions, stack.redis, clock)  # the only one on duty
        await client.post(f"/v1/trips/{trip.trip_id}/accept", headers=owner)
        other = await login(client, other_name, DEMO_SECRETS[Role.RIDER])
        why = {"reason": "bags not ready"}

        r = await client.post(f"/v1/trips/{trip.trip_id}/release", headers=other, json=why)
        assert r.status_code == 403 and r.json()["code"] == "not_your_trip"
        r = await client.post(
            "/v1/trips/00000000-0000-4000-8000-000000000000/release", headers=other, json=why
        )
        assert r.status_code == 404 and r.json()["code"] == "trip_not_found"
        assert (await _my_trip(client, owner))["status"] == "ACCEPTED"


async def test_the_trips_rider_sees_the_customers_notes_and_phone_while_the_drop_is_open(
    city, live_server, stack
) -> None:
    async with live_server.client() as client:
        order, bag = await _packed_order(client, city.database_url)
        oid = order["order_id"]
        with psycopg.connect(city.database_url) as conn:
            conn.execute(
                "UPDATE orders SET delivery_address = delivery_address || %s::jsonb "
                "WHERE order_id = %s",
                (json.dumps({"instructions": "3rd floor, ring twice"}), oid),
            )
            conn.execute(
                "UPDATE users SET phone = '+919876543210' "
                "WHERE id = (SELECT user_id FROM orders WHERE order_id = %s)",
                (oid,),
            )
        owner, tid = await out_for_delivery(client, live_server, stack, bag)
        (stop,) = (await _my_trip(client, owner))["stops"]
        assert stop["instructions"] == "3rd floor, ring twice"
        assert stop["customer_phone"] == "+919876543210"

        # another rider neither acts on the trip nor sees its customer
        with psycopg.connect(city.database_url) as conn:
            [(other_name,)] = conn.execute(
                "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                "WHERE r.rider_id <> (SELECT rider_id FROM trips WHERE trip_id = %s) "
                "ORDER BY u.login LIMIT 1",
                (tid,),
            ).fetchall()
            [(otp,)] = conn.execute(
                "SELECT delivery_otp FROM orders WHERE order_id = %s", (oid,)
            ).fetchall()
        other = await login(client, other_name, DEMO_SECRETS[Role.RIDER])
        assert await _my_trip(client, other) is None
        r = await client.post(
            f"/v1/trips/{tid}/stops/{oid}/deliver", headers=other, json={"otp": otp}
        )
        assert r.status_code == 403 and r.json()["code"] == "not_your_trip"

        # once handed over the number is gone; the notes stay with the stop
        r = await client.post(
            f"/v1/trips/{tid}/stops/{oid}/deliver", headers=owner, json={"otp": otp}
        )
        assert r.status_code == 200, r.text
        (done,) = r.json()["stops"]
        assert done["status"] == "DELIVERED" and done["customer_phone"] is None
        assert done["instructions"] == "3rd floor, ring twice"
