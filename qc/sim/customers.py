"""Customers: orders arrive at the city's rate for the time of day; each is one person
finding a store, filling a cart, paying (or not), and following the order to the door,
answering the store when it asks about a short line (most take the offered substitute)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import uuid
from collections.abc import Coroutine
from typing import Any, Literal

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qc.sim import demand
from qc.sim.world import Login, World
from shared.aio import cancel_and_wait
from shared.client import ApiError, ConnectionLost, CustomerClient
from shared.enums import OrderStatus
from shared.geo import LatLng, destination
from shared.schemas.catalog import ProductCard
from shared.schemas.orders import DeliveryAddress

CATALOGUE_TTL_S = 600.0  # how long the app keeps a category list (simulated seconds)
HOME_SIGMA_M = 1100.0  # where customers live around a store (see Customers._home)
HOME_MAX_M = 2900.0
STREETS = (
    "80 Feet Road",
    "1st Main",
    "4th Cross",
    "17th Main",
    "Double Road",
    "100 Feet Road",
    "Outer Ring Road",
    "5th Block",
)
TRACKED_UNTIL = frozenset({OrderStatus.DELIVERED.value, OrderStatus.CANCELLED.value})
WITH_OTP = frozenset({OrderStatus.DISPATCHED.value, OrderStatus.OUT_FOR_DELIVERY.value})


class Customers:
    """The city's customers: the arrival process and one task per shopping trip."""

    def __init__(self, world: World, logins: list[Login[CustomerClient]]) -> None:
        self.world = world
        self.logins = logins
        self.rng = world.rng("customers")
        self.journeys: set[asyncio.Task[None]] = set()
        self._next = 0

    async def resume(self) -> None:
        """Customers who still wait for orders from an earlier run follow them again."""
        for login in self.logins:
            try:
                client = await login.fresh(self.world.clock)
                page = await client.orders(limit=20)
            except (ApiError, ConnectionLost) as exc:
                self.world.error("customer", exc)
                continue
            for order in page.items:
                if order.status not in TRACKED_UNTIL:
                    order_id = str(order.order_id)
                    rng = self.world.rng(f"answers:{order_id}")  # the arrivals' stream untouched
                    self._spawn(self._track(client, order_id, rng))

    async def run(self) -> None:
        """Poisson arrivals at ``orders_per_minute`` x the hour's profile (simulated)."""
        world = self.world
        while True:
            rate = world.config.orders_per_minute * demand.hourly_profile(world.local_hour())
            gap = self.rng.expovariate(rate / 60.0) if rate > 0 else math.inf
            if gap > 300:  # a quiet hour: look again in five minutes
                await world.sleep(300)
                continue
            await world.sleep(gap)
            if len(self.journeys) >= world.config.max_concurrent_journeys:
                world.count("arrivals_turned_away")  # the city is saturated
                continue
            login = self.logins[self._next % len(self.logins)]
            self._next += 1
            rng = random.Random(self.rng.getrandbits(64))
            self._spawn(self._journey(login, rng))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.journeys.add(task)
        task.add_done_callback(self.journeys.discard)

    async def stop(self) -> set[asyncio.Task[None]]:
        """End every journey; returns those that would not end."""
        return await cancel_and_wait(list(self.journeys))

    # --- one shopping trip -------------------------------------------------------------
    def _home(self, rng: random.Random) -> LatLng:
        """Somewhere around a store, denser near it as a real catchment (the deterministic
        simulation's: Rayleigh with sigma 1.1 km, within 2.9 km; p50 ~1.3 km)."""
        store = rng.choice(list(self.world.stores.values()))
        while True:
            r = HOME_SIGMA_M * math.sqrt(-2 * math.log(1 - rng.random()))
            if r <= HOME_MAX_M:
                return destination(LatLng(store.lat, store.lng), rng.uniform(0, 360), r)

    async def _cards(
        self, client: CustomerClient, store_id: str, category: str
    ) -> list[ProductCard]:
        world = self.world
        cached = world.catalogue.get((store_id, category))
        if cached and world.now() - cached[0] < CATALOGUE_TTL_S:
            return cached[1]
        cards: list[ProductCard] = []
        cursor = None
        while True:
            page = await client.products(store_id, category=category, limit=100, cursor=cursor)
            cards += page.items
            cursor = page.next_cursor
            if cursor is None or len(cards) >= 400:
                break
        world.catalogue[(store_id, category)] = (world.now(), cards)
        return cards

    async def _journey(self, login: Login[CustomerClient], rng: random.Random) -> None:
        world = self.world
        world.count("sessions")
        try:
            client = await login.fresh(world.clock)
            home = self._home(rng)
            try:
                selection = await client.serviceable_stores(home.lat, home.lng)
            except ApiError as exc:
                if exc.code in ("not_serviceable", "store_closed"):
                    world.count(exc.code)
                    return
                raise
            store_id = selection.stores[0].store_id
            if store_id not in world.stores:
                world.count("unknown_store")
                return
            order_id = await self._shop(client, rng, store_id, home)
            if order_id is not None:
                await self._track(client, order_id, rng)
        except Exception as exc:  # one unlucky customer; the city goes on
            world.error("customer", exc)

    async def _shop(
        self, client: CustomerClient, rng: random.Random, store_id: str, home: LatLng
    ) -> str | None:
        world = self.world
        basket, wants = demand.choose_basket(rng, world.local_hour())
        world.count(f"basket:{basket}")
        cart = await client.create_cart(store_id)
        in_cart: set[str] = set()
        for want in wants:
            await world.sleep(rng.uniform(8, 30))  # browsing
            cards = await self._cards(client, store_id, want.category)
            for _attempt in range(2):
                card = demand.pick_product(
                    rng, cards, want, seed=world.config.seed, exclude=in_cart
                )
                if card is None:
                    world.count("nothing_in_stock")
                    break
                try:
                    qty = demand.quantity(rng, want, card.available_qty)
                    cart = await client.set_cart_line(cart.cart_id, card.sku_id, quantity=qty)
                    in_cart.add(card.sku_id)
                    break
                except ApiError as exc:
                    if exc.code != "insufficient_stock":
                        raise
                    world.count("out_of_stock_seen")  # the list was a little stale
                    in_cart.add(card.sku_id)  # not that one again
        if not cart.lines:
            world.count("empty_carts")
            return None
        if rng.random() < world.config.abandon_rate:
            world.count("carts_abandoned")  # the soft holds run out; the sweeper frees them
            return None
        await world.sleep(rng.uniform(10, 40))  # address, payment method
        address = DeliveryAddress(
            line1=f"{rng.randint(1, 400)}, {rng.choice(STREETS)}",
            landmark=rng.choice([None, "near the temple", "opposite the park", "above a bakery"]),
            lat=round(home.lat, 6),
            lng=round(home.lng, 6),
        )
        key = uuid.uuid4().hex
        method = rng.choices(["upi", "card", "wallet"], [7, 2, 1])[0]
        for attempt in range(3):
            try:
                order = await client.checkout(
                    cart.cart_id, address=address, payment_method=method, idempotency_key=key
                )
                break
            except ApiError as exc:
                if exc.code == "payment_failed":
                    world.count("payments_declined")
                    return None
                if exc.code in ("payment_unavailable", "inventory_loading") and attempt < 2:
                    world.count(f"checkout_retried:{exc.code}")
                    await world.sleep(30)
                    continue
                if exc.code in (
                    "cart_expired",
                    "insufficient_stock",
                    "not_serviceable",
                    "store_closed",
                ):
                    world.count(f"checkout_refused:{exc.code}")
                    return None
                raise
        else:  # pragma: no cover - the loop always breaks or returns
            return None
        world.count("orders_paid")
        order_id = str(order.order_id)
        world.bells[store_id].ring()
        if rng.random() < world.config.customer_cancel_rate:
            await world.sleep(rng.uniform(5, 40))
            try:
                await client.cancel_order(order_id, reason="ordered by mistake")
                world.count("cancelled_by_customer")
                return None
            except ApiError as exc:
                if exc.code != "too_late_to_cancel":
                    raise
                world.count("cancel_too_late")
        return order_id

    async def _track(self, client: CustomerClient, order_id: str, rng: random.Random) -> None:
        """Follow the order live; answer what the store asks; read the OTP once the rider
        has the bag."""
        asked = Substitutions(self.world, client, order_id, rng)
        try:
            await self._follow(client, order_id, asked)
        finally:
            await asked.close()

    async def _follow(self, client: CustomerClient, order_id: str, asked: Substitutions) -> None:
        world = self.world
        status = None
        while status not in TRACKED_UNTIL:
            try:
                status = await self._follow_socket(client, order_id, asked)
            except ConnectionClosed:
                # the server dropped the socket (a restart, a reader cut off as too far
                # behind, the end of a run): the app reconnects, as this loop does; not an
                # unexpected answer
                world.count("tracking_reconnects")
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                world.error("tracking", exc)
            if status in TRACKED_UNTIL:
                break
            # the socket dropped: look at the order, then listen again
            order = await client.order(order_id)
            status = order.status
            if order.delivery_otp:
                world.tell_otp(order_id, order.delivery_otp)
            if status not in TRACKED_UNTIL:
                await world.sleep(30)
        world.count(f"tracked:{status}")

    async def _follow_socket(
        self, client: CustomerClient, order_id: str, asked: Substitutions
    ) -> str | None:
        world = self.world
        status: str | None = None
        async with connect(
            client.order_socket_url(order_id), open_timeout=10, close_timeout=2
        ) as ws:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                otp = None
                if kind == "snapshot":
                    status = message["order"]["status"]
                    otp = message["order"].get("delivery_otp")
                    for offer in message["order"].get("substitutions", ()):
                        asked.offered(offer)  # one made while the socket was down
                elif kind == "order.status":
                    status = message.get("status")
                elif kind == "order.substitution_offered":
                    asked.offered(message)
                    continue
                elif kind == "error":
                    world.error("tracking", ApiError(0, "socket_refused", str(message)))
                    return None
                else:
                    continue  # rider positions and ETAs: the map in the app
                if status in WITH_OTP and otp is None and not world.otp(order_id).done():
                    otp = (await client.order(order_id)).delivery_otp
                if otp:
                    world.tell_otp(order_id, otp)
                if status in TRACKED_UNTIL:
                    with contextlib.suppress(Exception):
                        await ws.close()
                    return status
        return status


class Substitutions:
    """One order's substitution offers (store policy ask), answered as its customer would:
    the choice is drawn as an offer is seen (in the order offers come, so a seed gives the
    same choices), and each answer is sent after its think time by a task of its own, so
    the socket is read meanwhile."""

    def __init__(
        self, world: World, client: CustomerClient, order_id: str, rng: random.Random
    ) -> None:
        self.world = world
        self.client = client
        self.order_id = order_id
        self.rng = rng
        self._seen: set[str] = set()  # lines already decided (a snapshot repeats offers)
        self._answers: set[asyncio.Task[None]] = set()

    def offered(self, offer: dict[str, Any]) -> None:
        """An ``order.substitution_offered`` (or a pending offer in a snapshot)."""
        sku_id = offer["sku_id"]
        if offer["status"] != "PENDING" or sku_id in self._seen:
            return
        self._seen.add(sku_id)
        config, rng = self.world.config, self.rng
        draw = rng.random()
        if draw < config.substitution_silent_rate:
            self.world.count("substitution:not_answered")
            return
        answer: Literal["accept", "refuse"] = (
            "refuse"
            if draw < config.substitution_silent_rate + config.substitution_refuse_rate
            else "accept"
        )
        think = rng.lognormvariate(
            math.log(config.substitution_think_s), config.substitution_think_sigma
        )
        task = asyncio.create_task(self._answer(sku_id, answer, think))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, sku_id: str, answer: Literal["accept", "refuse"], think: float) -> None:
        world = self.world
        await world.sleep(think)
        try:
            await self.client.answer_substitution(self.order_id, sku_id, answer=answer)
        except ApiError as exc:
            if exc.code == "offer_closed":  # too late: the fallback (or a cancel) decided
                world.count("substitution:too_late")
            elif exc.code == "insufficient_stock":  # sold out meanwhile: the fallback decides
                world.count("substitution:sold_out")
            else:
                world.error("substitution", exc)
            return
        except Exception as exc:  # one unlucky answer; the order goes on
            world.error("substitution", exc)
            return
        world.count("substitution:accepted" if answer == "accept" else "substitution:refused")

    async def close(self) -> None:
        """The order is followed no longer (delivered, or the end of the run)."""
        await cancel_and_wait(list(self._answers))
