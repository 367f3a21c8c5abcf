"""Which dark store serves a customer location: inside the zone, operational, open now,
ranked by an estimate of minutes to the door rather than by distance alone.

Rank = riding time from the store (distance x road factor / speed) + a queue penalty
(orders in flight per active picker, each worth ~1.5 min of picking) - a rider bonus
(idle riders near the store save the wait for one, up to 3). Cached 30 s per ~150 m cell;
checkout recomputes without the cache.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import keys
from shared.geo import LatLng, haversine_m, location_cell, point_in_geojson

CACHE_TTL_S = 30
ROAD_FACTOR = 1.35
RIDE_M_PER_MIN = 300.0  # ~18 km/h through city traffic
PICK_MIN_PER_QUEUED_ORDER = 1.5
RIDER_BONUS_MIN = 0.5
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


_STORES_SQL = text("""
    SELECT s.store_id, s.store_name, s.lat, s.lng, s.service_radius_m, s.service_zone,
           s.operating_hours, c.timezone,
           (SELECT count(*) FROM orders o WHERE o.store_id = s.store_id
              AND o.status IN ('CONFIRMED', 'PICKING', 'PARTIALLY_FULFILLED', 'PACKED'))
             AS in_flight,
           (SELECT count(*) FROM users u WHERE u.store_id = s.store_id
              AND u.role = 'picker' AND u.is_active) AS pickers,
           (SELECT count(*) FROM riders r WHERE r.home_store_id = s.store_id
              AND r.on_duty AND r.status = 'IDLE') AS idle_riders
    FROM dark_stores s JOIN cities c ON c.city_id = s.city_id
    WHERE s.is_operational""")


async def rank_stores(session: AsyncSession, *, point: LatLng, now: datetime) -> list[Candidate]:
    found: list[Candidate] = []
    for row in await session.execute(_STORES_SQL):
        (store_id, name, lat, lng, radius, zone, hours, tz, in_flight, pickers, idle) = row
        distance = haversine_m(LatLng(lat, lng), point)
        inside = point_in_geojson(point, zone) if zone else distance <= radius
        if not inside or not is_open(hours, now.astimezone(ZoneInfo(tz))):
            continue
        queue = in_flight / max(pickers, 1)
        eta = (
            distance * ROAD_FACTOR / RIDE_M_PER_MIN
            + queue * PICK_MIN_PER_QUEUED_ORDER
            - min(idle, 3) * RIDER_BONUS_MIN
        )
        found.append(
            Candidate(
                store_id,
                name,
                round(distance, 1),
                in_flight,
                pickers,
                idle,
                round(max(eta, 0.0), 2),
            )
        )
    return sorted(found, key=lambda c: (c.eta_min, c.distance_m))


async def select_stores(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    point: LatLng,
    now: datetime,
    use_cache: bool = True,
) -> list[Candidate]:
    """Serviceable stores for a location, best first (30 s cache per location cell)."""
    if not use_cache:
        return await rank_stores(session, point=point, now=now)
    version = int(await redis.get(keys.STORE_SELECTION_VERSION) or 0)
    key = keys.store_selection(version, location_cell(point))
    cached = await redis.get(key)
    if cached is not None:
        return [Candidate(**c) for c in json.loads(cached)]
    ranked = await rank_stores(session, point=point, now=now)
    await redis.set(key, json.dumps([asdict(c) for c in ranked]), ex=CACHE_TTL_S)
    return ranked


async def invalidate_selection(redis: aioredis.Redis) -> None:
    """A store paused, resumed or changed its zone: every cached cell is stale."""
    await redis.incr(keys.STORE_SELECTION_VERSION)
