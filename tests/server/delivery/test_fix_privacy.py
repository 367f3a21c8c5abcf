"""A rider's position reaches only the customers whose orders are on the rider's current
trip, with the trip read from Redis (issue 17 point 5, ``server.delivery.tracking``): after
each change of the trip (reassign, release, cancel, a drop delivered) the old trip's
customers get no more of it, and with Redis emptied the fix reads PostgreSQL again.

Absence is proved without waiting: after the rider's fix is acknowledged (its publishes
done), a marker goes to the same order channel; the customer's socket gets the channel in
order, so whatever the fix sent arrives before the marker."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import psycopg
import websockets
from sqlalchemy import event

from server.delivery import riders
from server.delivery.models import Rider as DeliveryRider
from server.delivery.models import TripStop
from server.delivery.worker import dispatch_all
from server.kit import keys
from server.kit.db import transaction
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import destination
from shared.schemas.delivery import GpsFix
from tests.helpers import login, pick_and_pack
from tests.server.delivery.dispatch_world import STORE, add_order, kor_riders
from tests.server.ops.ops_script import KOR, MANAGER, fix, rider_on_duty, riders_of
from tests.server.picking.test_picking_api import place_confirmed_order

Socket = Any


def _ws(live_server, path: str, headers: dict[str, str]) -> Any:
    base = live_server.url.replace("http", "ws", 1)
    return websockets.connect(f"{base}{path}?token={headers['Authorization'][7:]}")


@asynccontextmanager
async def _watching(client, live_server, order_id: str) -> AsyncIterator[Socket]:
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    async with _ws(live_server, f"/ws/orders/{order_id}", customer) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        yield ws


class Rider:
    """A rider's socket sending fixes 5 s apart, each acknowledged."""

    def __init__(self, sock: Socket, clock) -> None:
        self.sock, self.at = sock, clock.now()

    async def fix(self, metres: float = 300) -> None:
        self.at += timedelta(seconds=5)
        await self.sock.send(json.dumps(fix(destination(KOR, 90, metres), self.at)))
        ack = json.loads(await self.sock.recv())
        while ack["type"] != "ack":
            ack = json.loads(await self.sock.recv())
        assert ack["accepted"] is True


@asynccontextmanager
async def _riding(live_server, headers: dict[str, str]) -> AsyncIterator[Rider]:
    async with _ws(live_server, "/ws/rider", headers) as sock:
        yield Rider(sock, live_server.clock)


async def _positions(ws: Socket, redis, order_id: str) -> list[dict]:
    """The positions the order's socket got up to now (up to a marker sent after them)."""
    marker: dict[str, Any] = {"topic": "test.marker", "payload": {"id": uuid.uuid4().hex}}
    await redis.spublish(keys.order_channel(order_id), json.dumps(marker))
    got = []
    while (message := json.loads(await ws.recv()))["type"] != "test.marker" or (
        message["id"] != marker["payload"]["id"]
    ):
        if message["type"] == "rider.location":
            got.append(message)
    return got


async def _rider_id(client, headers) -> str:
    return (await client.get("/v1/riders/me", headers=headers)).json()["rider_id"]


async def _offered(client, live_server, stack) -> tuple[dict, dict[str, str], str]:
    """One packed order offered to a rider on duty at the store: (order, rider, trip id)."""
    (name,) = riders_of(stack.database_url, n=1)
    rider = await rider_on_duty(client, name, live_server.clock)
    order = await place_confirmed_order(client, stack.database_url, lines=1)
    await pick_and_pack(client, order["order_id"])
    (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
    return order, rider, str(trip.trip_id)


def _statements(engine) -> tuple[list[str], Any]:
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    return seen, listener


async def test_a_reassigned_order_gets_the_new_riders_position_only(
    city, live_server, stack
) -> None:
    async with live_server.client() as client:
        order, first, _ = await _offered(client, live_server, stack)
        oid = order["order_id"]
        second = await rider_on_duty(client, riders_of(stack.database_url, n=2)[1], stack.clock)
        async with (
            _watching(client, live_server, oid) as ws,
            _riding(live_server, first) as one,
            _riding(live_server, second) as two,
        ):
            await one.fix()  # the first fix of the trip reads it from PostgreSQL
            engine = resources_of(live_server.app).engine.sync_engine
            seen, listener = _statements(engine)
            try:
                await one.fix()  # from Redis: no statement at all, fan-out included
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert seen == []
            assert [p["rider_id"] for p in await _positions(ws, stack.redis, oid)] == [
                await _rider_id(client, first)
            ] * 2
            manager = await login(client, *MANAGER)
            r = await client.post(
                f"/v1/ops/orders/{oid}/reassign",
                json={"rider_id": await _rider_id(client, second), "reason": "scooter broke"},
                headers=manager,
            )
            assert r.status_code == 200, r.text
            await one.fix()
            await two.fix()
            assert [p["rider_id"] for p in await _positions(ws, stack.redis, oid)] == [
                await _rider_id(client, second)
            ]


async def test_a_released_trip_stops_the_riders_positions(city, live_server, stack) -> None:
    async with live_server.client() as client:
        order, rider, tid = await _offered(client, live_server, stack)
        oid = order["order_id"]
        async with _watching(client, live_server, oid) as ws, _riding(live_server, rider) as me:
            assert (await client.post(f"/v1/trips/{tid}/accept", headers=rider)).status_code == 200
            await me.fix()
            await me.fix()
            assert len(await _positions(ws, stack.redis, oid)) == 2
            r = await client.post(
                f"/v1/trips/{tid}/release", headers=rider, json={"reason": "bags not ready"}
            )
            assert r.status_code == 200, r.text
            await me.fix()
            assert await _positions(ws, stack.redis, oid) == []


async def test_a_cancelled_order_stops_the_riders_positions(city, live_server, stack) -> None:
    async with live_server.client() as client:
        order, rider, tid = await _offered(client, live_server, stack)
        oid = order["order_id"]
        async with _watching(client, live_server, oid) as ws, _riding(live_server, rider) as me:
            assert (await client.post(f"/v1/trips/{tid}/accept", headers=rider)).status_code == 200
            await me.fix()
            await me.fix()
            assert len(await _positions(ws, stack.redis, oid)) == 2
            manager = await login(client, *MANAGER)
            r = await client.post(
                f"/v1/ops/orders/{oid}/cancel", json={"reason": "asked by phone"}, headers=manager
            )
            assert r.status_code == 200, r.text
            await me.fix()
            assert await _positions(ws, stack.redis, oid) == []


async def test_a_delivered_drop_stops_its_positions_the_next_keeps_them(
    city, live_server, stack
) -> None:
    async with live_server.client() as client:
        orders = [await place_confirmed_order(client, city.database_url, lines=1) for _ in range(2)]
        with psycopg.connect(city.database_url) as conn:  # two doors, one behind the other
            for order, metres in zip(orders, (800, 1600), strict=True):
                door = destination(KOR, 45, metres)
                conn.execute(
                    "UPDATE orders SET delivery_lat = %s, delivery_lng = %s WHERE order_id = %s",
                    (door.lat, door.lng, order["order_id"]),
                )
        bags = [await pick_and_pack(client, o["order_id"]) for o in orders]
        (name,) = riders_of(stack.database_url, n=1)
        rider = await rider_on_duty(client, name, live_server.clock)
        (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        tid = str(trip.trip_id)
        for step in ("accept", "arrived"):
            assert (await client.post(f"/v1/trips/{tid}/{step}", headers=rider)).status_code == 200
        r = await client.post(f"/v1/trips/{tid}/pickup", headers=rider, json={"bag_labels": bags})
        assert r.status_code == 200, r.text
        assert (await client.post(f"/v1/trips/{tid}/depart", headers=rider)).status_code == 200
        first, second = (o["order_id"] for o in orders)
        customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        otp = (await client.get(f"/v1/orders/{first}", headers=customer)).json()["delivery_otp"]
        async with (
            _watching(client, live_server, first) as ws1,
            _watching(client, live_server, second) as ws2,
            _riding(live_server, rider) as me,
        ):
            await me.fix()
            await me.fix()
            assert len(await _positions(ws1, stack.redis, first)) == 2
            assert len(await _positions(ws2, stack.redis, second)) == 2
            r = await client.post(
                f"/v1/trips/{tid}/stops/{first}/deliver", headers=rider, json={"otp": otp}
            )
            assert r.status_code == 200, r.text
            await me.fix()
            assert await _positions(ws1, stack.redis, first) == []
            assert len(await _positions(ws2, stack.redis, second)) == 1


async def test_with_redis_emptied_a_fix_reads_the_trip_again(city, live_server, stack) -> None:
    async with live_server.client() as client:
        order, rider, _ = await _offered(client, live_server, stack)
        oid = order["order_id"]
        async with _watching(client, live_server, oid) as ws, _riding(live_server, rider) as me:
            await me.fix()
            assert len(await _positions(ws, stack.redis, oid)) == 1
            await stack.redis.flushdb()  # the context, the last fix and the GEO index gone
            await me.fix()
            (moved,) = await _positions(ws, stack.redis, oid)
            assert moved["rider_id"] == await _rider_id(client, rider) and moved["eta_s"] >= 0


async def test_a_stop_changed_without_its_trip_loaded_drops_the_context(city, stack) -> None:
    """The listener finds the rider of a stop whose trip the transaction never read."""
    (rider_id,) = kor_riders(stack.database_url, 1)
    order_id = add_order(
        stack.database_url, drop=destination(KOR, 0, 900), placed=stack.clock.now()
    )
    trip_id = uuid.uuid4()
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("UPDATE riders SET on_duty = true, status = 'DELIVERING' WHERE rider_id = %s",
                     (rider_id,))  # fmt: skip
        conn.execute(
            "INSERT INTO trips (trip_id, store_id, rider_id, status) VALUES (%s, %s, %s, 'OUT')",
            (trip_id, STORE, rider_id),
        )
        conn.execute(
            "INSERT INTO trip_stops (store_id, trip_id, order_id, seq, status, otp_attempts, "
            "otp_locked) VALUES (%s, %s, %s, 1, 'PENDING', 0, false)",
            (STORE, trip_id, order_id),
        )
    at = stack.clock.now()
    async with transaction(stack.sessions) as session:
        rider = await session.get(DeliveryRider, rider_id)
        assert rider is not None
        spot = destination(KOR, 180, 500)
        fix = GpsFix(lat=spot.lat, lng=spot.lng, at=at)
        await riders.ingest_fixes(session, stack.redis, rider=rider, fixes=[fix], now=at)
    track = keys.rider_track("BLR", str(rider_id))
    assert await stack.redis.hget(track, "duty") is not None
    async with transaction(stack.sessions) as session:
        stop = await session.get(TripStop, (STORE, trip_id, order_id))
        assert stop is not None
        stop.status = "FAILED"
        session.add(stop)
    assert not await stack.redis.exists(track)
