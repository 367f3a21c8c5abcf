"""Work is pushed: a new pick task reaches the store's pickers, and an offer its rider,
over their websocket as soon as the outbox relay publishes it (``QC_WORK_PUSH``); with the
lever off the sockets carry no work and the terminals poll. Real sockets, real server."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
import pytest
import websockets

from server.delivery.worker import dispatch_all
from server.events.relay import relay_once
from server.orders.models import Order
from server.picking import service as picking
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import destination
from tests.conftest import settings_for
from tests.helpers import login, one_row
from tests.server.delivery.dispatch_world import KOR, STORE, add_order, kor_riders, put_on_duty


@pytest.fixture
def settings(services, request: pytest.FixtureRequest):
    return settings_for(services, work_push=getattr(request, "param", True))


async def _next(ws: Any, kind: str, timeout: float = 10.0, order_id: str = "") -> dict:
    """The next message of this type (others, e.g. pings, are skipped), of ``order_id`` if
    given: on an external Redis, another xdist worker's orders at the same store are
    published on the same channel (pub/sub is not per database)."""

    async def read() -> dict:
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == kind and order_id in ("", message.get("order_id")):
                return message

    return await asyncio.wait_for(read(), timeout)


def _picker_of(url: str) -> str:
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                "SELECT login FROM users WHERE role = 'picker' AND store_id = %s ORDER BY login",
                (STORE,),
            )
        )[0]


async def _enqueue(stack) -> uuid.UUID:
    """A paid order joins the pick queue through the code confirmation runs."""
    order_id = add_order(
        stack.database_url,
        drop=destination(KOR, 0, 800),
        placed=stack.clock.now(),
        status="CONFIRMED",
    )
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("DELETE FROM pick_tasks WHERE order_id = %s", (order_id,))
    async with stack.sessions() as session:
        order = await session.get(Order, (STORE, order_id))
        await picking.enqueue(session, order=order, now=stack.clock.now())
        await session.commit()
    return order_id


@pytest.mark.parametrize("settings", [True, False], indirect=True, ids=["push", "poll"])
async def test_a_new_pick_task_reaches_the_pickers_socket(
    city, live_server, stack, settings
) -> None:
    async with live_server.client() as client:
        picker = await login(client, _picker_of(city.database_url), DEMO_SECRETS[Role.PICKER])
    url = live_server.url.replace("http", "ws", 1) + "/ws/picker"
    async with websockets.connect(f"{url}?token={picker['Authorization'][7:]}") as ws:
        assert (await _next(ws, "queue"))["tasks"] == []
        order_id = await _enqueue(stack)
        await relay_once(stack.engine, stack.redis)
        if not settings.work_push:
            with pytest.raises(TimeoutError):
                await _next(ws, "picking.queued", timeout=1.0)
            return
        pushed = await _next(ws, "picking.queued", order_id=str(order_id))
    assert pushed["order_id"] == str(order_id) and pushed["store_id"] == STORE
    assert pushed["status"] == "WAITING" and pushed["units"] >= 0 and pushed["estimate_s"] >= 0


async def test_a_picker_socket_needs_a_picker(city, live_server) -> None:
    async with live_server.client() as client:
        rider = await login(client, "rider.001", DEMO_SECRETS[Role.RIDER])
    url = live_server.url.replace("http", "ws", 1) + "/ws/picker"
    async with websockets.connect(f"{url}?token={rider['Authorization'][7:]}") as ws:
        assert json.loads(await ws.recv())["error"]["code"] == "forbidden"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


@pytest.mark.parametrize("settings", [True, False], indirect=True, ids=["push", "poll"])
async def test_an_offer_reaches_the_riders_socket(city, live_server, stack, settings) -> None:
    (rider_id,) = kor_riders(city.database_url, 1)
    with psycopg.connect(city.database_url) as conn:
        name = one_row(conn.execute("SELECT login FROM users WHERE id = %s", (rider_id,)))[0]
    async with live_server.client() as client:
        rider = await login(client, name, DEMO_SECRETS[Role.RIDER])
    await put_on_duty(
        city.database_url, stack.redis, rider_id, destination(KOR, 90, 300), stack.clock.now()
    )
    order_id = add_order(city.database_url, drop=destination(KOR, 0, 900), placed=stack.clock.now())
    url = live_server.url.replace("http", "ws", 1) + "/ws/rider"
    async with websockets.connect(f"{url}?token={rider['Authorization'][7:]}") as ws:
        (trip,) = await dispatch_all(stack.sessions, stack.redis, stack.clock)
        await relay_once(stack.engine, stack.redis)
        if not settings.work_push:
            fix = {"lat": KOR.lat, "lng": KOR.lng, "at": stack.clock.now().isoformat()}
            await ws.send(json.dumps(fix))
            # the fix's answer comes; the offer never did
            assert json.loads(await ws.recv())["type"] == "ack"
            return
        offer = await _next(ws, "delivery.offered")
    assert offer["trip_id"] == str(trip.trip_id) and offer["rider_id"] == str(rider_id)
    assert offer["order_ids"] == [str(order_id)] and offer["store_id"] == STORE
    assert offer["status"] == "OFFERED" and offer["offer_expires_at"]
