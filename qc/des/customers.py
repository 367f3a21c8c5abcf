"""Customers: orders arrive on the day's curve (a Poisson process, thinned), each one a
person near a store who is served by the store the server selects, fills a cart (the
server's soft holds) and checks out (the server's checkout flow, payment included).

The baskets are the demo's (``qc.sim.demand``): what people buy at that time of day,
popular products more often, another product when one is out of stock.
"""

from __future__ import annotations

import inspect
import math
import random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import col, select

from qc.des.world import OrderRec, World
from qc.sim import demand
from server.identity.models import User
from server.inventory.errors import InsufficientStock, UnknownSku
from server.kit.db import transaction
from server.kit.errors import DomainError
from server.orders import cart as carts
from server.orders import cart_checkout
from server.orders.flows import CheckoutPlaced
from server.stores.selection import Candidate, select_stores
from shared.enums import Role
from shared.geo import LatLng, destination, haversine_m
from shared.schemas.orders import CheckoutRequest, DeliveryAddress

Product = tuple[str, str]  # sku, name


class Customers:
    def __init__(self, world: World, on_confirmed: Callable[[OrderRec], None]) -> None:
        self.world = world
        self.on_confirmed = on_confirmed
        self.rng = world.rng("arrivals")
        self.people: list[User] = []
        self.products: dict[str, list[Product]] = {}
        self.tz = ZoneInfo(world.config.timezone)
        self.end = 0.0
        self.peak = 0.0
        self.n = 0
        # the serviceability lever, where the server has it
        params = inspect.signature(select_stores).parameters
        self._levers: dict[str, Any] = {}
        if "dynamic" in params:
            self._levers["dynamic"] = world.settings.serviceability_dynamic
        if "promise_s" in params and hasattr(world.settings, "serviceability_promise_s"):
            self._levers["promise_s"] = world.settings.serviceability_promise_s

    async def load(self) -> None:
        async with self.world.sessions() as session:
            self.people = list(
                (
                    await session.exec(
                        select(User).where(User.role == Role.CUSTOMER).order_by(col(User.login))
                    )
                ).all()
            )
            rows = await session.execute(
                text(
                    "SELECT category_id, sku_id, name FROM products WHERE is_active "
                    "ORDER BY category_id, sku_id"
                )
            )
            for category, sku, name in rows:
                self.products.setdefault(category, []).append((sku, name))

    def local_hour(self, t: float) -> float:
        local = datetime.fromtimestamp(t, tz=self.tz)
        return local.hour + local.minute / 60 + local.second / 3600

    def start(self, end: float) -> None:
        """Arrivals from now until ``end`` (simulated Unix time)."""
        self.end = end
        config = self.world.config
        self.peak = (
            max(config.city_rate_per_hour(h, wd) for h in range(24) for wd in config.weekdays())
            / 3600
        )
        self._next(self.world.now())

    def _next(self, t: float) -> None:
        """Thinning: candidate arrivals at the peak rate, kept with rate(t)/peak."""
        while True:
            t += self.rng.expovariate(self.peak)
            if t >= self.end:
                return
            weekday = datetime.fromtimestamp(t, tz=self.tz).weekday()
            rate = self.world.config.city_rate_per_hour(self.local_hour(t), weekday) / 3600
            if self.rng.random() * self.peak < rate:
                break
        person = random.Random(self.rng.getrandbits(64))
        self.world.at(t, lambda: self._arrive(person))

    def _home(self, rng: random.Random) -> LatLng:
        """Around a store, denser near it: Rayleigh distance, capped at the radius."""
        physics = self.world.config.physics
        store = rng.choice(sorted(self.world.stores))
        centre = self.world.stores[store].at
        while True:
            r = physics.customer_sigma_m * math.sqrt(-2 * math.log(1 - rng.random()))
            if r <= physics.customer_max_m:
                return destination(centre, rng.uniform(0, 360), r)

    def _choose(self, rng: random.Random, want: demand.Want, exclude: set[str]) -> str | None:
        stocked = [p for p in self.products.get(want.category, []) if p[0] not in exclude]
        if want.keyword:
            matching = [p for p in stocked if want.keyword.lower() in p[1].lower()]
            stocked = matching or stocked
        if not stocked:
            return None
        weights = [demand.popularity(self.world.config.seed, p[0]) + 0.01 for p in stocked]
        return rng.choices(stocked, weights=weights)[0][0]

    async def _arrive(self, rng: random.Random) -> None:
        world = self.world
        self._next(world.now())
        world.count("arrivals")
        world.count_hour("arrivals")
        now = world.clock.now()
        home = self._home(rng)
        user = self.people[self.n % len(self.people)]
        self.n += 1
        async with transaction(world.sessions) as session:
            serving = await select_stores(
                session, world.redis, point=home, now=now, use_cache=False, **self._levers
            )
        known = [c for c in serving if c.store_id in world.stores]
        if not known:
            world.count("not_serviceable")
            world.count_hour("refused")
            return
        chosen = known[0]
        _, wants = demand.choose_basket(rng, self.local_hour(world.now()))
        async with transaction(world.sessions) as session:
            cart = await carts.create_cart(session, user=user, store_id=chosen.store_id, now=now)
            held: set[str] = set()
            for want in wants:
                for _attempt in range(2):
                    sku = self._choose(rng, want, held)
                    if sku is None:
                        break
                    held.add(sku)
                    try:
                        await carts.set_line(
                            session,
                            world.redis,
                            cart_id=cart.cart_id,
                            user=user,
                            sku_id=sku,
                            quantity=demand.quantity(rng, want, 99),
                            now=now,
                            hold_s=world.settings.soft_hold_s,
                        )
                        break
                    except (InsufficientStock, UnknownSku):
                        world.count("out_of_stock_seen")
            cart_id = cart.cart_id
        browse = rng.uniform(10, 40)  # address, payment method
        world.at(world.now() + browse, lambda: self._checkout(rng, user, cart_id, chosen, home))

    async def _checkout(
        self, rng: random.Random, user: User, cart_id: uuid.UUID, chosen: Candidate, home: LatLng
    ) -> None:
        world = self.world
        await world.write_journal([chosen.store_id])
        now = world.clock.now()
        order_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        body = CheckoutRequest(
            address=DeliveryAddress(
                line1=f"{rng.randint(1, 400)}, 4th Cross",
                lat=round(home.lat, 6),
                lng=round(home.lng, 6),
            ),
            payment_method=rng.choices(["upi", "card", "wallet"], [7, 2, 1])[0],
        )
        try:
            outcome = await cart_checkout.checkout(
                world.sessions,
                world.redis,
                gateway=world.gateway,
                settings=world.settings,
                user=user,
                cart_id=cart_id,
                body=body,
                order_id=order_id,
                now=now,
            )
        except DomainError as exc:
            world.count(f"checkout_refused:{exc.code}")
            if exc.code == "not_serviceable":
                world.count_hour("refused")
            return
        if not isinstance(outcome, CheckoutPlaced):
            world.count("payments_declined")
            return
        store = world.stores[chosen.store_id]
        rec = OrderRec(
            order_id=order_id,
            store_id=chosen.store_id,
            placed=world.now(),
            promised_s=chosen.eta_min * 60,
            drop=home,
            distance_m=haversine_m(store.at, home),
            lines=len(outcome.order.items) if hasattr(outcome.order, "items") else 0,
        )
        world.orders[order_id] = rec
        world.count("orders_confirmed")
        self.on_confirmed(rec)
