"""A manager moves a rider to another store of the city (issue 22): the rider's home store
changes, store selection counts them there at once, the move is audited; a rider on a
trip finishes it first; only the city's managers may."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import websockets

from server.events.relay import relay_once
from server.seed.generate import DEMO_SECRETS
from shared.client import ApiError, ManagerClient
from shared.enums import Role
from tests.conftest import Services
from tests.helpers import login
from tests.server.ops.ops_script import MANAGER, STORE, rider_on_duty, riders_of
from tests.server.ops.test_ops_actions import audit_rows

HSR = "BLR-HSR"
HSR_DOOR = {"lat": 12.9116, "lng": 77.6389}


def _rider(url: str, login_name: str) -> tuple[uuid.UUID, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT r.rider_id, r.home_store_id FROM riders r JOIN users u ON u.id = r.rider_id "
            "WHERE u.login = %s",
            (login_name,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


async def _idle_at(client, store_id: str) -> int:
    r = await client.get("/v1/stores/serviceable", params=HSR_DOOR)
    assert r.status_code == 200, r.text
    return next(s["idle_riders"] for s in r.json()["stores"] if s["store_id"] == store_id)


async def test_a_moved_rider_works_for_the_new_store_and_the_move_is_audited(
    city, client, clock
) -> None:
    name = riders_of(city.database_url, STORE, 1)[0]
    await rider_on_duty(client, name, clock)
    rider_id, home = _rider(city.database_url, name)
    assert home == STORE
    idle_before = await _idle_at(client, HSR)  # cached for the cell until the move
    manager = ManagerClient("http://qc.test", transport=client._transport)
    await manager.login(*MANAGER)

    moved = await manager.move_rider(rider_id, store_id=HSR, reason="HSR short of riders")
    assert (moved.from_store_id, moved.store_id, moved.status) == (STORE, HSR, "IDLE")
    assert _rider(city.database_url, name) == (rider_id, HSR)
    assert await _idle_at(client, HSR) == idle_before + 1
    action, target, reason, _ = audit_rows(city.database_url)[-1]
    assert (action, target, reason) == ("rider.move", str(rider_id), "HSR short of riders")

    try:
        await manager.move_rider(rider_id, store_id=HSR, reason="again")
        raise AssertionError("moved twice")
    except ApiError as exc:
        assert exc.status == 409 and exc.code == "rider_already_there"


async def test_a_rider_on_a_trip_is_moved_only_once_it_is_done(city, client) -> None:
    name = riders_of(city.database_url, STORE, 1)[0]
    rider_id, _ = _rider(city.database_url, name)
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE riders SET status = 'DELIVERING', on_duty = true WHERE rider_id = %s",
            (rider_id,),
        )
    manager = await login(client, *MANAGER)
    r = await client.post(
        f"/v1/ops/riders/{rider_id}/move", json={"store_id": HSR, "reason": "x"}, headers=manager
    )
    assert r.status_code == 409 and r.json()["code"] == "rider_busy", r.text
    assert "delivering" in r.json()["detail"]
    assert _rider(city.database_url, name) == (rider_id, STORE)
    assert audit_rows(city.database_url) == []


async def test_only_the_citys_managers_move_riders(city, client) -> None:
    rider_id, _ = _rider(city.database_url, riders_of(city.database_url, STORE, 1)[0])
    path = f"/v1/ops/riders/{rider_id}/move"
    body = {"store_id": HSR, "reason": "x"}
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    assert (await client.post(path, json=body, headers=picker)).status_code == 403
    assert (await client.post(path, json=body)).status_code == 401
    manager = await login(client, *MANAGER)
    nobody = await client.post(f"/v1/ops/riders/{uuid.uuid4()}/move", json=body, headers=manager)
    assert nobody.status_code == 404 and nobody.json()["code"] == "rider_not_found"
    nowhere = await client.post(path, json={"store_id": "NOPE-1", "reason": "x"}, headers=manager)
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "store_not_found"
    assert (await client.post(path, json={"store_id": HSR}, headers=manager)).status_code == 422
    assert audit_rows(city.database_url) == []


async def test_the_move_reaches_the_riders_socket_and_their_home_store(
    city, live_server, stack
) -> None:
    """``rider.move`` goes out on the rider's channel: the handheld tells them at once, and
    /v1/riders/me names the new store from then on."""
    async with live_server.client() as client:
        name = riders_of(city.database_url, STORE, 1)[0]
        rider = await rider_on_duty(client, name, stack.clock)
        me = (await client.get("/v1/riders/me", headers=rider)).json()
        assert (me["home_store_id"], me["home_store_name"]) == (STORE, _store_name(city, STORE))
        await relay_once(stack.engine, stack.redis)  # earlier events out of the way
        manager = await login(client, *MANAGER)
        socket = live_server.url.replace("http", "ws", 1) + "/ws/rider"
        async with websockets.connect(f"{socket}?token={rider['Authorization'][7:]}") as ws:
            r = await client.post(
                f"/v1/ops/riders/{me['rider_id']}/move",
                json={"store_id": HSR, "reason": "HSR short of riders"},
                headers=manager,
            )
            assert r.status_code == 200, r.text
            await relay_once(stack.engine, stack.redis)
            event: dict = {}
            async with asyncio.timeout(10):
                while event.get("type") != "rider.move":
                    event = json.loads(await ws.recv())
        hsr = _store_name(city, HSR)
        assert event["rider_id"] == me["rider_id"]
        assert (event["from_store"], event["to_store"], event["to_store_name"]) == (STORE, HSR, hsr)
        me = (await client.get("/v1/riders/me", headers=rider)).json()
        assert (me["home_store_id"], me["home_store_name"]) == (HSR, hsr)


def _store_name(city: Services, store_id: str) -> str:
    with psycopg.connect(city.database_url) as conn:
        row = conn.execute(
            "SELECT store_name FROM dark_stores WHERE store_id = %s", (store_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])
