"""Riders and the dispatcher: the server's dispatcher batches and offers (run when work or
riders change, and every few seconds while a store has orders without a rider); a rider
sees an offer at once (push) or at the next glance (polling), accepts, rides to the store,
waits for the bags if they are not packed yet, picks them up by label, rides to each door
(the server's geofence marks the arrival), hands over with the customer's OTP, and rides
back to the home store, available for the next offer on the way.

A rider's handheld sends fixes while it matters to the server: on every change of place
(on shift, at each door, back at the store), and at least once a minute while an offer or a ride to the store is open (the server
takes a trip back from a rider silent for two minutes).
"""

from __future__ import annotations

import inspect
import random
import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select

from qc.des.world import Move, RiderSim, StoreSim, World
from server.delivery import dispatcher, planning, riders, trips
from server.delivery.models import TripStop
from server.inventory.sweeper import sweep_store
from server.kit.db import transaction
from server.kit.errors import DomainError
from server.orders.unpaid import settle_unpaid
from server.stores.models import DarkStore
from shared.geo import LatLng
from shared.schemas.delivery import GpsFix

RETRY_DISPATCH_S = 15.0  # a store with orders and no rider is dispatched again this often
SWEEP_S = 30.0  # offers not taken in time, riders silent for 2 min (the dispatcher's sweep)
FIX_EVERY_S = 80.0  # so a rider with an open offer or ride is never silent for 2 min


class Fleet:
    def __init__(self, world: World) -> None:
        self.world = world
        self.rng = world.rng("fleet")
        self._dispatch_gen: dict[str, int] = {}
        params = inspect.signature(dispatcher.dispatch_store).parameters
        self._dispatch_extra: dict[str, Any] = {}
        policy = getattr(
            dispatcher, "DispatchPolicy", None
        )  # the levers, where the server has them
        if "policy" in params and policy is not None:
            self._dispatch_extra["policy"] = policy.of(world.settings)

    # --- the dispatcher ------------------------------------------------------------------
    def wake_dispatch(self, store: StoreSim, delay: float = 0.0) -> None:
        when = self.world.now() + delay
        if store.dispatch_at is not None and store.dispatch_at <= when:
            return
        store.dispatch_at = when
        gen = self._dispatch_gen[store.store_id] = self._dispatch_gen.get(store.store_id, 0) + 1
        self.world.at(when, lambda: self._dispatch(store, gen))

    async def _dispatch(self, store: StoreSim, gen: int) -> None:
        if self._dispatch_gen.get(store.store_id) != gen:
            return
        store.dispatch_at = None
        if not store.unassigned:
            return
        world = self.world
        offered: list[tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]] = []
        async with transaction(world.sessions) as session:
            shop = await session.get(DarkStore, store.store_id)
            assert shop is not None
            made = await dispatcher.dispatch_store(
                session,
                world.redis,
                store=shop,
                now=world.clock.now(),
                weights=planning.DEFAULT_WEIGHTS,
                **self._dispatch_extra,
            )
            for trip in made:
                stops = (
                    await session.exec(
                        select(TripStop.order_id)
                        .where(TripStop.trip_id == trip.trip_id)
                        .order_by(col(TripStop.seq))
                    )
                ).all()
                offered.append((trip.trip_id, trip.rider_id, list(stops)))
        world.count("dispatch_runs")
        for trip_id, rider_id, orders in offered:
            world.count("offers")
            world.count("offered_orders", len(orders))
            store.unassigned.difference_update(orders)
            world.trip_orders[trip_id] = orders
            self._offer(world.riders[rider_id], trip_id, orders)
        if store.unassigned:
            self.wake_dispatch(store, RETRY_DISPATCH_S)

    def _offer(self, rider: RiderSim, trip_id: uuid.UUID, orders: list[uuid.UUID]) -> None:
        world, physics = self.world, self.world.config.physics
        if rider.trip_id is not None and rider.trip_id != trip_id:
            self._lost(rider, rider.trip_id)  # taken back meanwhile: its orders wait again
        rider.trip_id, rider.trip_state, rider.trip_orders = trip_id, "offered", orders
        now = world.now()
        seen = (
            now + physics.push_latency_s
            if world.config.policies.push
            else world.next_glance(now, rider.phase_s, physics.rider_poll_s)
        )
        # keyed by who and when, never by the trip's id (the server draws it at random)
        rng = random.Random(f"{world.config.seed}:offer:{rider.index}:{now}")
        world.at(seen + rng.uniform(*physics.offer_read_s), lambda: self._accept(rider, trip_id))

    def _lost(self, rider: RiderSim, trip_id: uuid.UUID) -> None:
        """The trip went back to the dispatcher (offer timed out, rider silent)."""
        world = self.world
        world.count("trips_handed_back")
        for order_id in world.trip_orders.get(trip_id, []):
            rec = world.orders.get(order_id)
            if rec is not None:
                store = world.stores[rec.store_id]
                if order_id in store.open_orders:
                    store.unassigned.add(order_id)
                    self.wake_dispatch(store)
        if rider.trip_id == trip_id:
            rider.trip_id, rider.trip_state, rider.trip_orders = None, None, []
            world.stores[rider.home].riders_waiting.pop(trip_id, None)

    # --- a trip ---------------------------------------------------------------------------
    async def _accept(self, rider: RiderSim, trip_id: uuid.UUID) -> None:
        world = self.world
        if rider.trip_id != trip_id:
            return
        assert rider.user is not None
        try:
            async with transaction(world.sessions) as session:
                trip = await trips.own_trip(session, trip_id=trip_id, rider=rider.user)
                await trips.accept(session, trip=trip, now=world.clock.now())
                store_id = trip.store_id
        except DomainError:
            self._lost(rider, trip_id)
            return
        now = world.now()
        rider.trip_state = "accepted"
        rider.busy(now)
        if rider.road is None:  # else: to the store once the drops on the road are done
            self._to_store(rider, trip_id, world.stores[store_id])

    def _to_store(self, rider: RiderSim, trip_id: uuid.UUID, store: StoreSim) -> None:
        here = rider.where(self.world.now())
        self._ride(rider, here, store.at, lambda: self._at_store(rider, trip_id, store))

    def _ride(self, rider: RiderSim, a: LatLng, b: LatLng, then: Any) -> None:
        world = self.world
        now = world.now()
        rng = random.Random(f"{world.config.seed}:ride:{rider.index}:{now}")
        t1 = now + world.ride_s(rng, rider, a, b)
        rider.pos, rider.move = a, Move(a, b, now, t1)
        rider.version += 1
        version = rider.version

        async def arrive() -> None:
            if rider.version == version:
                rider.pos, rider.move = b, None
                await then()

        world.at(t1, arrive)

    async def _at_store(self, rider: RiderSim, trip_id: uuid.UUID, store: StoreSim) -> None:
        world = self.world
        if rider.trip_id != trip_id:
            return
        assert rider.user is not None
        rider.last_fix = world.now()  # the handheld's arrival (no fix needed to say it)
        async with transaction(world.sessions) as session:
            trip = await trips.own_trip(session, trip_id=trip_id, rider=rider.user)
            status = trip.status
            if status == "ACCEPTED":  # the rider taps "arrived" (or the geofence sees it)
                await trips.arrived_at_store(session, trip=trip, now=world.clock.now())
        if status not in ("ACCEPTED", "AT_STORE"):
            self._lost(rider, trip_id)
            return
        rider.trip_state = "at_store"
        for order_id in rider.trip_orders:
            rec = world.orders.get(order_id)
            if rec is not None:
                rec.rider_at_store = world.now()
        store.riders_waiting[trip_id] = rider
        self.bags_ready(store)

    def bags_ready(self, store: StoreSim) -> None:
        """Riders at the store whose bags are all on the shelf take them."""
        world = self.world
        for trip_id, rider in sorted(store.riders_waiting.items(), key=lambda kv: kv[1].index):
            if all(o in store.packed for o in rider.trip_orders):
                del store.riders_waiting[trip_id]
                rng = random.Random(f"{world.config.seed}:labels:{rider.index}:{world.now()}")
                delay = rng.uniform(*world.config.physics.label_scan_s)
                world.at(
                    world.now() + delay,
                    lambda r=rider, t=trip_id: self._pick_up(r, t, store),  # type: ignore[misc]
                )

    async def _pick_up(self, rider: RiderSim, trip_id: uuid.UUID, store: StoreSim) -> None:
        world = self.world
        assert rider.user is not None
        now = world.clock.now()
        try:
            async with transaction(world.sessions) as session:
                trip = await trips.own_trip(session, trip_id=trip_id, rider=rider.user)
                labels = [
                    r[0]
                    for r in await session.execute(
                        text(
                            "SELECT bag_label FROM pick_tasks WHERE store_id = :s "
                            "AND order_id = ANY(:o) ORDER BY order_id"
                        ),
                        {"s": store.store_id, "o": rider.trip_orders},
                    )
                ]
                await trips.pick_up(
                    session, trip=trip, bag_labels=labels, actor=rider.user, now=now
                )
                await trips.depart(session, trip=trip, actor=rider.user, now=now)
                stops = [
                    (o.order_id, LatLng(o.delivery_lat, o.delivery_lng), o.delivery_otp)
                    for _, o in await trips.trip_stops(session, trip_id)
                ]
        except DomainError as exc:
            world.count(f"pickup_refused:{exc.code}")
            self._lost(rider, trip_id)
            return
        rider.road, rider.trip_id, rider.trip_state, rider.trip_orders = trip_id, None, None, []
        for order_id, _, _ in stops:
            store.open_orders.discard(order_id)
            store.packed.discard(order_id)
        self._next_stop(rider, trip_id, stops, 0)

    def _next_stop(
        self,
        rider: RiderSim,
        trip_id: uuid.UUID,
        stops: list[tuple[uuid.UUID, LatLng, str | None]],
        i: int,
    ) -> None:
        world = self.world
        order_id, drop, _ = stops[i]

        async def at_door() -> None:
            rec = world.orders.get(order_id)
            if rec is not None:
                rec.at_door = world.now()
            # the handheld's fix at the door: the dispatcher sees where the rider comes
            # back from (a rider last seen at the store would be offered bags from afar)
            await self.fix(rider, drop)
            rng = random.Random(f"{world.config.seed}:door:{order_id}")
            wait = rng.uniform(*world.config.physics.door_s)
            world.at(world.now() + wait, lambda: self._deliver(rider, trip_id, stops, i))

        self._ride(rider, rider.where(world.now()), drop, at_door)

    async def _deliver(
        self,
        rider: RiderSim,
        trip_id: uuid.UUID,
        stops: list[tuple[uuid.UUID, LatLng, str | None]],
        i: int,
    ) -> None:
        world = self.world
        assert rider.user is not None
        order_id, drop, otp = stops[i]
        async with transaction(world.sessions) as session:
            trip = await trips.own_trip(session, trip_id=trip_id, rider=rider.user)
            await trips.deliver(
                session,
                trip=trip,
                order_id=order_id,
                otp=otp or "",
                actor=rider.user,
                now=world.clock.now(),
            )
        world.count("delivered")
        if i + 1 < len(stops):
            self._next_stop(rider, trip_id, stops, i + 1)
            return
        rider.road = None
        if rider.trip_id is not None and rider.trip_state == "accepted":
            store_id = world.orders[rider.trip_orders[0]].store_id
            self._to_store(rider, rider.trip_id, world.stores[store_id])
            return
        if rider.trip_id is not None:
            return  # an offer to read first: its acceptance sends the rider on
        home = world.stores[rider.home]
        if rider.leaving:
            await self.off_shift(rider)
            return
        self._ride(rider, drop, home.at, lambda: self._home(rider, home))
        for store in world.stores.values():
            if store.unassigned:
                self.wake_dispatch(store)

    async def _home(self, rider: RiderSim, home: StoreSim) -> None:
        await self.fix(rider, home.at)
        rider.free(self.world.now())
        self.wake_dispatch(home)

    # --- the handheld ---------------------------------------------------------------------
    async def fix(self, rider: RiderSim, where: LatLng) -> None:
        world = self.world
        assert rider.user is not None
        now = world.clock.now()
        async with transaction(world.sessions) as session:
            me = await riders.get_rider(session, user=rider.user, for_update=True)
            await riders.ingest_fixes(
                session,
                world.redis,
                rider=me,
                fixes=[GpsFix(lat=where.lat, lng=where.lng, at=now, speed_mps=0.0, accuracy_m=5.0)],
                now=now,
            )
        rider.last_fix = world.now()
        world.count("fixes")

    async def on_shift(self, rider: RiderSim) -> None:
        world = self.world
        assert rider.user is not None
        async with transaction(world.sessions) as session:
            me = await riders.get_rider(session, user=rider.user, for_update=True)
            await riders.set_shift(
                session, world.redis, rider=me, on_duty=True, now=world.clock.now()
            )
        rider.start_shift(world.now())
        rider.pos, rider.move = world.stores[rider.home].at, None
        rider.version += 1
        await self.fix(rider, rider.pos)
        self.wake_dispatch(world.stores[rider.home])

    async def off_shift(self, rider: RiderSim) -> None:
        """Off shift now if no trip is open; otherwise after it."""
        world = self.world
        if rider.trip_id is not None or rider.road is not None:
            rider.leaving = True
            return
        assert rider.user is not None
        async with transaction(world.sessions) as session:
            me = await riders.get_rider(session, user=rider.user, for_update=True)
            await riders.set_shift(
                session, world.redis, rider=me, on_duty=False, now=world.clock.now()
            )
        rider.version += 1
        rider.pos, rider.move = rider.where(world.now()), None
        rider.close(world.now())

    # --- the server's periodic work, on the simulated clock ------------------------------
    def start_sweeps(self, until: float) -> None:
        self._sweep_until = until
        self.world.at(self.world.now() + SWEEP_S, self._sweep)

    async def _sweep(self) -> None:
        world = self.world
        now = world.now()
        for rider in sorted(world.riders.values(), key=lambda r: r.index):
            if rider.trip_state in ("offered", "accepted") and now - rider.last_fix >= FIX_EVERY_S:
                await self.fix(rider, rider.where(now))
        async with transaction(world.sessions) as session:
            await dispatcher.replace_lost_riders(session, world.redis, now=world.clock.now())
        if int(now) % 60 < SWEEP_S:
            for store_id in sorted(world.stores):
                await sweep_store(world.sessions, world.redis, world.clock, store_id)
            await settle_unpaid(
                world.sessions,
                world.redis,
                gateway=world.gateway,
                now=world.clock.now(),
                window_s=world.settings.payment_window_s,
            )
        if now + SWEEP_S <= self._sweep_until:
            world.at(now + SWEEP_S, self._sweep)
