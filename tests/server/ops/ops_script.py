"""A scripted day at BLR-KOR for the control-tower tests: orders placed, picked, packed,
delivered and cancelled through the public API."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import psycopg

from server.delivery.worker import dispatch_all
from server.kit.clock import Clock
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import LatLng
from tests.helpers import login, one_row, pick_and_pack
from tests.server.picking.test_picking_api import place_confirmed_order

STORE = "BLR-KOR"
KOR = LatLng(12.9352, 77.6245)
MANAGER = ("manager.blr", DEMO_SECRETS[Role.MANAGER])


def fix(point: LatLng, at) -> dict:
    return {"lat": point.lat, "lng": point.lng, "at": at.isoformat(), "speed_mps": 6.0}


def riders_of(url: str, store: str = STORE, n: int = 2) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
                "WHERE r.home_store_id = %s ORDER BY u.login LIMIT %s",
                (store, n),
            )
        ]


async def rider_on_duty(client: httpx.AsyncClient, login_name: str, clock: Clock) -> dict:
    """Log a rider in, put them on shift at the store and return their headers."""
    headers = await login(client, login_name, DEMO_SECRETS[Role.RIDER])
    r = await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=headers)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/riders/me/locations", headers=headers, json={"fixes": [fix(KOR, clock.now())]}
    )
    assert r.status_code == 200, r.text
    return headers


async def deliver(
    client: httpx.AsyncClient, stack, rider: dict, order_id: str, bag: str, url: str
) -> None:
    (trip,) = await dispatch_all(stack.sessions, stack.redis, stack.clock)
    tid = str(trip.trip_id)
    for step in ("accept", "arrived"):
        assert (await client.post(f"/v1/trips/{tid}/{step}", headers=rider)).status_code == 200
    r = await client.post(f"/v1/trips/{tid}/pickup", headers=rider, json={"bag_labels": [bag]})
    assert r.status_code == 200, r.text
    assert (await client.post(f"/v1/trips/{tid}/depart", headers=rider)).status_code == 200
    with psycopg.connect(url) as conn:
        otp = one_row(
            conn.execute("SELECT delivery_otp FROM orders WHERE order_id = %s", (order_id,))
        )[0]
    r = await client.post(
        f"/v1/trips/{tid}/stops/{order_id}/deliver", headers=rider, json={"otp": otp}
    )
    assert r.status_code == 200, r.text


@dataclass
class ScriptedDay:
    delivered: list[str] = field(default_factory=list)
    packed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


async def scripted_day(client: httpx.AsyncClient, stack, url: str) -> ScriptedDay:
    """Two orders delivered (one in 4 simulated minutes, one in 12), one packed and
    waiting for a rider, two waiting to be picked, one cancelled by its customer."""
    day = ScriptedDay()
    rider = await rider_on_duty(client, riders_of(url)[0], stack.clock)
    for minutes in (4, 12):
        order = await place_confirmed_order(client, url, lines=1)
        bag = await pick_and_pack(client, order["order_id"])
        stack.clock.advance((minutes - 1) * 60)
        await deliver(client, stack, rider, order["order_id"], bag, url)
        stack.clock.advance(60)
        day.delivered.append(order["order_id"])
    order = await place_confirmed_order(client, url, lines=2)
    await pick_and_pack(client, order["order_id"])
    day.packed.append(order["order_id"])
    for _ in range(2):
        day.waiting.append((await place_confirmed_order(client, url, lines=1))["order_id"])
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    doomed = await place_confirmed_order(client, url, lines=1)
    r = await client.post(
        f"/v1/orders/{doomed['order_id']}/cancel",
        json={"reason": "changed my mind"},
        headers=customer,
    )
    assert r.status_code == 200, r.text
    day.cancelled.append(doomed["order_id"])
    return day
