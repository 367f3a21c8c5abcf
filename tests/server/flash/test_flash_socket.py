"""The queue's websocket over a real socket: positions pushed as the line moves, only
ever decreasing, then the slot; a sold-out line tells everyone still waiting at once."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

import httpx
import websockets
from starlette.applications import Starlette

from server.flash import tick
from server.kit.resources import install, resources_of
from tests.helpers import wait_until
from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)


def _ws_url(live_server, sale_id: str, headers: dict[str, str]) -> str:
    token = headers["Authorization"].split()[1]
    return live_server.url.replace("http", "ws") + f"/ws/flash/{sale_id}?token={token}"


async def _next(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=10))


async def _checkout(client, sid, headers):
    r = await client.post(
        f"/v1/flash-sales/{sid}/checkout",
        json=ADDRESS,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text


async def test_positions_pushed_over_the_socket_only_decrease(city, live_server, stack, clock):
    app = live_server.app
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    sku = flash_sku(city.database_url)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        sid = await _sale(client, city, stack, app, clock, sku, stock=10, units=5)
        crowd = make_customers(city.database_url, clock, 5)
        for _, h in crowd:
            r = await client.post(
                f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=h
            )
            assert r.status_code == 200, r.text
        (_, first), (_, second), _third, (_, fourth), (_, last) = crowd
        async with websockets.connect(_ws_url(live_server, sid, last)) as ws:
            seen = [await _next(ws)]
            await _checkout(client, sid, first)  # bought: the next one is admitted
            seen.append(await _next(ws))
            r = await client.delete(f"/v1/flash-sales/{sid}/queue/me", headers=second)
            assert r.status_code == 204  # gave the slot up
            seen.append(await _next(ws))
            clock.advance(61)  # the third never checks out: the slot expires
            await tick.tick(
                stack.sessions, stack.redis, clock=clock, settings=resources_of(app).settings
            )
            seen.append(await _next(ws))
            await _checkout(client, sid, fourth)
            seen.append(await _next(ws))
        positions = [m["position"] for m in seen if m["type"] == "position"]
        assert positions == [4, 3, 2, 1]
        assert all(m["estimated_wait_s"] >= 1 for m in seen if m["type"] == "position")
        assert seen[-1]["type"] == "admitted" and seen[-1]["slot_seconds_left"] > 0


async def test_a_sold_out_line_tells_everyone_waiting_at_once(city, live_server, stack, clock):
    app = live_server.app
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    sku = flash_sku(city.database_url)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        sid = await _sale(client, city, stack, app, clock, sku, stock=2, units=1)
        (_, buyer), *waiting = make_customers(city.database_url, clock, 4)
        for h in [buyer, *[h for _, h in waiting]]:
            r = await client.post(
                f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=h
            )
            assert r.status_code == 200
        sockets = [await websockets.connect(_ws_url(live_server, sid, h)) for _, h in waiting]
        try:
            firsts = [await _next(ws) for ws in sockets]
            assert [m["position"] for m in firsts] == [1, 2, 3]
            await _checkout(client, sid, buyer)
            lasts = [await _next(ws) for ws in sockets]
            assert lasts == [{"type": "closed", "reason": "sold_out"}] * 3
            for ws in sockets:  # and the server closes each socket
                await asyncio.wait_for(ws.wait_closed(), timeout=10)
        finally:
            for ws in sockets:
                await ws.close()
        r = await client.get(f"/v1/flash-sales/{sid}/queue/me", headers=waiting[0][1])
        assert r.json()["status"] == "CLOSED" and r.json()["closed_reason"] == "sold_out"


async def test_the_socket_refuses_strangers(city, live_server, clock):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30):
        url = live_server.url.replace("http", "ws") + f"/ws/flash/{uuid.uuid4()}?token=nope"
        async with websockets.connect(url) as ws:
            message = await _next(ws)
            assert message["type"] == "error" and message["error"]["status"] == 401
            await asyncio.wait_for(ws.wait_closed(), timeout=10)
            assert ws.close_code == 4401


def _on_test_loop(stack, app):
    """The app as ``stock_up`` wants it, on this test's own connections (the live
    server's engine belongs to its own event loop)."""
    on_this_loop = Starlette()
    install(on_this_loop, replace(resources_of(app), sessions=stack.sessions, redis=stack.redis))
    return on_this_loop


async def _sale(client, city, stack, app, clock, sku: str, *, stock: int, units: int) -> str:
    """A sale of ``units`` of ``sku`` with ``stock`` on the shelf; its id."""
    await stock_up(_on_test_loop(stack, app), STORE, sku, stock)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=units
    )
    return str(sale["sale_id"])


async def test_a_socket_whose_client_left_leaves_the_line(city, live_server, stack, clock):
    """A waiting customer closing the socket ends its watch (the client's leaving is a
    message in its inbox): the process keeps no watcher and no subscription for it."""
    app = live_server.app
    sku = flash_sku(city.database_url)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        sid = await _sale(client, city, stack, app, clock, sku, stock=2, units=1)
        ((_, h),) = make_customers(city.database_url, clock, 1)
        r = await client.post(f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=h)
        assert r.status_code == 200
        resources = resources_of(app)
        async with websockets.connect(_ws_url(live_server, sid, h)) as ws:
            assert (await _next(ws))["type"] in ("admitted", "position")
            # the line's subscription beside the process's listener for ended sessions
            assert resources.flash_hub.lines and resources.fanout.listeners == 2
    await wait_until(
        # the line's subscription gone; the process's listener for ended sessions stays
        lambda: not resources.flash_hub.lines and resources.fanout.listeners == 1,
        timeout=10,
    )
