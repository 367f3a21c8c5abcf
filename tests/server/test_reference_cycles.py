"""The hot paths of a flash crowd (join, where-am-I, the sale's checkout, a refused join,
a regular cart and checkout) leave no reference cycles behind: what they allocate is freed
by reference counting, and the garbage collector's full collections in a worker find
nothing (``qc.serving.set_aside``). A cycle that comes back fails here with its types."""

from __future__ import annotations

import gc
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import psycopg

from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)

# the test's own client (httpx's request objects are cyclic): not the server's garbage
CLIENT_SIDE = ("httpx", "httpcore", "h11", "anyio")


def _server_garbage(garbage: list[object]) -> Counter[str]:
    """The types of the garbage outside the components that hold the client's requests."""
    index = {id(o): i for i, o in enumerate(garbage)}
    root = list(range(len(garbage)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i, o in enumerate(garbage):
        for referent in gc.get_referents(o):
            j = index.get(id(referent))
            if j is not None:
                root[find(i)] = find(j)
    client_side = {
        find(i) for i, o in enumerate(garbage) if type(o).__module__.startswith(CLIENT_SIDE)
    }
    return Counter(
        f"{type(o).__module__}.{type(o).__qualname__}"
        for i, o in enumerate(garbage)
        if find(i) not in client_side
    )


async def _cycles_left(run: Callable[[], Awaitable[None]]) -> Counter[str]:
    """What ``run`` left for the collector, with the collector off meanwhile."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await run()
        gc.collect()
        return _server_garbage(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _regular_skus(database_url: str, n: int) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty > 5 "
                "ORDER BY sku_id OFFSET 1 LIMIT %s",
                (STORE, n),
            )
        ]


async def test_a_flash_crowds_requests_leave_no_reference_cycles(city, app, client, clock):
    manager = manager_headers(clock, city.database_url)
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 20)
    sale = await create_sale(client, manager, clock, sku=sku, units=4)
    line = f"/v1/flash-sales/{sale['sale_id']}/queue"
    pay = f"/v1/flash-sales/{sale['sale_id']}/checkout"
    people = [h for _, h in make_customers(city.database_url, clock, 12)]
    regular = _regular_skus(city.database_url, 2)
    buyers = [h for _, h in make_customers(city.database_url, clock, 3, prefix="rg")]

    async def buy(headers: dict[str, str], url: str) -> int:
        r = await client.post(
            url, json=ADDRESS, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
        )
        return r.status_code

    async def regular_order(n: int) -> int:
        headers = {**buyers[n], "X-Forwarded-For": f"10.9.0.{n}"}
        cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
        for s in regular:
            lines = f"/v1/carts/{cart['cart_id']}/lines/{s}"
            await client.put(lines, json={"quantity": 1}, headers=headers)
        return await buy(headers, f"/v1/carts/{cart['cart_id']}/checkout")

    # each path once first: what a first call builds and keeps (caches, compiled statements)
    first = (await client.post(line, json={"store_id": STORE}, headers=people[0])).json()
    assert first["status"] == "ADMITTED"
    assert (await client.get(f"{line}/me", headers=people[0])).status_code == 200
    assert await buy(people[0], pay) == 201
    assert await regular_order(0) == 201
    outcomes: list[object] = []

    async def crowd() -> None:
        for headers in people[1:4]:  # the three units left: admitted, asked, paid
            outcomes.append(
                (await client.post(line, json={"store_id": STORE}, headers=headers)).json()[
                    "status"
                ]
            )
            outcomes.append((await client.get(f"{line}/me", headers=headers)).json()["status"])
            outcomes.append(await buy(headers, pay))
        for headers in people[4:8]:  # sold out: refused at the door
            outcomes.append(
                (await client.post(line, json={"store_id": STORE}, headers=headers)).json()["code"]
            )
        outcomes.extend([await regular_order(1), await regular_order(2)])

    left = await _cycles_left(crowd)
    assert outcomes == [*["ADMITTED", "ADMITTED", 201] * 3, *["flash_sold_out"] * 4, 201, 201]
    assert left == Counter(), f"reference cycles left by the hot paths: {left.most_common(20)}"
