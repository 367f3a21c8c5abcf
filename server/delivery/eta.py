"""Live ETAs: the route from the rider to each open drop, corrected by their recent speed
and by how their past rides from the store compared with plan (the rider's history)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import planning
from server.delivery.models import Trip, TripStop
from server.kit.cache import TTLCache
from server.orders.models import Order
from server.stores.models import DarkStore
from shared.geo import LatLng, haversine_m

HISTORY_MIN_SAMPLES = 3
# a fix arrives every 5 s per rider: the history query runs once per rider and store per
# 10 minutes, not on every fix
_factors: TTLCache[float | None] = TTLCache(600)


async def etas(
    session: AsyncSession,
    *,
    trip: Trip,
    store: DarkStore,
    here: LatLng,
    speed: float | None,
    pending: list[tuple[TripStop, Order]],
    now: datetime,
) -> list[float]:
    """Seconds from ``here`` to each open drop in route order: to the store first unless
    the bags are on board, then drop by drop, corrected by the rider's recent speed and by
    how their past rides from this store compared with plan. The customer's live ETA and
    the rider's trip view both come from here."""
    factor = await _history_factor(session, rider_id=trip.rider_id, store_id=trip.store_id, now=now)
    start = here if trip.status == "OUT" else LatLng(store.lat, store.lng)
    lead = (
        0.0
        if trip.status == "OUT"
        else planning.eta_s(haversine_m(here, start), recent_speed_mps=speed)
    )
    drops = [LatLng(o.delivery_lat, o.delivery_lng) for _, o in pending]
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
        FROM trip_stops s JOIN trips t ON t.trip_id = s.trip_id
        JOIN orders o ON o.order_id = s.order_id
        WHERE t.store_id = :store AND t.rider_id = ANY(:riders) AND s.status = 'DELIVERED'
          AND s.delivered_at > :since AND o.out_for_delivery_at IS NOT NULL
          AND s.planned_arrival_at > t.planned_depart_at
        GROUP BY t.rider_id"""),
        {"store": store_id, "riders": rider_ids, "since": now - timedelta(days=30)},
    )
    return {r[0]: (float(r[1]), float(r[2])) for r in rows if r[3] >= HISTORY_MIN_SAMPLES}
