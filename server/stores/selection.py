"""Which dark store serves a customer location: inside the zone, operational, open now,
ranked by the minutes a new order would take to reach the door rather than by distance.

Minutes to the door (``door_minutes``, the ETA the customer is shown and promised):
waiting for a picker (orders waiting to be picked per picker x the store's pick time) +
picking + waiting for a rider beyond what picking hides (orders needing a rider beyond the
idle riders, x a trip's turnaround over the riders on duty; a store with nobody on duty
yet is judged by its queue alone) + the ride (distance x road factor at ~18 km/h) + the
handover; the ride at the store's own pace once it has ridden enough (the median of its
recent rides out, ``delivery.eta.store_pace``), else at the planning pace. Serviceability
keeps its word (``dynamic``, ``QC_SERVICEABILITY_DYNAMIC``): a
store reaches only as far as a new order can still be at the door within the promise
(``QC_SERVICEABILITY_PROMISE_S``), never beyond its radius nor under ``MIN_RADIUS_M``, and
grows back as its queue drains. Cached 30 s per ~150 m cell; checkout recomputes without
the cache and refuses an address beyond the store's reach with 409 ``not_serviceable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import eta
from server.forecast.history import IST  # the ops feed's "today" is the IST day
from server.kit import db, keys
from server.kit.cache import TTLCache
from server.kit.errors import Conflict
from shared.geo import LatLng, haversine_m, location_cell, point_in_geojson

CACHE_TTL_S = 30
ROAD_FACTOR = 1.35
RIDE_M_PER_MIN = 300.0  # ~18 km/h through city traffic
PLANNED_PACE_MIN_PER_M = ROAD_FACTOR / RIDE_M_PER_MIN  # until the store has its own
PICK_MIN = 2.0  # a pick when the store has no open task to take its estimate from
HANDOVER_MIN = 1.0
TRIP_TURNAROUND_MIN = 10.0  # a rider's trip: out, at the door, back
MIN_RADIUS_M = 500.0  # a store never shrinks below its doorstep
DEFAULT_PROMISE_S = 15 * 60
ASKS_KEPT_S = 2 * 86_400  # today's serviceability asks, and yesterday's until it ends
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Candidate:
    store_id: str
    store_name: str
    distance_m: float
    orders_in_flight: int
    active_pickers: int
    idle_riders: int
    eta_min: float
    effective_radius_m: float = 0.0  # how far the store reaches right now


@dataclass(frozen=True, slots=True)
class StoreLoad:
    """What decides how soon a store can deliver a new order."""

    waiting_to_pick: int  # confirmed orders no picker has started
    pickers: int
    pick_min: float  # minutes per pick (the store's open estimates)
    needing_rider: int  # orders in the store without a rider yet
    idle_riders: int
    riders_on_duty: int
    pace_min_per_m: float = PLANNED_PACE_MIN_PER_M  # the ride, per straight-line metre

    def before_ride_min(self) -> float:
        """Minutes from placing to the rider leaving the store."""
        queue = self.waiting_to_pick / max(self.pickers, 1) * self.pick_min
        in_store = queue + self.pick_min
        rider = 0.0
        short = self.needing_rider + 1 - self.idle_riders
        if self.riders_on_duty > 0 and short > 0:
            rider = short * TRIP_TURNAROUND_MIN / self.riders_on_duty
        return in_store + max(0.0, rider - in_store)  # a rider on the way overlaps the pick


def door_minutes(load: StoreLoad, distance_m: float) -> float:
    return load.before_ride_min() + distance_m * load.pace_min_per_m + HANDOVER_MIN


def reach_m(load: StoreLoad, *, radius_m: float, promise_s: float) -> float:
    """How far a new order still reaches the door within the promise (within the radius,
    at least ``MIN_RADIUS_M``)."""
    spare = promise_s / 60.0 - load.before_ride_min() - HANDOVER_MIN
    return min(radius_m, max(MIN_RADIUS_M, spare / load.pace_min_per_m))


def is_open(hours: dict[str, Any] | None, local: datetime) -> bool:
    """Operating hours as {"mon": [["06:00", "02:00"]]}; a window may run past midnight."""
    if not hours:
        return True
    minute = local.hour * 60 + local.minute
    today, yesterday = _DAYS[local.weekday()], _DAYS[(local.weekday() - 1) % 7]

    def mins(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    for start, end in hours.get(today, []):
        s, e = mins(start), mins(end)
        if (s <= minute < e) if s < e else minute >= s:
            return True
    # yesterday's window that runs past midnight
    return any(mins(e) < mins(s) and minute < mins(e) for s, e in hours.get(yesterday, []))


def next_opening(hours: dict[str, Any] | None, local: datetime) -> datetime | None:
    """When a store closed at ``local`` opens next (a window's start, in ``local``'s zone);
    None if it is open or keeps no window in the coming week."""
    if is_open(hours, local) or not hours:
        return None
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    for ahead in range(8):
        day = midnight + timedelta(days=ahead)
        starts = sorted(
            day.replace(hour=int(s[:2]), minute=int(s[3:5]))
            for s, _ in hours.get(_DAYS[day.weekday()], [])
        )
        for start in starts:
            if start > local:
                return start
    return None


def closed_detail(name: str, opens_at: datetime | None) -> str:
    """What a customer or the staff read about a closed store."""
    if opens_at is None:
        return f"{name} is closed and keeps no opening hours in the coming week"
    at, zone, day = f"{opens_at:%H:%M}", opens_at.tzinfo, f"{opens_at:%a}"
    return f"{name} is closed now: it opens at {at} ({zone}) on {day}"


# a store's load: its orders in flight read once for the three counts, its open picks,
# pickers and riders on duty (``s`` the store)
_LOAD_COLUMNS = """
           f.in_flight, f.waiting, f.needing_rider,
           (SELECT avg(t.estimate_s) FROM pick_tasks t WHERE t.store_id = s.store_id
              AND t.status IN ('WAITING', 'PICKING') AND t.estimate_s > 0) AS pick_s,
           (SELECT count(*) FROM users u WHERE u.store_id = s.store_id
              AND u.role = 'picker' AND u.is_active) AS pickers,
           (SELECT count(*) FILTER (WHERE r.status = 'IDLE') FROM riders r
              WHERE r.home_store_id = s.store_id AND r.on_duty) AS idle_riders,
           (SELECT count(*) FROM riders r WHERE r.home_store_id = s.store_id AND r.on_duty)
             AS on_duty"""
_IN_FLIGHT = """
    CROSS JOIN LATERAL (
      SELECT count(*) AS in_flight, count(*) FILTER (WHERE o.status = 'CONFIRMED') AS waiting,
        count(*) FILTER (WHERE o.rider_id IS NULL) AS needing_rider
      FROM orders o WHERE o.store_id = s.store_id
        AND o.status IN ('CONFIRMED', 'PICKING', 'PARTIALLY_FULFILLED', 'PACKED')) f"""
_STORE_COLUMNS = """s.store_id, s.store_name, s.lat, s.lng, s.service_radius_m, s.service_zone,
           s.operating_hours, c.timezone"""
_STORES_SQL = text(f"""
    SELECT {_STORE_COLUMNS}, {_LOAD_COLUMNS}
    FROM dark_stores s JOIN cities c ON c.city_id = s.city_id {_IN_FLIGHT}
    WHERE s.is_operational""")
# a checkout's store alone, read afresh (a pause or a change of hours or zone holds at
# once), and its load apart (``_loads``)
_STORE_SQL = text(f"""
    SELECT {_STORE_COLUMNS} FROM dark_stores s JOIN cities c ON c.city_id = s.city_id
    WHERE s.is_operational AND s.store_id = :store""")
_LOAD_SQL = text(
    f"SELECT {_LOAD_COLUMNS} FROM dark_stores s {_IN_FLIGHT} WHERE s.store_id = :store"
)
# A checkout's store load, at most LOAD_MAX_AGE_S old per process: counting the orders in
# flight reads every one of them (a store with 2,000 in flight read ~850 buffers a checkout,
# the checkout's costliest statement), and a second-old count moves a promise by what one
# second's orders add to the queue. The simulation's clock drives it (a TTLCache).
LOAD_MAX_AGE_S = 1.0
_loads: TTLCache[tuple[Any, ...]] = TTLCache(LOAD_MAX_AGE_S, max_items=1_000)


@dataclass(frozen=True, slots=True)
class _Store:
    store_id: str
    name: str
    location: LatLng
    radius_m: float
    zone: dict[str, Any] | None
    is_open: bool
    opens_at: datetime | None  # when closed: its next opening, in the city's zone
    in_flight: int
    load: StoreLoad

    def covers(self, point: LatLng) -> bool:
        """Inside the zone (or radius) as configured, open now."""
        return self.is_open and self.within(point)

    def within(self, point: LatLng) -> bool:
        """Inside the zone (or radius) as configured, open or not."""
        if self.zone:
            return point_in_geojson(point, self.zone)
        return haversine_m(self.location, point) <= self.radius_m


async def _stores(
    session: AsyncSession, *, now: datetime, store_id: str | None = None
) -> list[_Store]:
    """The operational stores with their load now (only ``store_id``, if given)."""
    found = []
    rows: Iterable[Any]
    if store_id is None:
        rows = await session.execute(_STORES_SQL)
    else:  # a checkout's: on the session's connection, past SQLAlchemy
        rows = await _store_with_load(session, store_id)
    for row in rows:
        (store_id, name, lat, lng, radius, zone, hours, tz, in_flight, waiting, needing) = row[:11]
        pick_s, pickers, idle, on_duty = row[11:]
        pick_min = float(pick_s) / 60.0 if pick_s else PICK_MIN
        pace_s = await eta.store_pace(session, store_id=store_id, now=now)
        pace = pace_s / 60.0 if pace_s else PLANNED_PACE_MIN_PER_M
        local = now.astimezone(ZoneInfo(tz))
        found.append(
            _Store(
                store_id,
                name,
                LatLng(lat, lng),
                radius,
                zone,
                is_open(hours, local),
                next_opening(hours, local),
                in_flight,
                StoreLoad(waiting, pickers, pick_min, needing, idle, on_duty, pace),
            )
        )
    return found


async def _store_with_load(session: AsyncSession, store_id: str) -> list[tuple[Any, ...]]:
    """The operational store's row and its load (``_loads``), as ``_STORES_SQL`` reads
    them; none if the store is paused or unknown."""
    row = await (await db.execute(session, _STORE_SQL, {"store": store_id})).fetchone()
    if row is None:
        return []

    async def load() -> tuple[Any, ...]:
        found = await (await db.execute(session, _LOAD_SQL, {"store": store_id})).fetchone()
        assert found is not None  # the store's row was just read
        return tuple(found)

    # by database as well: a process may serve more than one (the tests' apps)
    return [tuple(row) + await _loads.get_or_load((session.bind, store_id), load)]


def _reach(store: _Store, *, dynamic: bool, promise_s: float) -> float:
    if not dynamic:
        return float("inf")
    return reach_m(store.load, radius_m=float("inf"), promise_s=promise_s)


async def rank_stores(
    session: AsyncSession,
    *,
    point: LatLng,
    now: datetime,
    dynamic: bool = True,
    promise_s: float = DEFAULT_PROMISE_S,
) -> list[Candidate]:
    """Every store that delivers to ``point`` now, soonest at the door first."""
    found = [
        candidate
        for store in await _stores(session, now=now)
        if (candidate := _candidate(store, point, dynamic=dynamic, promise_s=promise_s))
    ]
    return sorted(found, key=lambda c: (c.eta_min, c.distance_m))


def _candidate(
    store: _Store, point: LatLng, *, dynamic: bool, promise_s: float
) -> Candidate | None:
    """The store's promise for ``point``, if it delivers there now."""
    distance = haversine_m(store.location, point)
    reach = _reach(store, dynamic=dynamic, promise_s=promise_s)
    if not store.covers(point) or distance > reach:
        return None
    return Candidate(
        store.store_id,
        store.name,
        round(distance, 1),
        store.in_flight,
        store.load.pickers,
        store.load.idle_riders,
        round(door_minutes(store.load, distance), 2),
        round(min(reach, store.radius_m), 1),
    )


async def select_stores(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    point: LatLng,
    now: datetime,
    use_cache: bool = True,
    dynamic: bool = True,
    promise_s: float = DEFAULT_PROMISE_S,
) -> list[Candidate]:
    """Serviceable stores for a location, best first (30 s cache per location cell)."""
    if not use_cache:
        return await rank_stores(
            session, point=point, now=now, dynamic=dynamic, promise_s=promise_s
        )
    version = int(await redis.get(keys.STORE_SELECTION_VERSION) or 0)
    key = keys.store_selection(version, location_cell(point))
    cached = await redis.get(key)
    if cached is not None:
        return [Candidate(**c) for c in json.loads(cached)]
    ranked = await rank_stores(session, point=point, now=now, dynamic=dynamic, promise_s=promise_s)
    await redis.set(key, json.dumps([asdict(c) for c in ranked]), ex=CACHE_TTL_S)
    return ranked


async def invalidate_selection(redis: aioredis.Redis) -> None:
    """A store paused, resumed or changed its zone: every cached cell is stale."""
    await redis.incr(keys.STORE_SELECTION_VERSION)


@dataclass(frozen=True, slots=True)
class Unserved:
    """Why no store delivers to a location: only the hours (``closed``, the 409 to raise),
    or an open store whose zone holds it is too busy to reach it in time right now
    (``beyond_reach``: that store, the nearest such), or neither (nobody delivers there)."""

    closed: Conflict | None = None
    beyond_reach: str | None = None


async def why_unserved(session: AsyncSession, *, point: LatLng, now: datetime) -> Unserved:
    """Why ``select_stores`` found nobody for ``point``: 409 ``store_closed`` naming the
    store that serves it and when it opens (soonest first), else the store that refused it
    in time (the serviceability figures count it as refused demand)."""
    stores = [s for s in await _stores(session, now=now) if s.within(point)]
    closed = [s for s in stores if not s.is_open]
    if closed:
        store = min(closed, key=lambda s: s.opens_at or datetime.max.replace(tzinfo=now.tzinfo))
        return Unserved(closed=_closed(store))
    if stores:
        nearest = min(stores, key=lambda s: haversine_m(s.location, point))
        return Unserved(beyond_reach=nearest.store_id)
    return Unserved()


async def count_ask(redis: aioredis.Redis, *, store_id: str, now: datetime, refused: bool) -> None:
    """One serviceability ask today at ``store_id`` (the store ranked first, or the one that
    refused it): the control tower shows the refused share beside the share delivered in
    10 minutes, since a store that refused everyone would keep any promise."""
    key = keys.serviceability_asks(now.astimezone(IST).date().isoformat())
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(key, f"{store_id}:asked", 1)
        if refused:
            pipe.hincrby(key, f"{store_id}:refused", 1)
        pipe.expire(key, ASKS_KEPT_S)
        await pipe.execute()


async def asks_today(
    redis: aioredis.Redis, *, store_ids: list[str], now: datetime
) -> tuple[int, int]:
    """Serviceability asks today at ``store_ids`` and how many of them were refused."""
    counts = await redis.hgetall(keys.serviceability_asks(now.astimezone(IST).date().isoformat()))
    wanted = set(store_ids)
    asked = refused = 0
    for field, n in counts.items():
        store, _, what = (field.decode() if isinstance(field, bytes) else field).rpartition(":")
        if store in wanted:
            if what == "asked":
                asked += int(n)
            elif what == "refused":
                refused += int(n)
    return asked, refused


def _closed(store: _Store) -> Conflict:
    return Conflict(
        closed_detail(store.name, store.opens_at),
        code="store_closed",
        store_id=store.store_id,
        opens_at=store.opens_at.isoformat() if store.opens_at else None,
    )


async def require_serviceable(
    session: AsyncSession,
    *,
    store_id: str,
    point: LatLng,
    now: datetime,
    dynamic: bool = True,
    promise_s: float = DEFAULT_PROMISE_S,
) -> Candidate:
    """The store's promise for this address, computed afresh (checkout), or 409
    ``not_serviceable`` naming why: beyond what the store reaches in time right now (with
    that reach: its queue or riders), or not delivering here at all (outside its zone or
    paused); 409 ``store_closed`` with ``opens_at`` if only its hours stand in the way."""
    store = next(iter(await _stores(session, now=now, store_id=store_id)), None)
    candidate = store and _candidate(store, point, dynamic=dynamic, promise_s=promise_s)
    if candidate:
        return candidate
    if store is not None and not store.is_open and store.within(point):
        raise _closed(store)
    if store is not None and store.covers(point):
        reach = _reach(store, dynamic=dynamic, promise_s=promise_s)
        distance = haversine_m(store.location, point)
        raise Conflict(
            f"{store_id} is too busy to reach this address in time: right now it delivers "
            f"within {reach:.0f} m and this address is {distance:.0f} m away",
            code="not_serviceable",
            store_id=store_id,
            reason="beyond_reach_now",
            reach_m=round(reach, 1),
            distance_m=round(distance, 1),
            eta_min=round(door_minutes(store.load, distance), 2),
        )
    raise Conflict(f"{store_id} does not deliver to this address right now", code="not_serviceable")
