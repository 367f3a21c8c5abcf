"""The client's customer side against a live server: stores, catalogue, cart, checkout,
orders, cancelling, and the tracking socket with its snapshot."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect

from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.client import ApiError, CustomerClient, RiderClient
from shared.enums import OrderStatus, Role
from shared.schemas.orders import DeliveryAddress

HOME = DeliveryAddress(line1="4th Cross, 5th Block", lat=12.9301, lng=77.6302)


async def test_a_customer_walk_through_the_typed_client(city, live_server) -> None:
    async with CustomerClient(live_server.url) as api:
        await api.login("customer.001", DEMO_SECRETS[Role.CUSTOMER])
        stores = await api.stores(city="BLR")
        assert {s.store_id for s in stores.items} >= {"BLR-KOR"}
        best = (await api.serviceable_stores(HOME.lat, HOME.lng)).stores[0]
        assert best.store_id == "BLR-KOR"
        with pytest.raises(ApiError) as err:
            await api.serviceable_stores(28.61, 77.21)  # Delhi
        assert err.value.code == "not_serviceable"

        categories = await api.categories()
        dairy = next(c for c in categories if c.category_id == "dairy-bread-eggs")
        page = await api.products("BLR-KOR", category=dairy.category_id, limit=5)
        assert len(page.items) <= 5 and all(p.category_id == dairy.category_id for p in page.items)
        stocked = [p for p in page.items if 3 <= p.available_qty < 50]
        first, second = stocked[0], stocked[1]
        detail = await api.product("BLR-KOR", first.sku_id)
        assert detail.sku_id == first.sku_id and len(detail.barcode) == 13
        live = await api.availability("BLR-KOR", [first.sku_id, second.sku_id])
        assert live.available[first.sku_id] == first.available_qty
        found = await api.search("BLR-KOR", first.name.split()[0], limit=5)
        assert found

        cart = await api.create_cart("BLR-KOR")
        cart = await api.set_cart_line(cart.cart_id, first.sku_id, quantity=2)
        cart = await api.set_cart_line(cart.cart_id, second.sku_id, quantity=1)
        cart = await api.remove_cart_line(cart.cart_id, second.sku_id)
        assert [(ln.sku_id, ln.quantity) for ln in cart.lines] == [(first.sku_id, 2)]
        moved = await api.switch_cart_store(cart.cart_id, "BLR-KOR")
        assert moved.store_id == "BLR-KOR"
        assert (await api.cart(cart.cart_id)).hold_seconds_left
        with pytest.raises(ApiError) as err:
            await api.set_cart_line(cart.cart_id, first.sku_id, quantity=first.available_qty + 1)
        over_cap = first.available_qty + 1 > Settings().cart_max_units_per_sku
        assert err.value.code == ("quantity_over_limit" if over_cap else "insufficient_stock")

        key = "walk-1"
        order = await api.checkout(cart.cart_id, address=HOME, idempotency_key=key)
        assert order.status == OrderStatus.CONFIRMED
        again = await api.checkout(cart.cart_id, address=HOME, idempotency_key=key)
        assert again.order_id == order.order_id  # the first answer, replayed

        async with connect(api.order_socket_url(order.order_id)) as ws:
            snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert snapshot["order"]["order_id"] == str(order.order_id)

        mine = await api.orders(limit=5)
        assert [o.order_id for o in mine.items] == [order.order_id]
        assert (await api.order(order.order_id)).status == OrderStatus.CONFIRMED
        cancelled = await api.cancel_order(order.order_id, reason="ordered by mistake")
        assert cancelled.status == OrderStatus.CANCELLED
        assert cancelled.cancel_reason == "ordered by mistake"
        with pytest.raises(ApiError) as err:
            await api.cancel_order(order.order_id)
        assert err.value.status == 409


async def test_the_rider_socket_url_carries_the_token(city, live_server) -> None:
    async with RiderClient(live_server.url) as api:
        await api.login("rider.001", DEMO_SECRETS[Role.RIDER])
        url = api.rider_socket_url()
        assert url.startswith("ws://127.0.0.1:") and url.endswith(f"/ws/rider?token={api.token}")
