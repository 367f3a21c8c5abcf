"""Riders on shift: a GPS fix every 5 simulated seconds over ``/ws/rider``, offers taken
(now and then turned down), a ride to the store at city speeds, bags picked up by label,
drops in route order with the customer's OTP; sometimes a dead zone (fixes kept and sent
as a batch afterwards) or a break off shift."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qc.sim.world import Login, Shelf, World
from shared.client import ApiError, ConnectionLost, RiderClient
from shared.geo import LatLng, bearing_deg, destination, haversine_m, interpolate
from shared.schemas.delivery import GpsFix, TripPublic

T = TypeVar("T")

HOME_RADIUS_M = 400.0  # an idle rider waits within this of their store
AT_DOOR_M = 15.0
DOOR_S = (30.0, 60.0)  # park, walk up, hand over, OTP (simulated seconds)
ROAD_FACTOR = (1.3, 1.5)  # road distance over the straight line, drawn per ride
OTP_WAIT_S = 300.0  # nobody answers for this long: the drop fails
BAG_WAIT_S = 1800.0  # the longest a rider waits at the store for bags, then gives it back
BATCH_LIMIT = 5000
STILL_M = 10.0  # moved less than this since the last fix, not riding: standing still


class TripAbandoned(Exception):
    """The trip went away under the rider (handed back while out of signal, cancelled)."""


class Rider:
    def __init__(self, world: World, login: Login[RiderClient]) -> None:
        self.world = world
        self.login = login
        self.rng = world.rng(login.login)
        self.pos = LatLng(0.0, 0.0)
        self.home = LatLng(0.0, 0.0)
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: deque[asyncio.Future[dict[str, Any]]] = deque()
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.buffer: list[GpsFix] = []
        self.dark_until = 0.0  # simulated time the dead zone ends
        self.last_fix_at = 0.0
        self.last_fix_pos = LatLng(0.0, 0.0)
        self.speed = 0.0
        self.heading: float | None = None
        # the handheld's battery, from its own stream so the other draws stay as they were:
        # charged to ``battery_full`` at the start of the shift, draining on a straight line
        battery = world.rng(f"{login.login}:battery")
        self.battery_full = battery.uniform(55, 100)
        self.battery_drain_per_h = battery.uniform(6, 12)
        self.shift_started = 0.0

    @property
    def client(self) -> RiderClient:
        return self.login.client

    # --- the life of a shift -------------------------------------------------------------
    async def run(self) -> None:
        world = self.world
        client = await self.login.fresh(world.clock)
        me = await client.rider_me()
        if me.lat is not None and me.lng is not None:
            self.pos = LatLng(me.lat, me.lng)
        else:
            store = self.rng.choice(list(world.stores.values()))
            self.pos = destination(LatLng(store.lat, store.lng), self.rng.uniform(0, 360), 300)
        store = world.nearest_store(self.pos)
        self.home = LatLng(store.lat, store.lng)
        self.shift_started = world.now()
        await client.set_shift(on_duty=True)
        await self._connect()
        await self._fix()
        try:
            while True:
                try:
                    await self.login.fresh(world.clock)
                    await self._do_trip(await self._wait_for_offer())
                except TripAbandoned:
                    world.count("trips_lost")
                except (ApiError, ConnectionLost) as exc:
                    world.error("rider", exc)
                    await world.sleep(10)
        finally:
            await self._disconnect()

    async def go_off_duty(self) -> None:
        """End of the run: off shift unless a trip is still open."""
        with contextlib.suppress(ApiError, ConnectionLost):
            await self.client.set_shift(on_duty=False)

    async def _wait_for_offer(self) -> TripPublic:
        world, config = self.world, self.world.config
        next_look = world.now()
        while True:
            if world.now() >= next_look or not self.offers.empty():
                while not self.offers.empty():
                    self.offers.get_nowait()
                next_look = world.now() + config.offer_check_s
                await self._online()
                trip = await self.client.my_trip()
                if trip is not None:
                    return trip
            step = config.fix_interval_s
            if self.rng.random() < config.break_per_hour * step / 3600:
                await self._take_a_break()
                continue
            if haversine_m(self.pos, self.home) > HOME_RADIUS_M:
                await self._ride(self.home, until_offer=True)  # back towards the store
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(world.real(step)):
                    await self._offer_event()
                continue
            await self._fix()

    async def _offer_event(self) -> None:
        message = await self.offers.get()
        await self.offers.put(message)  # leave it for the loop to see

    async def _take_a_break(self) -> None:
        world = self.world
        await self._online()
        try:
            await self.client.set_shift(on_duty=False)
        except ApiError as exc:
            if exc.code == "trip_in_progress":
                return  # an offer landed first
            raise
        world.count("rider_breaks")
        await self._disconnect()
        await world.sleep(self.rng.uniform(300, 900))
        await self.client.set_shift(on_duty=True)
        await self._connect()
        await self._fix()

    async def _do_trip(self, trip: TripPublic) -> None:
        world, config, client = self.world, self.world.config, self.client
        trip_id = trip.trip_id
        if trip.status == "OFFERED":
            if self.rng.random() < config.reject_offer_rate:
                await self._call(lambda: client.trip_step(trip_id, "reject"))
                world.count("offers_rejected")
                return
            await self._hold(self.rng.uniform(3, 8))  # read the offer
            trip = await self._call(lambda: client.trip_step(trip_id, "accept"))
            world.count("offers_accepted")
        store = LatLng(trip.store_lat, trip.store_lng)
        if trip.status in ("ACCEPTED", "AT_STORE"):
            await self._ride(store)
            current = await self._call(lambda: client.my_trip())
            if current is None or current.trip_id != trip_id:
                raise TripAbandoned()
            trip = current
            if trip.status == "ACCEPTED":  # the geofence did not see us (a missed fix)
                trip = await self._call(lambda: client.trip_step(trip_id, "arrived"))
            orders = [str(s.order_id) for s in trip.stops]
            shelf = world.shelves[trip.store_id]
            if not await self._wait_for_bags(trip_id, shelf, orders):
                return  # given back: dispatch offers the orders to another rider
            await self._hold(self.rng.uniform(10, 25))  # find the bags, scan the labels
            labels = shelf.labels(orders)
            trip = await self._call(lambda: client.pick_up(trip_id, bag_labels=labels))
            shelf.remove(orders)
            world.count("pickups")
        if trip.status == "PICKED_UP":
            trip = await self._call(lambda: client.trip_step(trip_id, "depart"))
        if trip.status != "OUT":
            raise TripAbandoned()
        for stop in sorted(trip.stops, key=lambda s: s.seq):
            if stop.status not in ("PENDING", "ARRIVED"):
                continue
            await self._drop(trip_id, str(stop.order_id), LatLng(stop.lat, stop.lng))
        world.count("trips_completed")

    async def _wait_for_bags(self, trip_id: Any, shelf: Shelf, orders: list[str]) -> bool:
        """At the store until every bag of the trip is on the shelf (True); a glance at the
        trip screen every minute (it may have been handed to someone else meanwhile). After
        ``BAG_WAIT_S`` the rider releases the trip instead (False)."""
        world = self.world
        waited = 0.0
        while not await self._hold(60, shelf.wait_for(orders)):
            waited += 60
            trip = await self._call(lambda: self.client.my_trip())
            if (
                trip is None
                or trip.trip_id != trip_id
                or trip.status not in ("ACCEPTED", "AT_STORE")
            ):
                raise TripAbandoned()
            if waited >= BAG_WAIT_S:
                await self._call(lambda: self.client.release_trip(trip_id, reason="bags not ready"))
                world.count("trips_released")
                return False
        return True

    async def _drop(self, trip_id: Any, order_id: str, door: LatLng) -> None:
        world, config, client = self.world, self.world.config, self.client
        near = destination(door, self.rng.uniform(0, 360), self.rng.uniform(0, AT_DOOR_M))
        await self._ride(near)
        await self._hold(self.rng.uniform(*DOOR_S))
        if self.rng.random() < config.failed_drop_rate:
            await self._hold(OTP_WAIT_S / 2)
            await self._call(
                lambda: client.fail_drop(trip_id, order_id, reason="customer not reachable")
            )
            world.count("drops_failed")
            return
        otp = await self._hold(OTP_WAIT_S, asyncio.shield(world.otp(order_id)))
        if otp is None:
            await self._call(
                lambda: client.fail_drop(trip_id, order_id, reason="no OTP from customer")
            )
            world.count("drops_failed_no_otp")
            return
        if self.rng.random() < config.wrong_otp_rate:
            wrong = f"{(int(otp) + self.rng.randint(1, 9998)) % 10000:04d}"
            try:
                await self._call(lambda: client.deliver(trip_id, order_id, otp=wrong))
            except ApiError as exc:
                if exc.code not in ("wrong_otp", "otp_locked"):
                    raise
                world.count("wrong_otps")
            await self._hold(self.rng.uniform(5, 15))
        await self._call(lambda: client.deliver(trip_id, order_id, otp=otp))
        world.count("orders_delivered")

    # --- moving ------------------------------------------------------------------------
    def _route(self, to: LatLng) -> list[LatLng]:
        """Streets, not a beeline: a bend off the straight line, placed so the ride is
        ``ROAD_FACTOR`` times the straight distance (1.3-1.5x, as the city's roads)."""
        straight = haversine_m(self.pos, to)
        if straight < 50:
            return [to]
        factor = self.rng.uniform(*ROAD_FACTOR)
        aside = straight / 2 * math.sqrt(factor**2 - 1)  # two equal legs of factor x straight
        side = 90.0 if self.rng.random() < 0.5 else -90.0
        middle = interpolate(self.pos, to, 0.5)
        return [destination(middle, bearing_deg(self.pos, to) + side, aside), to]

    async def _ride(self, to: LatLng, *, until_offer: bool = False) -> None:
        """Ride there at city speed (with stops), a fix every ``fix_interval_s``; the
        distance covered follows the simulated time that really passed."""
        world, config = self.world, self.world.config
        step = config.fix_interval_s
        cruise = self.rng.uniform(*config.speed_kmh) / 3.6
        last = world.now()
        for waypoint in self._route(to):
            while haversine_m(self.pos, waypoint) > 1.0:
                if until_offer and not self.offers.empty():
                    return
                await world.sleep_until(last + step)
                now = world.now()
                elapsed, last = now - last, now
                stopped = self.rng.random() < 0.08  # a signal, a cow, a jam
                speed = 0.0 if stopped else max(1.0, self.rng.gauss(cruise, cruise * 0.15))
                left = haversine_m(self.pos, waypoint)
                move = min(left, speed * elapsed)
                if move > 0:
                    self.heading = bearing_deg(self.pos, waypoint)
                    self.pos = interpolate(self.pos, waypoint, move / left)
                self.speed = move / elapsed if elapsed > 0 else 0.0
                await self._fix()
        self.speed = 0.0
        await self._fix(force=True)  # here: the geofence sees the arrival

    async def _hold(self, sim_s: float, waiting: Any = None) -> Any:
        """Stay put, sending fixes, for ``sim_s`` or until ``waiting`` completes; returns its
        result (None when the time ran out)."""
        world = self.world
        self.speed = 0.0
        task = asyncio.ensure_future(waiting) if waiting is not None else None
        deadline = world.now() + sim_s
        try:
            while True:
                left = deadline - world.now()
                if left <= 0:
                    return None
                wait = world.real(min(left, world.config.fix_interval_s))
                if task is not None:
                    done, _ = await asyncio.wait({task}, timeout=wait)
                    if done:
                        return task.result()
                else:
                    await asyncio.sleep(wait)
                await self._fix()
        finally:
            if task is not None and not task.done():
                task.cancel()

    # --- the socket and the fixes -----------------------------------------------------------
    async def _connect(self) -> None:
        try:
            self.ws = await connect(
                self.client.rider_socket_url(), open_timeout=10, close_timeout=2, ping_interval=20
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self.world.error("rider_socket", exc)
            self.ws = None
            return
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _disconnect(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
            self.reader = None
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.cancel()

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind in ("ack", "error") and self.pending:
                    future = self.pending.popleft()
                    if not future.done():
                        future.set_result(message)
                elif kind == "delivery.offered":
                    self.offers.put_nowait(message)
        if self.ws is ws:
            self.ws = None
        while self.pending:  # no answer will come for these
            future = self.pending.popleft()
            if not future.done():
                future.set_result({"type": "closed"})

    def _gps(self) -> GpsFix:
        noise = self.rng.gauss(0, 4)  # metres of GPS scatter
        where = destination(self.pos, self.rng.uniform(0, 360), abs(noise))
        return GpsFix(
            lat=round(where.lat, 7),
            lng=round(where.lng, 7),
            at=datetime.fromtimestamp(self.world.now(), tz=UTC),
            speed_mps=round(self.speed, 2),
            heading_deg=round(self.heading % 360, 1) if self.heading is not None else None,
            accuracy_m=round(4 + abs(noise), 1),
            battery_pct=round(self._battery(), 1),
        )

    def _battery(self) -> float:
        """Percent now: never below 5 (a rider plugs in before the handheld dies)."""
        hours = (self.world.now() - self.shift_started) / 3600
        return max(5.0, self.battery_full - self.battery_drain_per_h * hours)

    async def _fix(self, *, force: bool = False) -> None:
        """One fix: over the socket (acknowledged), or kept while out of signal."""
        world, config = self.world, self.world.config
        now = world.now()
        still = self.speed == 0.0 and haversine_m(self.pos, self.last_fix_pos) < STILL_M
        interval = config.still_fix_interval_s if still else config.fix_interval_s * 0.5
        since = now - self.last_fix_at
        if not force and since < interval:
            return
        self.last_fix_at, self.last_fix_pos = now, self.pos
        fix = self._gps()
        if now < self.dark_until:
            self.buffer.append(fix)
            return
        if self.rng.random() < config.signal_loss_per_hour * min(since, 300.0) / 3600:
            self.dark_until = now + self.rng.uniform(40, 150)
            world.count("signal_losses")
            await self._disconnect()
            self.buffer.append(fix)
            return
        if self.buffer or self.ws is None:
            await self._online()
        if self.ws is None:
            self.buffer.append(fix)
            return
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        try:
            await self.ws.send(fix.model_dump_json(exclude_none=True))
            async with asyncio.timeout(10):
                answer = await future
        except (ConnectionClosed, TimeoutError) as exc:
            world.error("rider_socket", exc)
            answer = {"type": "closed"}
        if answer.get("type") == "closed":  # the link dropped: keep the fix for later
            self.buffer.append(fix)
            await self._disconnect()
            return
        if answer.get("type") == "ack":
            world.count("fixes")
            return
        error = answer.get("error") or {}
        if error.get("code") == "off_duty":
            await self.client.set_shift(on_duty=True)
        world.error("rider_fix", ApiError(409, str(error.get("code")), str(error)))

    async def _online(self) -> None:
        """Wait out a dead zone (still moving nowhere), then reconnect and send what was kept."""
        world = self.world
        while world.now() < self.dark_until:
            await world.sleep(min(world.config.fix_interval_s, self.dark_until - world.now()))
            if world.now() < self.dark_until:
                self.buffer.append(self._gps())
        if self.ws is None:
            await self._connect()
            if self.ws is not None:
                # offers made while away: the trip screen shows them
                self.offers.put_nowait({"type": "reconnected"})
        if self.buffer:
            kept, self.buffer = self.buffer, []
            for i in range(0, len(kept), BATCH_LIMIT):
                result = await self.client.post_locations(kept[i : i + BATCH_LIMIT])
                world.count("fixes_replayed", result.accepted)

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """An API call from the handheld: only with signal; a trip that moved on is lost."""
        await self._online()
        try:
            return await request()
        except ApiError as exc:
            if exc.code in ("invalid_trip_state", "trip_not_found", "not_your_trip"):
                raise TripAbandoned() from exc
            raise
