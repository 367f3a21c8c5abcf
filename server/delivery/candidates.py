"""Who can take a store's next trip, as the seed's dispatcher sees them.

Riders near the store come from the city's Redis GEO index (``riders:geo:<city>``, written
with every fix), within the scoring radius; PostgreSQL then says which of them are on duty
and free, and locks those rows (``FOR UPDATE SKIP LOCKED``) for the rest of the
dispatcher's transaction, so a second dispatcher run or a manager's reassign cannot hand
one of them a trip at the same time. A DELIVERING rider is a candidate (with the policy on)
when the rest of their trip ends within 3 minutes and no next trip waits for them: their
free-in time is the ride through their open drops plus the handovers. Battery is the
handheld's, as its last fix reported it; rating is earned from deliveries.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import eta, planning
from server.kit import keys
from server.stores.models import DarkStore
from shared.enums import RiderStatus
from shared.geo import LatLng

# trips that are the rider's next job (not yet picked up) and trips on the road
QUEUED_TRIP = ("OFFERED", "ACCEPTED", "AT_STORE")
ON_ROAD_TRIP = ("PICKED_UP", "OUT")

# A rating earned from deliveries: the share of the last 30 days' drops delivered within
# the SLA, x 5 stars, with a prior of 10 drops at 90 % so a newcomer starts at 4.5.
RATING_PRIOR_DROPS = 10
RATING_PRIOR_ON_TIME = 0.9
UNKNOWN_BATTERY_PCT = 50.0  # a handheld that never reported its battery


async def nearby_ids(
    redis: aioredis.Redis, *, store: DarkStore, radius_m: float
) -> dict[uuid.UUID, LatLng]:
    """Riders whose last fix is within ``radius_m`` of the store, with that position."""
    hits: list[Any] = await redis.geosearch(
        keys.rider_geo(store.city_id),
        longitude=store.lng,
        latitude=store.lat,
        radius=radius_m,
        unit="m",
        withcoord=True,
    )
    found: dict[uuid.UUID, LatLng] = {}
    for name, (lng, lat) in hits:
        try:
            rider_id = uuid.UUID(name.decode() if isinstance(name, bytes) else name)
        except ValueError:
            continue
        found[rider_id] = LatLng(lat, lng)
    return found


async def ratings(
    session: AsyncSession, *, rider_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, float]:
    """Stars (0..5) from each rider's last 30 days of closed drops (see the module)."""
    if not rider_ids:
        return {}
    rows = await session.execute(
        text("""
        SELECT t.rider_id, count(*),
               count(*) FILTER (WHERE s.status = 'DELIVERED'
                                AND s.delivered_at <= o.sla_deadline)
        FROM trip_stops s JOIN trips t ON t.store_id = s.store_id AND t.trip_id = s.trip_id
        JOIN orders o ON o.store_id = s.store_id AND o.order_id = s.order_id
        WHERE t.rider_id = ANY(:riders) AND s.status IN ('DELIVERED', 'FAILED')
          AND t.updated_at > :since
        GROUP BY t.rider_id"""),
        {"riders": rider_ids, "since": now - timedelta(days=30)},
    )
    found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    out = {}
    for rider_id in rider_ids:
        drops, on_time = found.get(rider_id, (0, 0))
        prior = RATING_PRIOR_DROPS * RATING_PRIOR_ON_TIME
        out[rider_id] = 5.0 * (on_time + prior) / (drops + RATING_PRIOR_DROPS)
    return out


async def batteries(
    redis: aioredis.Redis, rider_ids: list[uuid.UUID], *, city_id: str
) -> dict[uuid.UUID, float]:
    """The battery each handheld reported with its last fix."""
    pipe = redis.pipeline(transaction=False)
    for rider_id in rider_ids:
        pipe.hget(keys.rider_fix(city_id, str(rider_id)), "battery")
    out = {}
    for rider_id, value in zip(rider_ids, await pipe.execute(), strict=True):
        try:
            out[rider_id] = min(100.0, max(0.0, float(value)))
        except (TypeError, ValueError):
            out[rider_id] = UNKNOWN_BATTERY_PCT
    return out


async def _free_in(
    session: AsyncSession, *, riders: dict[uuid.UUID, LatLng]
) -> dict[uuid.UUID, tuple[float, LatLng]]:
    """For riders on the road: seconds until their last open drop is handed over, and
    where that is (from their position through the open drops in route order)."""
    if not riders:
        return {}
    rows = await session.execute(
        text("""
        SELECT t.rider_id, o.delivery_lat, o.delivery_lng
        FROM trips t JOIN trip_stops s ON s.store_id = t.store_id AND s.trip_id = t.trip_id
        JOIN orders o ON o.store_id = s.store_id AND o.order_id = s.order_id
        WHERE t.rider_id = ANY(:riders) AND t.status IN ('PICKED_UP', 'OUT')
          AND s.status IN ('PENDING', 'ARRIVED')
        ORDER BY t.rider_id, s.seq"""),
        {"riders": list(riders)},
    )
    drops: dict[uuid.UUID, list[LatLng]] = defaultdict(list)
    for rider_id, lat, lng in rows:
        drops[rider_id].append(LatLng(lat, lng))
    out = {}
    for rider_id, here in riders.items():
        route = drops.get(rider_id, [])
        if not route:
            out[rider_id] = (0.0, here)
            continue
        legs = planning.route_etas(here, route, dwell_s=planning.HANDOVER_S)
        out[rider_id] = (legs[-1] + planning.HANDOVER_S, route[-1])
    return out


# the riders who may take a trip, locked; with the policy on, DELIVERING riders too, but
# no one whose next trip already waits (read as rows, not ORM objects: a dispatcher run
# locates every rider near the store, most runs offer none of them anything)
_LOCATE = text("""
    SELECT r.rider_id, r.status FROM riders r
    WHERE r.rider_id = ANY(:ids) AND r.city_id = :city AND r.on_duty
      AND r.status = ANY(:statuses)
      AND NOT (CAST(:busy AS boolean) AND EXISTS (
          SELECT 1 FROM trips t WHERE t.rider_id = r.rider_id AND t.status = ANY(:queued)))
    ORDER BY r.rider_id
    FOR UPDATE OF r SKIP LOCKED""")


async def locate(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store: DarkStore,
    weights: planning.ScoreWeights,
    busy: bool,
) -> list[planning.RiderCandidate]:
    """The store's candidates (their rows locked for this transaction) with where they are
    and when they are free; not yet scored (rating and battery 0, no history): ``scored``
    reads those, only for the riders a dispatcher run may offer a trip to (most runs offer
    nothing, and the scores are most of a run's reads)."""
    near = await nearby_ids(redis, store=store, radius_m=weights.radius_m)
    if not near:
        return []
    statuses = [RiderStatus.IDLE, *([RiderStatus.DELIVERING] if busy else [])]
    rows = (
        await session.execute(
            _LOCATE,
            {
                "ids": list(near),
                "city": store.city_id,
                "statuses": [str(s) for s in statuses],
                "busy": busy,
                "queued": list(QUEUED_TRIP),
            },
        )
    ).all()
    if not rows:
        return []
    on_road = await _free_in(
        session,
        riders={
            rider_id: near[rider_id] for rider_id, status in rows if status != RiderStatus.IDLE
        },
    )
    candidates = []
    for rider_id, status in rows:
        free_in, free_at = on_road.get(rider_id, (0.0, None))
        candidates.append(
            planning.RiderCandidate(
                str(rider_id), near[rider_id], status, free_in, 0.0, 0.0, None, free_at
            )
        )
    return candidates


async def scored(
    session: AsyncSession,
    redis: aioredis.Redis,
    found: list[planning.RiderCandidate],
    *,
    store: DarkStore,
    now: datetime,
) -> list[planning.RiderCandidate]:
    """``found`` (from ``locate``) with each rider's rating, battery and ride history."""
    if not found:
        return []
    ids = [uuid.UUID(c.rider_id) for c in found]
    stars = await ratings(session, rider_ids=ids, now=now)
    battery = await batteries(redis, ids, city_id=store.city_id)
    past = await eta.rider_history(session, store_id=store.store_id, rider_ids=ids, now=now)
    return [
        replace(
            c,
            rating=stars[rider_id],
            battery_pct=battery[rider_id],
            hist_avg_minutes=past[rider_id][0] if rider_id in past else None,
        )
        for c, rider_id in zip(found, ids, strict=True)
    ]
