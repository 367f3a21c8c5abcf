"""Helpers for driving the picker app against a live server: place a confirmed order as a
customer, pick SKUs from the seeded store, wait for conditions, type like a scanner."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

import httpx
import psycopg
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from picker_app.app import PickerApp
from picker_app.screens.pack import PackScreen
from picker_app.screens.pick import PickScreen
from picker_app.screens.queue import QueueScreen
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import SteppedClock, login, wait_for, wait_for_screen

STORE = "BLR-KOR"
PICKER_LOGIN = "picker.kor.1"
PICKER_PIN = DEMO_SECRETS[Role.PICKER]
CUSTOMER = ("customer.001", DEMO_SECRETS[Role.CUSTOMER])
HOME = {"lat": 12.9352, "lng": 77.6245}
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", **HOME}, "payment_method": "upi"}


async def place_order(url: str, lines: dict[str, int], *, address: dict[str, Any] = ADDRESS) -> str:
    """A customer order through the API; the simulated payment succeeds, so it is
    CONFIRMED at once and joins the store's pick queue. Returns the order id."""
    async with httpx.AsyncClient(base_url=url) as client:
        headers = await login(client, *CUSTOMER)
        cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
        for sku, qty in lines.items():
            r = await client.put(
                f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": qty}, headers=headers
            )
            assert r.status_code == 200, r.text
        r = await client.post(
            f"/v1/carts/{cart['cart_id']}/checkout",
            json=address,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["status"] == "CONFIRMED", order
        return str(order["order_id"])


async def order_as_customer(url: str, order_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        headers = await login(client, *CUSTOMER)
        r = await client.get(f"/v1/orders/{order_id}", headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


def in_stock_skus(database_url: str, n: int, *, substitutable: bool = False) -> list[str]:
    """SKUs with stock at the store; ``substitutable``: another in-stock SKU of the same
    category exists, so a short line gets substitutes offered."""
    extra = (
        "AND EXISTS (SELECT 1 FROM products c JOIN store_inventory ci ON ci.sku_id = c.sku_id "
        "AND ci.store_id = i.store_id WHERE c.category_id = p.category_id "
        "AND c.sku_id <> p.sku_id AND ci.available_qty > 5)"
        if substitutable
        else ""
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT i.sku_id FROM store_inventory i JOIN products p ON p.sku_id = i.sku_id "
            f"WHERE i.store_id = %s AND i.available_qty >= 8 {extra} ORDER BY i.sku_id LIMIT %s",
            (STORE, n),
        ).fetchall()
    assert len(rows) == n
    return [r[0] for r in rows]


def barcode_not_in(database_url: str, skus: list[str]) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT barcode FROM products WHERE NOT (sku_id = ANY(%s)) ORDER BY sku_id LIMIT 1",
            (skus,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def picked_in_db(database_url: str, order_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT sku_id, picked_qty FROM order_items WHERE order_id = %s", (order_id,)
        ).fetchall()
    return {r[0]: r[1] for r in rows}


async def person_presses(pilot: Pilot, clock: SteppedClock, key: str) -> None:
    """A person: the key stands alone in time, so the detector hands it back (on its next
    poll) as ordinary typing; the caller waits for the key's effect."""
    clock.advance(1.0)
    await pilot.press(key)
    clock.advance(1.0)


class Bells:
    def __init__(self, app: PickerApp) -> None:
        self.count = 0
        app.bell = self  # type: ignore[method-assign]

    def __call__(self) -> None:
        self.count += 1


def picked(screen: PickScreen, sku_id: str) -> int:
    line = screen.line(sku_id)
    assert line is not None
    return line.picked_qty


def picked_is(screen: PickScreen, sku_id: str, n: int) -> Callable[[], bool]:
    return lambda: picked(screen, sku_id) == n


async def log_in(pilot: Pilot[Any], app: PickerApp) -> QueueScreen:
    await wait_for(pilot, lambda: app.screen.query("#login"), what="login screen")
    assert app.screen.query_one("#store", Input).value == STORE
    await pilot.press(*PICKER_LOGIN, "enter", *PICKER_PIN, "enter")
    await wait_for_screen(pilot, QueueScreen, what="queue")
    return cast(QueueScreen, app.screen)


async def claim(pilot: Pilot[Any], app: PickerApp, order_id: str) -> PickScreen:
    queue = cast(QueueScreen, app.screen)
    await wait_for(
        pilot, lambda: order_id in [str(t.order_id) for t in queue.tasks], what="order queued"
    )
    table = queue.query_one(DataTable)
    assert table.get_row(order_id)[1] == order_id[:8]
    await pilot.press("enter")
    await wait_for_screen(pilot, PickScreen, what="pick screen")
    screen = cast(PickScreen, app.screen)
    assert screen.order_id == order_id
    return screen


async def pack(pilot: Pilot[Any], app: PickerApp, clock: SteppedClock) -> PackScreen:
    await person_presses(pilot, clock, "p")
    await wait_for_screen(pilot, PackScreen, what="pack screen")
    screen = cast(PackScreen, app.screen)
    await pilot.press("enter")  # the suggested bag count
    await wait_for(pilot, lambda: screen.packed, what="packed")
    return screen
