"""One simulated day: the world set up from the seeded city, the day's events processed
one at a time on a manual clock, the open orders finished, the report built.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from qc.des.config import DesConfig
from qc.des.customers import Customers
from qc.des.fleet import Fleet
from qc.des.history_out import export_history
from qc.des.nightly import Nights
from qc.des.parts import Parts, build
from qc.des.pickers import Pickers
from qc.des.report import DesReport, delivered_stages
from qc.des.stack import Services, prepare, settings_for
from qc.des.world import OrderRec, PickerSim, RiderSim, StoreSim, World
from qc.sim.report import build_report, take_snapshot
from server.delivery.models import Rider
from server.identity.models import User
from server.inventory.worker import reconcile_all
from server.kit import db
from server.kit import redis as qredis
from server.kit.cache import TTLCache
from server.kit.clock import ManualClock
from server.payments.breaker import BreakerConfig, CircuitBreaker
from server.payments.gateway import PaymentGateway
from server.payments.provider import SimulatedProvider
from server.stores.models import DarkStore
from shared.enums import Role
from shared.geo import LatLng

DRAIN_LIMIT_S = 4 * 3600.0  # after the last arrival, at most this long to finish orders


def start_of_day(config: DesConfig) -> float:
    day = datetime.fromisoformat(config.date).replace(tzinfo=ZoneInfo(config.timezone))
    return (day + timedelta(hours=config.start_hour)).timestamp()


def _caches_on(clock: ManualClock) -> None:
    """Every in-process TTL cache of the server reads the simulated clock, empty."""
    for name, module in sorted(sys.modules.items()):
        if not name.startswith("server.") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, TTLCache):
                value.timer = clock.timestamp
                value.clear()


# the tables whose rows the day adds and its queries look up (see ``Day._vacuum``)
ANALYZED = (
    "orders",
    "order_items",
    "order_directory",
    "carts",
    "payments",
    "inventory_reservations",
    "pick_tasks",
    "pick_scans",
    "trips",
    "trip_stops",
    "riders",
)


class Day:
    def __init__(self, world: World) -> None:
        self.world = world
        self.fleet = Fleet(world)
        self.pickers = Pickers(world, self._packed)
        self.pickers.on_claimed = self._claimed
        self.customers = Customers(world, self._confirmed)
        self.nights: Nights | None = None

    # --- hand-offs between people -------------------------------------------------------
    def _confirmed(self, rec: OrderRec) -> None:
        if self.nights is not None:
            self.nights.confirmed(rec.placed)
        store = self.world.stores[rec.store_id]
        store.open_orders.add(rec.order_id)
        store.unassigned.add(rec.order_id)
        self.pickers.task_added(store)

    def _claimed(self, store: StoreSim, order_id: object) -> None:
        if self.world.config.policies.preassign:
            self.fleet.wake_dispatch(store)

    def _packed(self, store: StoreSim, order_id: object) -> None:
        store.packed.add(order_id)  # type: ignore[arg-type]
        self.fleet.bags_ready(store)
        if order_id in store.unassigned:
            self.fleet.wake_dispatch(store)

    # --- setting up ------------------------------------------------------------------------
    async def load(self) -> None:
        world = self.world
        rng = world.rng("staff")
        async with world.sessions() as session:
            for shop in (
                await session.exec(
                    select(DarkStore)
                    .where(col(DarkStore.is_operational).is_(True))
                    .order_by(col(DarkStore.store_id))
                )
            ).all():
                world.stores[shop.store_id] = StoreSim(shop.store_id, LatLng(shop.lat, shop.lng))
            pickers = (
                await session.exec(
                    select(User).where(User.role == Role.PICKER).order_by(col(User.login))
                )
            ).all()
            for user in pickers:
                if str(user.store_id) not in world.stores:
                    continue
                store = world.stores[str(user.store_id)]
                store.pickers.append(
                    PickerSim(
                        user=user,
                        store_id=store.store_id,
                        index=len(store.pickers),
                        phase_s=rng.uniform(0, world.config.physics.picker_poll_s),
                    )
                )
            rows = (
                await session.exec(
                    select(User, Rider)
                    .where(col(User.id) == col(Rider.rider_id))
                    .order_by(col(User.login))
                )
            ).all()
            for n, (user, rider) in enumerate(rows):
                if rider.home_store_id is not None and rider.home_store_id not in world.stores:
                    continue
                lo, hi = world.config.physics.speed_kmh
                sim = RiderSim(
                    user=user,
                    home=rider.home_store_id or sorted(world.stores)[0],
                    index=n,
                    phase_s=rng.uniform(0, world.config.physics.rider_poll_s),
                    speed_mps=rng.uniform(lo, hi) / 3.6,
                )
                sim.pos = world.stores[sim.home].at
                world.riders[rider.rider_id] = sim
                world.stores[sim.home].riders.append(sim)
        await self.customers.load()
        if world.config.nightly:
            self.nights = Nights(world, self.customers.products)

    # --- shifts -----------------------------------------------------------------------------
    def _shifts(self, until: float) -> None:
        world = self.world
        t = world.now()
        while t <= until:
            world.at(t, self._shift_change)
            local = datetime.fromtimestamp(t, tz=ZoneInfo(world.config.timezone))
            t = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).timestamp()

    async def _shift_change(self) -> None:
        world = self.world
        await self._vacuum()
        local = datetime.fromtimestamp(world.now(), tz=ZoneInfo(world.config.timezone))
        _, _, want_pickers, want_riders = world.config.plan(local.weekday())[local.hour]
        for store_id in sorted(world.stores):
            store = world.stores[store_id]
            busy = bool(store.open_orders)
            pickers = max(want_pickers, 1 if busy else 0)
            riders = max(want_riders, 2 if busy else 0)
            for p in store.pickers:
                if p.index < pickers and not p.on_shift:
                    self.pickers.shift_started(p)
                elif p.index < pickers:
                    p.leaving = False
                elif p.on_shift:
                    if p.task is None:
                        p.end_shift(world.now())
                    else:
                        p.leaving = True
            for position, r in enumerate(store.riders):
                if position < riders and not r.on_shift:
                    await self.fleet.on_shift(r)
                elif position < riders:
                    r.leaving = False
                elif r.on_shift and not r.leaving:
                    await self.fleet.off_shift(r)

    async def _vacuum(self) -> None:
        """What autovacuum would do, at fixed simulated times instead of the wall clock's
        (so the same seed stores the same rows in the same places): without it, every
        update leaves a dead row and index entry behind, and by the evening each query
        of the day's hot rows (riders, trips, orders, stock) wades through thousands.
        And its ANALYZE: the statistics taken at seeding saw no orders or trips, so the
        planner walked a store's orders to find one by its key and scanned every trip
        (the statistics read every row, see ``stack``, so the plans are the seed's too).
        Only of the tables the day's rows are looked up in: the event logs, the ledger
        and the catalogue keep the seed's (an hourly ANALYZE of every table was an eighth
        of PostgreSQL's CPU)."""
        async with self.world.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.exec_driver_sql("VACUUM")
            await auto.exec_driver_sql("ANALYZE " + ", ".join(ANALYZED))

    # --- the day --------------------------------------------------------------------------
    def open_orders(self) -> int:
        return sum(len(s.open_orders) for s in self.world.stores.values()) + sum(
            1 for r in self.world.riders.values() if r.road is not None
        )

    async def run(self) -> None:
        world = self.world
        start = world.now()
        end = start + world.config.span_hours * 3600
        self._shifts(end + DRAIN_LIMIT_S)
        self.fleet.start_sweeps(end + DRAIN_LIMIT_S)
        self.customers.start(end)
        if self.nights is not None:
            self.nights.start(end)
        await world.run(end)
        t = end
        while self.open_orders() and t < end + DRAIN_LIMIT_S:
            t += 300
            await world.run(t)
        if self.nights is not None:
            await self.nights.rollup()  # the last whole hours
        final = world.now()
        for rider in world.riders.values():
            rider.close(final)
        for store in world.stores.values():
            for p in store.pickers:
                p.close(final)


async def simulate(services: Services, config: DesConfig) -> DesReport:
    """Run one simulated day on ``services`` (emptied and seeded first); the report."""
    wall = time.perf_counter()
    parts = await simulate_parts(services, config)
    return build(config, parts, time.perf_counter() - wall)


async def simulate_parts(services: Services, config: DesConfig) -> Parts:
    """One simulated day on ``services`` (emptied and seeded first), for its report."""
    wall = time.perf_counter()
    prepare(services, config)
    settings = settings_for(services, config)
    clock = ManualClock(start_of_day(config))
    _caches_on(clock)
    # no pre-ping: the private server outlives the pool, and the ping was one more round
    # trip for each of the day's ~20 transactions per order
    engine = db.create_engine(services.database_url, settings, pre_ping=False)
    redis = qredis.create_redis(services.redis_url)
    try:
        await reconcile_all(engine, redis)
        provider = SimulatedProvider(
            failure_rate=config.payment_failure_rate,
            seed=config.seed,
            webhook_secret="qc-simulate",
        )
        gateway = PaymentGateway(
            provider,
            CircuitBreaker(redis, "payments", BreakerConfig(trial_timeout_s=15.0)),
            bulkhead_limit=8,
            timeout_s=5.0,
        )
        world = World(
            config=config,
            settings=settings,
            clock=clock,
            sessions=db.session_maker(engine),
            redis=redis,
            gateway=gateway,
            engine=engine,
        )
        day = Day(world)
        await day.load()
        setup_s = time.perf_counter() - wall
        snapshot = take_snapshot(services.database_url, clock.now())
        await day.run()
        if config.history_out:
            start = start_of_day(config)
            export_history(
                services.database_url,
                world,
                day.customers.products,
                window=(start, start + config.span_hours * 3600),
                path=config.history_out,
            )
        return _collect(services, world, snapshot, setup_s, time.perf_counter() - wall)
    finally:
        await redis.aclose()
        await engine.dispose()


def _collect(
    services: Services, world: World, snapshot: object, setup_s: float, wall_s: float
) -> Parts:
    checked = build_report(
        services.database_url,
        snapshot,  # type: ignore[arg-type]
        end=world.clock.now(),
        wall_s=wall_s,
        speed=0.0,
    )
    promised = {o: r.promised_s for o, r in world.orders.items()}
    rows = delivered_stages(
        services.database_url,
        {o: r.rider_at_store for o, r in world.orders.items() if r.rider_at_store is not None},
        {o: r.at_door for o, r in world.orders.items() if r.at_door is not None},
        promised,
    )
    riders = list(world.riders.values())
    pickers = [p for s in world.stores.values() for p in s.pickers]
    return Parts(
        stores=len(world.stores),
        events=world.events,
        setup_s=setup_s,
        rows=rows,
        promised=promised,
        hour_of={o: world.local_hour(r.placed) for o, r in world.orders.items()},
        by_hour={h: dict(c) for h, c in world.by_hour.items()},
        stats=dict(world.stats),
        rider_shift_s=sum(r.shift_s for r in riders),
        rider_busy_s=sum(r.busy_s for r in riders),
        picker_shift_s=sum(p.shift_s for p in pickers),
        picker_busy_s=sum(p.busy_s for p in pickers),
        five_line_picks=[r.pick_s for r in world.orders.values() if r.lines == 5 and r.pick_s],
        distances=[r.distance_m for r in world.orders.values()],
        oversells=checked.oversells,
        ledger_mismatches=checked.ledger_mismatches,
        orders_cancelled=checked.orders_cancelled,
        orders_open_at_end=checked.orders_in_flight,
    )
