"""A cart cannot keep stock for ever: each change renews its holds, but never past the
cart's life (QC_CART_HOLD_LIFE_S from its creation), and the cart view says when that is."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import psycopg

from server.kit.clock import Clock
from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Services
from tests.helpers import login

STORE = "BLR-KOR"


def _skus(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 10 "
                "ORDER BY sku_id LIMIT 3",
                (STORE,),
            )
        ]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_each_change_renews_the_hold_but_never_past_the_carts_life(
    city: Services, client: httpx.AsyncClient, clock: Clock, settings: Settings
) -> None:
    life = timedelta(seconds=settings.cart_hold_life_s)
    hold = timedelta(seconds=settings.soft_hold_s)
    assert life > 2 * hold  # the renewals below happen inside the life
    first, second, third = _skus(city.database_url)
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    ends = _at(cart["hold_life_ends_at"])
    line = f"/v1/carts/{cart['cart_id']}/lines"

    view = (await client.put(f"{line}/{first}", json={"quantity": 1}, headers=headers)).json()
    assert _at(view["hold_life_ends_at"]) == ends

    clock.advance((life - hold).total_seconds() + 60)  # a change now would outlive the life
    r = await client.put(f"{line}/{second}", json={"quantity": 1}, headers=headers)
    assert r.status_code == 200, r.text
    assert _at(r.json()["hold_expires_at"]) <= ends  # renewed only up to the cart's life

    clock.advance(hold.total_seconds())  # past the life: nothing more is held for this cart
    refused = await client.put(f"{line}/{third}", json={"quantity": 1}, headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "hold_life_over"


async def test_one_customer_cannot_hold_a_products_whole_stock(
    city: Services, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Units per product per cart and carts holding stock at once are capped, so one
    customer's holds are bounded (QC_CART_MAX_UNITS_PER_SKU x QC_CART_MAX_HOLDING)."""
    sku = _skus(city.database_url)[0]
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    carts = []
    for _ in range(settings.cart_max_holding):
        r = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
        assert r.status_code == 201, r.text
        carts.append(r.json()["cart_id"])
    extra = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
    assert extra.status_code == 409 and extra.json()["code"] == "too_many_carts"

    line = f"/v1/carts/{carts[0]}/lines/{sku}"
    over = settings.cart_max_units_per_sku + 1
    r = await client.put(line, json={"quantity": over}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "quantity_over_limit", r.text
    r = await client.put(line, json={"quantity": settings.cart_max_units_per_sku}, headers=headers)
    assert r.status_code == 200, r.text

    other = await login(client, "customer.002", DEMO_SECRETS[Role.CUSTOMER])
    assert (
        await client.post("/v1/carts", json={"store_id": STORE}, headers=other)
    ).status_code == 201
