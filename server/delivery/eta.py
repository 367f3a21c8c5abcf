"""Live ETAs: the route from the rider to each open drop, corrected by their recent speed
and by how their past rides from the store compared with plan (the rider's history)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import planning
from server.kit.cache import TTLCache
from shared.geo import LatLng, haversine_m

HISTORY_MIN_SAMPLES = 3
# a fix arrives every 5 s per rider: the history query runs once per rider and store per
# 10 minutes, not on every fix
_factors: TTLCache[float | None] = TTLCache(600)
# A store's ride pace is learned from its last rides out (store -> first door), once there
# are enough of them, and refreshed every 5 minutes; one odd hour cannot move it beyond
# the band around the planning pace.
PACE_SAMPLES = 100
PACE_MIN_SAMPLES = 20
PACE_WINDOW = timedelta(hours=3)
PACE_BAND = (0.6, 1.5)
_paces: TTLCache[float | None] = TTLCache(300)


async def etas(
    session: AsyncSession,
    *,
    rider_id: uuid.UUID,
    store_id: str,
    trip_status: str,
    store_at: LatLng,
    here: LatLng,
    speed: float | None,
    drops: list[LatLng],
    now: datetime,
) -> list[float]:
    """Seconds from ``here`` to each open drop (``drops``, in route order) of the rider's
    trip from the store at ``store_at``: to the store first unless the bags are on board
    (``trip_status`` OUT), then drop by drop, corrected by the rider's recent speed and by
    how their past rides from this store compared with plan. The customer's live ETA and
    the rider's trip view both come from here."""
    factor = await _history_factor(session, rider_id=rider_id, store_id=store_id, now=now)
    start = here if trip_status == "OUT" else store_at
    lead = (
        0.0
        if trip_status == "OUT"
        else planning.eta_s(haversine_m(here, start), recent_speed_mps=speed)
    )
    legs = planning.route_etas(start, drops, recent_speed_mps=speed, history_factor=factor)
    return [lead + s for s in legs]


async def _history_factor(
    session: AsyncSession, *, rider_id: uuid.UUID, store_id: str, now: datetime
) -> float | None:
    async def load() -> float | None:
        past = await rider_history(session, store_id=store_id, rider_ids=[rider_id], now=now)
        return past[rider_id][1] if rider_id in past else None

    return await _factors.get_or_load((rider_id, store_id), load)


async def rider_history(
    session: AsyncSession, *, store_id: str, rider_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, tuple[float, float]]:
    """Per rider, from their last 30 days of drops from this store: average minutes from
    leaving the store to the door, and the median ratio of actual to planned ride time
    (the ETA's history correction). Riders with fewer than 3 drops are left out."""
    if not rider_ids:
        return {}
    rows = await session.execute(
        text("""
        SELECT t.rider_id,
               avg(extract(epoch FROM s.delivered_at - o.out_for_delivery_at)) / 60,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY
                 extract(epoch FROM s.delivered_at - o.out_for_delivery_at)
                 / extract(epoch FROM s.planned_arrival_at - t.planned_depart_at)),
               count(*)
        FROM trip_stops s JOIN trips t ON t.store_id = s.store_id AND t.trip_id = s.trip_id
        JOIN orders o ON o.store_id = s.store_id AND o.order_id = s.order_id
        WHERE t.store_id = :store AND t.rider_id = ANY(:riders) AND s.status = 'DELIVERED'
          AND s.delivered_at > :since AND o.out_for_delivery_at IS NOT NULL
          AND s.planned_arrival_at > t.planned_depart_at
        GROUP BY t.rider_id"""),
        {"store": store_id, "riders": rider_ids, "since": now - timedelta(days=30)},
    )
    return {r[0]: (float(r[1]), float(r[2])) for r in rows if r[3] >= HISTORY_MIN_SAMPLES}


async def store_pace(session: AsyncSession, *, store_id: str, now: datetime) -> float | None:
    """Seconds per straight-line metre from the store to a door, the median of the store's
    recent first legs (leaving the store to arriving at the first door, the geofence's
    arrival), within ``PACE_BAND`` of the planning pace. Until the store has
    ``PACE_MIN_SAMPLES`` of its own, the median of its city's recent first legs (the same
    streets and riders: a new store, or every store after a cold start, learns from the
    first rides anywhere in the city); None until the city has that many either.
    Serviceability promises and reaches with it."""

    async def load() -> float | None:
        rows = (
            await session.execute(
                text("""
                SELECT t.store_id = :store,
                       extract(epoch FROM s.arrived_at - o.out_for_delivery_at),
                       d.lat, d.lng, o.delivery_lat, o.delivery_lng
                FROM trip_stops s
                JOIN trips t ON t.store_id = s.store_id AND t.trip_id = s.trip_id
                JOIN orders o ON o.store_id = s.store_id AND o.order_id = s.order_id
                JOIN dark_stores d ON d.store_id = t.store_id
                WHERE d.city_id = (SELECT city_id FROM dark_stores WHERE store_id = :store)
                  AND s.seq = 1 AND s.arrived_at IS NOT NULL
                  AND o.out_for_delivery_at IS NOT NULL AND s.arrived_at > :since
                ORDER BY t.store_id = :store DESC, s.arrived_at DESC LIMIT :n"""),
                {"store": store_id, "since": now - PACE_WINDOW, "n": PACE_SAMPLES},
            )
        ).all()
        own: list[float] = []
        city: list[float] = []
        for mine, secs, lat, lng, dlat, dlng in rows:
            metres = haversine_m(LatLng(lat, lng), LatLng(dlat, dlng))
            if metres > 200 and secs > 0:
                (own if mine else city).append(float(secs) / metres)
        paces = sorted(own if len(own) >= PACE_MIN_SAMPLES else own + city)
        if len(paces) < PACE_MIN_SAMPLES:
            return None
        planned = planning.ROAD_FACTOR / planning.BASE_SPEED_MPS
        lo, hi = PACE_BAND
        return min(hi * planned, max(lo * planned, paces[len(paces) // 2]))

    return await _paces.get_or_load(store_id, load)
