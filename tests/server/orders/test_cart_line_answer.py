"""A line's change answers with the cart as the change left its hold (``reserve.lua``
answers the hold's lines): the same cart a read of it gives, without reading the hold
back from Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from server.inventory import engine
from server.kit.clock import ManualClock
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, stocked_skus

STORE = "BLR-KOR"


@pytest.fixture
def clock() -> ManualClock:
    """Time stands still: the change's answer and the read after it share their times."""
    return ManualClock(time.time())


@contextmanager
def _hold_reads() -> Iterator[list[str]]:
    """The holders whose hold is read from Redis in the block (a spy that calls through)."""
    seen: list[str] = []
    read = engine.read_hold

    async def counted(client: Any, *, store_id: str, holder: str) -> dict[str, str]:
        seen.append(holder)
        return await read(client, store_id=store_id, holder=holder)

    setattr(engine, "read_hold", counted)  # noqa: B010
    try:
        yield seen
    finally:
        setattr(engine, "read_hold", read)  # noqa: B010


async def test_a_lines_answer_is_the_cart_as_read_after_it(city, client) -> None:
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    a, b = stocked_skus(city.database_url, STORE, 2, at_least=10)
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    url = f"/v1/carts/{cart['cart_id']}"
    # added, another added, changed, removed, the last removed (an empty hold)
    held: dict[str, int] = {}
    for sku, quantity in ((a, 2), (b, 1), (a, 3), (a, 0), (b, 0)):
        with _hold_reads() as reads:
            put = await client.put(
                f"{url}/lines/{sku}", json={"quantity": quantity}, headers=headers
            )
        assert put.status_code == 200, put.text
        held = {k: v for k, v in {**held, sku: quantity}.items() if v}
        assert {line["sku_id"]: line["quantity"] for line in put.json()["lines"]} == held
        if held:  # an empty cart still asks whether its holds ran out
            assert reads == []
        assert put.json() == (await client.get(url, headers=headers)).json()
