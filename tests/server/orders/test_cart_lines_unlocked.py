"""A cart's line changes take no lock (issue 17 point 4): they race the cart's checkout and
its store switch in Redis alone, and read the cart from this process's copy.

What must hold: a checkout bills exactly the hold it moves (a line changed after it read
the hold makes it read again, once), a change after the move is refused, a copy of the
cart behind its row (another process checked it out or moved it) is never acted on, and
the books balance. The stack's engine stands for another process: its copies of carts
are its own (they are kept by engine)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from server.app import create_app
from server.identity.models import User
from server.inventory import engine, journal
from server.inventory.errors import HoldChanged
from server.inventory.reconcile import find_drift, repairs_asked
from server.kit import keys
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from server.kit.errors import Conflict, InProgress
from server.kit.resources import resources_of
from server.orders import cart as carts
from server.orders import cart_checkout, flows
from server.orders.flows import CheckoutPlaced, Purchase
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.schemas.orders import DeliveryAddress
from tests.conftest import LiveServer, Stack
from tests.helpers import ThreadedServer, another_store, driver_statements, login, stocked_skus
from tests.server.inventory.helpers import pg_stock, reservation_rows

STORE = "BLR-KOR"
CUSTOMER = "customer.001"
ADDRESS = DeliveryAddress(line1="4th Cross, 5th Block", lat=12.9352, lng=77.6245)
DEADLINE_S = 60


async def _user(stack: Stack) -> User:
    async with transaction(stack.sessions) as session:
        return (await session.exec(select(User).where(User.login == CUSTOMER))).one()


async def _set_line(stack: Stack, user: User, cart_id: uuid.UUID, sku: str, qty: int):
    """A line change as a request of the process the stack's engine stands for."""
    async with transaction(stack.sessions) as session:
        return await carts.set_line(
            session,
            stack.redis,
            cart_id=cart_id,
            user=user,
            sku_id=sku,
            quantity=qty,
            now=stack.clock.now(),
            hold_s=600,
        )


def _lines(hold: Mapping[Any, Any]) -> dict[str, int]:
    """A hold's lines as Redis keeps them (its meta fields start with an underscore)."""
    return {str(k): int(v) for k, v in hold.items() if not str(k).startswith("_")}


async def test_a_line_change_of_a_cart_this_process_knows_sends_no_statement(
    city, app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
    a, b = stocked_skus(city.database_url, STORE, 2, at_least=5)
    # a running server has the store's stock loaded and its catalogue read
    for _ in range(2):
        made = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
        url = f"/v1/carts/{made['cart_id']}/lines"
        r = await client.put(f"{url}/{b}", json={"quantity": 1}, headers=headers)
        assert r.status_code == 200, r.text
    made = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    url = f"/v1/carts/{made['cart_id']}/lines"
    with driver_statements(commands=True) as seen:
        r = await client.put(f"{url}/{a}", json={"quantity": 2}, headers=headers)
    assert r.status_code == 200, r.text
    assert seen == []
    # a cart another process made: its first line change reads the row, and locks nothing
    async with transaction(resources_of(app).sessions) as session:
        carts.forget_cart(session, uuid.UUID(made["cart_id"]))
    with driver_statements(commands=True) as seen:
        r = await client.put(f"{url}/{b}", json={"quantity": 1}, headers=headers)
    assert r.status_code == 200, r.text
    sent = [s for s in seen if s.split()[0] not in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert len(sent) == 1 and sent[0].startswith("SELECT") and "FOR UPDATE" not in sent[0]
    assert {ln["sku_id"]: ln["quantity"] for ln in r.json()["lines"]} == {a: 2, b: 1}


class _ChangedAfterRead(cart_checkout.CartSource):
    """A checkout's source whose cart gets a line change from another request after the
    checkout read the hold, before it moves it (and again after each new read when
    ``every_read``)."""

    def __init__(
        self,
        stack: Stack,
        user: User,
        cart_id: uuid.UUID,
        changes: list[tuple[str, int]],
        every_read: bool,
    ) -> None:
        super().__init__(
            stack.redis, user=user, cart_id=cart_id, soft_hold_s=600, retention_s=86_400
        )
        self._stack, self._changes = stack, changes
        self._changer, self._changed = user, cart_id  # another request of the customer
        self._every_read = every_read

    async def _change(self) -> None:
        if self._changes:
            sku, qty = self._changes.pop(0)
            await _set_line(self._stack, self._changer, self._changed, sku, qty)

    async def open(self, session, *, now: datetime) -> Purchase:
        purchase = await super().open(session, now=now)
        await self._change()
        return purchase

    async def reprice(self, session, *, now: datetime) -> Purchase:
        purchase = await super().reprice(session, now=now)
        if self._every_read:
            await self._change()
        return purchase


async def _checkout(app: FastAPI, stack: Stack, user: User, source: cart_checkout.CartSource):
    resources = resources_of(app)
    return await flows.checkout(
        resources.sessions,
        stack.redis,
        source=source,
        gateway=resources.payments,
        settings=resources.settings,
        user=user,
        address=ADDRESS,
        order_id=uuid.uuid4(),
        now=stack.clock.now(),
    )


async def test_a_checkout_bills_a_line_that_changed_after_it_read_the_cart(
    stack: Stack, app: FastAPI
) -> None:
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=5)
    user = await _user(stack)
    cart = await _made_cart(stack, user)
    await _set_line(stack, user, cart, a, 2)
    source = _ChangedAfterRead(stack, user, cart, [(b, 1)], every_read=False)
    outcome = await _checkout(app, stack, user, source)
    assert isinstance(outcome, CheckoutPlaced) and outcome.order.status == "CONFIRMED"
    items = {i.sku_id: i.quantity for i in outcome.order.items}
    assert items == {a: 2, b: 1}  # read again after the change: b is billed, not moved free
    priced = sum(i.unit_price_paise * i.quantity for i in outcome.order.items)
    assert outcome.order.subtotal_paise == priced
    order = str(outcome.order.order_id)
    await journal.drain(stack.engine, stack.redis, STORE)
    assert reservation_rows(stack.database_url, STORE, order) == {
        a: (2, "COMMITTED"),
        b: (1, "COMMITTED"),
    }
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_cart_changing_under_each_read_is_refused_and_nothing_moves(
    stack: Stack, app: FastAPI
) -> None:
    a, b, c = stocked_skus(stack.database_url, STORE, 3, at_least=5)
    user = await _user(stack)
    cart = await _made_cart(stack, user)
    await _set_line(stack, user, cart, a, 2)
    await journal.drain(stack.engine, stack.redis, STORE)
    before = {s: pg_stock(stack.database_url, STORE, s) for s in (a, b, c)}
    source = _ChangedAfterRead(stack, user, cart, [(b, 1), (c, 1)], every_read=True)
    with pytest.raises(HoldChanged) as refused:
        await _checkout(app, stack, user, source)
    assert refused.value.status == 409 and refused.value.code == "hold_changed"
    assert "changed while they were being bought" in refused.value.detail
    # the cart is the customer's as the changes left it; no order took anything
    hold = await stack.redis.hgetall(keys.hold(STORE, str(cart)))
    assert hold["_state"] == "SOFT" and _lines(hold) == {a: 2, b: 1, c: 1}
    async with transaction(stack.sessions) as session:
        again = await carts.read_cart(session, cart_id=cart, user=user, fresh=True)
    assert again.status == "ACTIVE"
    await journal.drain(stack.engine, stack.redis, STORE)
    assert {s: pg_stock(stack.database_url, STORE, s)[:2] for s in (a, b, c)} == {
        s: (before[s][0] - q, before[s][1] + q) for s, q in {a: 0, b: 1, c: 1}.items()
    }
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def _made_cart(stack: Stack, user: User, store: str = STORE) -> uuid.UUID:
    async with transaction(stack.sessions) as session:
        made = await carts.create_cart(session, user=user, store_id=store, now=stack.clock.now())
    return made.cart_id


async def test_a_copy_of_a_cart_checked_out_elsewhere_is_not_acted_on(
    stack: Stack, app: FastAPI, client: httpx.AsyncClient
) -> None:
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=5)
    user = await _user(stack)
    cart = await _made_cart(stack, user)  # the stack's process keeps its copy: ACTIVE
    await _set_line(stack, user, cart, a, 1)
    headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
    r = await client.post(
        f"/v1/carts/{cart}/checkout",
        json={"address": ADDRESS.model_dump()},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    order = r.json()["order_id"]
    # the checkout's MOVED mark outlives any process's copy of the cart (the copy says
    # ACTIVE for up to CART_MAX_AGE_S; the mark is what refuses it meanwhile)
    assert await stack.redis.ttl(keys.hold(STORE, str(cart))) > carts.CART_MAX_AGE_S
    before = pg_stock(stack.database_url, STORE, b)
    with pytest.raises(Conflict) as refused:
        await _set_line(stack, user, cart, b, 1)
    assert refused.value.code == "cart_checked_out"
    assert pg_stock(stack.database_url, STORE, b) == before
    assert not _lines(await stack.redis.hgetall(keys.hold(STORE, str(cart))))
    await journal.drain(stack.engine, stack.redis, STORE)
    assert reservation_rows(stack.database_url, STORE, order) == {a: (1, "COMMITTED")}


async def test_a_change_meeting_a_checkout_under_way_is_told_to_retry(stack: Stack) -> None:
    """The hold moved to an order whose checkout has not committed (or died): the row
    says ACTIVE, the hold's key MOVED. The change is refused for now, nothing moves, and
    the reconciler is asked to look at the store (a dead checkout's hold goes back)."""
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=5)
    user = await _user(stack)
    cart = await _made_cart(stack, user)
    await _set_line(stack, user, cart, a, 1)
    moved = await engine.reserve(
        stack.redis,
        store_id=STORE,
        holder=str(cart),
        lines={a: 1},
        mode="HARD",
        expires_at=stack.clock.now().timestamp() + 600,
        now=stack.clock.now().timestamp(),
        new_holder=str(uuid.uuid4()),
    )
    assert moved.previous_state == "SOFT"
    before = await stack.redis.hgetall(keys.inventory(STORE, b))
    with pytest.raises(InProgress) as refused:
        await _set_line(stack, user, cart, b, 1)
    assert refused.value.code == "request_in_progress" and "under way" in refused.value.detail
    assert await stack.redis.hgetall(keys.inventory(STORE, b)) == before
    assert (await stack.redis.hgetall(keys.hold(STORE, str(cart))))["_state"] == "MOVED"
    assert await repairs_asked(stack.redis) == [STORE]


@pytest.mark.parametrize("held_before", [False, True])
async def test_a_copy_naming_the_store_a_cart_left_holds_at_its_new_store(
    stack: Stack, client: httpx.AsyncClient, held_before: bool
) -> None:
    other = another_store(stack.database_url, STORE)
    (sku,) = stocked_skus(stack.database_url, STORE, 1, at_least=5, also_at=other)
    user = await _user(stack)
    cart = await _made_cart(stack, user)  # the stack's process keeps its copy: at STORE
    if held_before:
        await _set_line(stack, user, cart, sku, 1)
    headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
    r = await client.patch(f"/v1/carts/{cart}", json={"store_id": other}, headers=headers)
    assert r.status_code == 200 and r.json()["store_id"] == other, r.text
    # the tombstone the cart left outlives any process's copy naming this store
    assert await stack.redis.ttl(keys.hold(STORE, str(cart))) > carts.CART_MAX_AGE_S
    at_store = pg_stock(stack.database_url, STORE, sku)
    moved, held = await _set_line(stack, user, cart, sku, 2)
    assert moved.store_id == other and held[0] == {sku: 2}
    assert _lines(await stack.redis.hgetall(keys.hold(other, str(cart)))) == {sku: 2}
    assert not _lines(await stack.redis.hgetall(keys.hold(STORE, str(cart))))
    assert pg_stock(stack.database_url, STORE, sku) == at_store
    # and back: the line comes with it, over the tombstone the cart left here
    r = await client.patch(f"/v1/carts/{cart}", json={"store_id": STORE}, headers=headers)
    assert r.status_code == 200 and r.json()["dropped"] == [], r.text
    assert {ln["sku_id"]: ln["quantity"] for ln in r.json()["lines"]} == {sku: 2}
    await journal.drain(stack.engine, stack.redis, STORE)
    await journal.drain(stack.engine, stack.redis, other)
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    assert await find_drift(stack.engine, stack.redis, other) == []


@pytest.fixture
def small_pool_server(stack: Stack, settings: Settings, clock: Clock) -> Iterator[LiveServer]:
    """The app under uvicorn with six database connections at most."""
    small = settings.model_copy(update={"db_pool_size": 4, "db_max_overflow": 2})
    server = ThreadedServer(lambda: create_app(small, clock=clock))
    server.start()
    yield LiveServer(url=server.url, app=server.app, clock=clock)
    server.stop()


async def test_line_changes_racing_a_checkout_over_http_bill_what_moved(
    stack: Stack, small_pool_server: LiveServer
) -> None:
    """Twelve clients of one customer change the cart's lines while it is checked out
    (more at once than the pool's six connections): every answer is a cart or a problem,
    the order bills exactly what its hold took, nothing stays held for the cart, and the
    books balance."""
    skus = stocked_skus(stack.database_url, STORE, 3, at_least=40)
    before = {s: pg_stock(stack.database_url, STORE, s) for s in skus}
    async with small_pool_server.client() as client:
        headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
        made = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
        cart = made.json()["cart_id"]
        url = f"/v1/carts/{cart}/lines"
        first = await client.put(f"{url}/{skus[0]}", json={"quantity": 1}, headers=headers)
        assert first.status_code == 200, first.text
        answers: list[httpx.Response] = []
        changing = asyncio.Event()  # a change landed: the checkout starts among them

        async def change_lines(n: int) -> None:
            for i in range(8):
                sku = skus[(n + i) % len(skus)]
                answer = await client.put(
                    f"{url}/{sku}", json={"quantity": (n + i) % 3 + 1}, headers=headers
                )
                answers.append(answer)
                if answer.status_code == 200:
                    changing.set()

        async def check_out() -> httpx.Response:
            await asyncio.wait_for(changing.wait(), DEADLINE_S)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_S
            while True:
                r = await client.post(
                    f"/v1/carts/{cart}/checkout",
                    json={"address": ADDRESS.model_dump()},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                retry = r.status_code in (409, 503) and r.json()["code"] in (
                    "hold_changed",
                    "request_in_progress",
                    "database_busy",
                )
                if not retry or loop.time() > deadline:
                    return r

        changers = [asyncio.create_task(change_lines(n)) for n in range(12)]
        paid = await check_out()
        await asyncio.gather(*changers)
    assert paid.status_code == 201 and paid.json()["status"] == "CONFIRMED", paid.text
    for r in answers:
        assert r.status_code in (200, 409, 503), (r.status_code, r.text)
        if r.status_code != 200:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
    assert any(r.status_code == 200 for r in answers)
    order = paid.json()["order_id"]
    billed = {i["sku_id"]: i["quantity"] for i in paid.json()["items"]}
    await journal.drain(stack.engine, stack.redis, STORE)
    assert reservation_rows(stack.database_url, STORE, order) == {
        s: (q, "COMMITTED") for s, q in billed.items()
    }
    assert not _lines(await stack.redis.hgetall(keys.hold(STORE, cart)))
    assert all(st != "SOFT" for _, st in reservation_rows(stack.database_url, STORE, cart).values())
    for s in skus:  # every unit is on the shelf, or left with the order
        available, reserved, *_ = pg_stock(stack.database_url, STORE, s)
        assert (available, reserved) == (before[s][0] - billed.get(s, 0), before[s][1])
    assert await find_drift(stack.engine, stack.redis, STORE) == []
