"""What the simulated people share outside the API: the clock, the physical world.

The API is the only way anyone acts on the business. What passes between people directly
is physical or spoken: bags left on a store's dispatch shelf for the rider, the OTP the
customer reads out at the door, the chime of a store terminal when an order lands.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

import httpx

from qc.sim.config import SimConfig
from server.kit.clock import Clock
from shared.aio import wait_event
from shared.client import ApiClient, ApiError
from shared.geo import LatLng, haversine_m
from shared.schemas.catalog import ProductCard
from shared.schemas.stores import StorePublic

log = logging.getLogger("qc.sim")


class Bell:
    """A store terminal's new-order chime: idle pickers wake up on it. ``rung`` counts the
    chimes, so a picker that looked at the queue before one rang does not wait for the
    next (the order landed while its look was on the way)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.rung = 0

    def ring(self) -> None:
        self.rung += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float, *, since: int) -> None:
        """Until a chime after the ``since``-th (at once if one came already)."""
        if self.rung == since:
            await wait_event(self._event, timeout_s)


class Shelf:
    """A store's dispatch shelf: packed bags by order, each labelled."""

    def __init__(self) -> None:
        self._bags: dict[str, str] = {}
        self._changed = asyncio.Condition()

    async def put(self, order_id: str, label: str) -> None:
        async with self._changed:
            self._bags[order_id] = label
            self._changed.notify_all()

    def put_nowait(self, order_id: str, label: str) -> None:
        self._bags[order_id] = label

    def has(self, order_ids: list[str]) -> bool:
        return all(o in self._bags for o in order_ids)

    async def wait_for(self, order_ids: list[str]) -> bool:
        async with self._changed:
            return await self._changed.wait_for(lambda: self.has(order_ids))

    def labels(self, order_ids: list[str]) -> list[str]:
        return [self._bags[o] for o in order_ids if o in self._bags]

    def remove(self, order_ids: list[str]) -> None:
        for o in order_ids:
            self._bags.pop(o, None)


C = TypeVar("C", bound=ApiClient)
LAG_SAMPLES = 20_000


@dataclass
class Login(Generic[C]):
    """A simulated person's sign-in and the client of their role."""

    login: str
    secret: str
    client: C
    expires_at: float = 0.0  # simulated unix time

    async def fresh(self, clock: Clock) -> C:
        """The client with a token good for at least another simulated hour."""
        if self.expires_at - clock.timestamp() < 3600:
            token = await self.client.login(self.login, self.secret)
            self.expires_at = token.expires_at.timestamp()
        return self.client


class SettlingTransport(httpx.AsyncBaseTransport):
    """HTTP for the simulated people: a request that was sent is carried to its answer
    even if the actor that sent it is cancelled at the end of the run. The server
    finishes such a request anyway (a checkout places its order), so the report must not
    be read before it has; ``World.settle`` waits for them."""

    def __init__(self, in_flight: set[asyncio.Task[httpx.Response]]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._in_flight = in_flight

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        task = asyncio.ensure_future(self._answer(request))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await asyncio.shield(task)

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        await response.aread()  # read here: an answer nobody waits for still frees its connection
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class World:
    base_url: str
    clock: Clock
    config: SimConfig
    stores: dict[str, StorePublic] = field(default_factory=dict)
    shelves: dict[str, Shelf] = field(default_factory=dict)
    bells: dict[str, Bell] = field(default_factory=dict)
    # the OTP each customer will read out at the door, by order id
    otps: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    # what the customer app keeps of a category list: (store, category) -> (time, cards)
    catalogue: dict[tuple[str, str], tuple[float, list[ProductCard]]] = field(default_factory=dict)
    # barcodes pickers have seen per store (a wrong scan grabs a neighbour's product)
    barcodes: dict[str, list[str]] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # requests sent and not yet answered, whoever sent them (see SettlingTransport)
    in_flight: set[asyncio.Task[httpx.Response]] = field(default_factory=set)
    # simulated seconds each of the last wake-ups came late (``sleep_until``)
    lag: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.config.timezone)

    def add_store(self, store: StorePublic) -> None:
        self.stores[store.store_id] = store
        self.shelves.setdefault(store.store_id, Shelf())
        self.bells.setdefault(store.store_id, Bell())
        self.barcodes.setdefault(store.store_id, [])

    def rng(self, name: str) -> random.Random:
        """An independent, reproducible random stream per actor."""
        return random.Random(f"{self.config.seed}:{name}")

    # --- time ------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.timestamp()

    def local(self) -> datetime:
        return self.clock.now().astimezone(self.tz)

    def local_hour(self) -> float:
        t = self.local()
        return t.hour + t.minute / 60 + t.second / 3600

    def real(self, sim_s: float) -> float:
        return max(0.0, sim_s) / self.clock.speed

    async def sleep(self, sim_s: float) -> None:
        await self.sleep_until(self.now() + sim_s)

    async def sleep_until(self, sim_ts: float) -> None:
        await asyncio.sleep(self.real(sim_ts - self.now()))
        # how late this actor woke: wall-clock lag (a busy machine) becomes simulated time
        self.lag.append(max(0.0, self.now() - sim_ts))
        del self.lag[:-LAG_SAMPLES]

    # --- the API -------------------------------------------------------------------------
    def client(self, kind: type[C], *, timeout: float = 30.0) -> C:
        """A ``kind`` (role) client whose requests settle (see ``SettlingTransport``)."""
        return kind(self.base_url, timeout=timeout, transport=SettlingTransport(self.in_flight))

    async def settle(self, timeout_s: float = 40.0) -> None:
        """Wait for every request already sent to be answered (or to fail)."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout_s)

    # --- between people ----------------------------------------------------------------
    def otp(self, order_id: str) -> asyncio.Future[str]:
        future = self.otps.get(order_id)
        if future is None:
            future = self.otps[order_id] = asyncio.get_running_loop().create_future()
        return future

    def tell_otp(self, order_id: str, otp: str) -> None:
        future = self.otp(order_id)
        if not future.done():
            future.set_result(otp)

    def nearest_store(self, here: LatLng) -> StorePublic:
        return min(self.stores.values(), key=lambda s: haversine_m(here, LatLng(s.lat, s.lng)))

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] += n

    def error(self, who: str, exc: BaseException) -> None:
        code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
        self.errors[f"{who}:{code}"] += 1
        log.debug("%s: %s", who, exc)
