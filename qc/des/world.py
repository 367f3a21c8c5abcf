"""The event queue and what the simulated people share: the clock, the stores, the
riders' and pickers' own state, and what the report needs that the database does not keep.

Simulated time jumps from one event to the next (a heap ordered by time, then by the
order events were scheduled); an event is one await of the server's own code, processed
alone, so nothing depends on how fast the machine is.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from qc.des.config import DesConfig
from server.identity.models import User
from server.kit.clock import ManualClock
from server.kit.config import Settings
from server.payments.gateway import PaymentGateway
from shared.geo import LatLng, haversine_m, interpolate

Action = Callable[[], Awaitable[None]]


@dataclass
class OrderRec:
    """What the simulation saw of one order (the database keeps the rest)."""

    order_id: uuid.UUID
    store_id: str
    placed: float
    promised_s: float | None  # the ETA shown at checkout (store selection's eta_min)
    drop: LatLng
    distance_m: float
    lines: int = 0
    pick_s: float | None = None
    rider_at_store: float | None = None
    at_door: float | None = None


@dataclass
class Move:
    """A ride in progress: straight-line interpolation along a road-factor-longer route."""

    start: LatLng
    end: LatLng
    t0: float
    t1: float

    def at(self, t: float) -> LatLng:
        if t >= self.t1 or self.t1 <= self.t0:
            return self.end
        if t <= self.t0:
            return self.start
        return interpolate(self.start, self.end, (t - self.t0) / (self.t1 - self.t0))


@dataclass
class Worker:
    """Time on shift and time busy, for utilisation."""

    on_shift: bool = False
    leaving: bool = False
    shift_since: float = 0.0
    shift_s: float = 0.0
    busy_since: float | None = None
    busy_s: float = 0.0

    def start_shift(self, t: float) -> None:
        self.on_shift, self.leaving, self.shift_since = True, False, t

    def end_shift(self, t: float) -> None:
        if self.on_shift:
            self.shift_s += t - self.shift_since
        self.on_shift, self.leaving = False, False

    def busy(self, t: float) -> None:
        if self.busy_since is None:
            self.busy_since = t

    def free(self, t: float) -> None:
        if self.busy_since is not None:
            self.busy_s += t - self.busy_since
            self.busy_since = None

    def close(self, t: float) -> None:
        self.free(t)
        self.end_shift(t)


@dataclass
class PickerSim(Worker):
    user: User | None = None
    store_id: str = ""
    index: int = 0
    phase_s: float = 0.0  # when polling: glances at phase + k x picker_poll_s
    task: uuid.UUID | None = None
    summoned: bool = False


@dataclass
class RiderSim(Worker):
    user: User | None = None
    home: str = ""
    index: int = 0
    phase_s: float = 0.0
    speed_mps: float = 5.0
    pos: LatLng = field(default_factory=lambda: LatLng(0.0, 0.0))
    move: Move | None = None
    # the rider's next trip (offered, accepted, at_store) and the trip on the road
    trip_id: uuid.UUID | None = None
    trip_state: str | None = None
    trip_orders: list[uuid.UUID] = field(default_factory=list)
    road: uuid.UUID | None = None
    version: int = 0  # bumped when plans change: events of an older plan are dropped
    last_fix: float = -math.inf

    def where(self, t: float) -> LatLng:
        return self.move.at(t) if self.move is not None else self.pos


@dataclass
class StoreSim:
    store_id: str
    at: LatLng
    pickers: list[PickerSim] = field(default_factory=list)
    riders: list[RiderSim] = field(default_factory=list)
    waiting_tasks: int = 0
    unassigned: set[uuid.UUID] = field(default_factory=set)  # confirmed, no rider yet
    packed: set[uuid.UUID] = field(default_factory=set)
    open_orders: set[uuid.UUID] = field(default_factory=set)  # confirmed, not picked up
    riders_waiting: dict[uuid.UUID, RiderSim] = field(default_factory=dict)  # by trip
    dispatch_at: float | None = None


@dataclass
class World:
    config: DesConfig
    settings: Settings
    clock: ManualClock
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    gateway: PaymentGateway
    engine: AsyncEngine
    stores: dict[str, StoreSim] = field(default_factory=dict)
    riders: dict[uuid.UUID, RiderSim] = field(default_factory=dict)
    orders: dict[uuid.UUID, OrderRec] = field(default_factory=dict)
    trip_orders: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    by_hour: dict[int, Counter[str]] = field(default_factory=dict)  # local hour -> counts
    events: int = 0
    _queue: list[tuple[float, int, Action]] = field(default_factory=list)
    _seq: int = 0

    # --- randomness and time ------------------------------------------------------------
    def rng(self, name: str) -> random.Random:
        """An independent, reproducible stream per purpose."""
        return random.Random(f"{self.config.seed}:{name}")

    def now(self) -> float:
        return self.clock.timestamp()

    def at(self, t: float, action: Action) -> None:
        heapq.heappush(self._queue, (max(t, self.now()), self._seq, action))
        self._seq += 1

    async def run(self, until: float) -> None:
        """Process events in time order until none is left at or before ``until``."""
        while self._queue and self._queue[0][0] <= until:
            t, _, action = heapq.heappop(self._queue)
            self.clock.set(t)
            await action()
            self.events += 1

    def pending(self) -> int:
        return len(self._queue)

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] += n

    def local_hour(self, t: float) -> int:
        return datetime.fromtimestamp(t, tz=ZoneInfo(self.config.timezone)).hour

    def count_hour(self, what: str) -> None:
        """Demand and refusals by the local hour they happened in (the hourly table)."""
        self.by_hour.setdefault(self.local_hour(self.now()), Counter())[what] += 1

    async def write_journal(self, store_ids: list[str]) -> None:
        """The server's soft-hold journal writer (a 50 ms loop in the API) for these stores;
        run where the API's loop would have run by then."""
        try:
            from server.inventory import journal
        except ImportError:  # a server without the journal writes holds synchronously
            return
        await journal.write_stores(self.engine, self.redis, store_ids)

    # --- the physical city --------------------------------------------------------------
    def ride_s(self, rng: random.Random, rider: RiderSim, a: LatLng, b: LatLng) -> float:
        """Seconds to ride from a to b: road distance (1.3-1.5x the straight line) at the
        rider's own cruise speed."""
        lo, hi = self.config.physics.road_factor
        road = haversine_m(a, b) * rng.uniform(lo, hi)
        self.stats["ride_m_straight"] += round(haversine_m(a, b))
        self.stats["ride_m_road"] += round(road)
        return road / rider.speed_mps

    def next_glance(self, t: float, phase: float, every: float) -> float:
        """The first moment at or after ``t`` someone glancing every ``every`` s looks."""
        k = math.ceil((t - phase) / every)
        return phase + k * every
