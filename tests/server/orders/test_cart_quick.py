"""The cart's and the checkout's quick routes (``server.kit.quick``) answer as FastAPI's own
handlers: the same status, bytes and headers for a new cart, a line, a paid checkout, its
replay and every refusal; what the quick path does not read goes to FastAPI."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from server.kit.clock import ManualClock
from server.kit.deps import get_clock
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, stocked_skus

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", "lat": 12.9352, "lng": 77.6245}}
HEADERS = ("content-type", "content-length", "idempotent-replayed", "retry-after")


@pytest.fixture
def clock() -> ManualClock:
    """Time stands still: two carts built the same way answer the same times."""
    return ManualClock(time.time())


async def _both(app: FastAPI, ask: Callable[[], Awaitable[httpx.Response]]):
    """``ask`` answered by the quick route, then by FastAPI's handler (any override)."""
    quick = await ask()
    app.dependency_overrides[get_clock] = get_clock
    try:
        generic = await ask()
    finally:
        app.dependency_overrides.clear()
    return quick, generic


def _same(quick: httpx.Response, generic: httpx.Response, *ids: tuple[str, str]) -> None:
    """The same answer, ``ids`` (FastAPI's, the quick one's) aside."""
    content = generic.content
    for theirs, mine in ids:
        content = content.replace(theirs.encode(), mine.encode())
    assert (quick.status_code, quick.content) == (generic.status_code, content)
    for header in HEADERS:
        assert quick.headers.get(header) == generic.headers.get(header), header


def _keyed(headers: dict[str, str]) -> dict[str, str]:
    if headers.get("Idempotency-Key") != "fresh":
        return headers
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


Send = Callable[..., Awaitable[httpx.Response]]  # the client's post or put


def _asking(
    send: Send, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Callable[[], Awaitable[httpx.Response]]:
    """The ask, each time with ``headers`` (a new Idempotency-Key each time if "fresh")."""
    return lambda: send(url, json=body, headers=_keyed(headers))


async def test_a_cart_its_lines_and_its_checkout_answer_fastapis_bytes(city, app, client):
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    skus = stocked_skus(city.database_url, STORE, 2, at_least=10)
    carts: list[str] = []

    async def new_cart() -> httpx.Response:
        r = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
        carts.append(r.json()["cart_id"])
        return r

    quick, generic = await _both(app, new_cart)
    assert quick.status_code == 201
    _same(quick, generic, (carts[1], carts[0]))
    mine, theirs = carts
    for sku in skus:
        at = iter([mine, theirs])

        async def put_line(sku: str = sku, at: Iterator[str] = at) -> httpx.Response:
            return await client.put(
                f"/v1/carts/{next(at)}/lines/{sku}", json={"quantity": 2}, headers=headers
            )

        quick, generic = await _both(app, put_line)
        assert quick.status_code == 200 and len(quick.json()["lines"]) == skus.index(sku) + 1
        _same(quick, generic, (theirs, mine))
    key = iter([uuid.uuid4().hex, uuid.uuid4().hex])
    at = iter([mine, theirs])
    quick, generic = await _both(
        app,
        lambda: client.post(
            f"/v1/carts/{next(at)}/checkout",
            json=ADDRESS,
            headers={**headers, "Idempotency-Key": next(key)},
        ),
    )
    assert quick.status_code == 201 and quick.json()["status"] == "CONFIRMED"
    # the second order's promise counts the first among the store's orders in flight
    _same(
        quick, generic, *[(generic.json()[f], quick.json()[f]) for f in ("order_id", "promised_at")]
    )


async def test_a_replay_and_the_refusals_are_fastapis(city, app, client):
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    other = await login(client, "customer.002", DEMO_SECRETS[Role.CUSTOMER])
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    (sku,) = stocked_skus(city.database_url, STORE, 1, at_least=10)
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    line = f"/v1/carts/{cart['cart_id']}/lines/{sku}"
    assert (await client.put(line, json={"quantity": 1}, headers=headers)).status_code == 200
    checkout = f"/v1/carts/{cart['cart_id']}/checkout"
    key = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    paid = await client.post(checkout, json=ADDRESS, headers=key)
    assert paid.status_code == 201
    empty = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    fresh = {"Idempotency-Key": "fresh"}  # a new key each time asked
    asks: list[tuple[Send, str, dict[str, Any], dict[str, str], int]] = [
        (client.post, checkout, ADDRESS, key, 201),  # the replay
        (client.post, checkout, {"address": {}}, key, 422),  # the key with another body
        (client.put, line, {"quantity": 1}, headers, 409),  # checked out
        (client.put, line, {"quantity": 1}, other, 404),  # not theirs
        (client.put, line, {"quantity": 1}, picker, 403),
        (client.put, line, {"quantity": 1}, {}, 401),
        (client.put, line, {"quantity": 1}, {"Authorization": "Bearer forged"}, 401),
        (client.put, line, {"quantity": -1}, headers, 422),
        (client.put, line, {"quantity": "many"}, {}, 401),  # the token before the body
        (client.put, line.replace(sku, "no such sku!"), {"quantity": 1}, headers, 422),
        (client.put, line.replace(cart["cart_id"], "7"), {"quantity": 1}, headers, 422),
        (client.post, "/v1/carts", {"store_id": "NOPE"}, headers, 404),
        (client.post, "/v1/carts", {}, headers, 422),
        (client.post, "/v1/carts", {"store_id": STORE}, picker, 403),
        (
            client.post,
            checkout.replace(cart["cart_id"], empty["cart_id"]),
            ADDRESS,
            {**headers, **fresh},
            422,
        ),
        (client.post, checkout, ADDRESS, headers, 422),  # no Idempotency-Key
        (client.post, checkout, ADDRESS, {**other, **fresh}, 404),
        (client.post, checkout, ADDRESS, fresh, 401),
    ]
    for method, url, body, sent, status in asks:
        quick, generic = await _both(app, _asking(method, url, body, sent))
        assert quick.status_code == status, (url, body, quick.text)
        _same(quick, generic)
    replay = await client.post(checkout, json=ADDRESS, headers=key)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == paid.json()


async def test_a_bad_token_is_refused_before_the_address_limit_counts(city, app, client):
    resources_of(app).settings.cart_checkout_limit_per_address = "1/minute"
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    url = f"/v1/carts/{uuid.uuid4()}/checkout"
    forged = {"Authorization": "Bearer forged", "Idempotency-Key": "k"}
    assert (await client.post(url, json=ADDRESS, headers=forged)).status_code == 401
    first = await client.post(url, json=ADDRESS, headers={**headers, "Idempotency-Key": "a"})
    assert first.status_code == 404  # counted, then no such cart
    limited = await client.post(url, json=ADDRESS, headers={**headers, "Idempotency-Key": "b"})
    assert limited.status_code == 429 and "checkout ip" in limited.json()["detail"]
    assert (await client.post(url, json=ADDRESS, headers=forged)).status_code == 401
