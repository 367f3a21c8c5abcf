"""Riders: shifts and live positions.

Positions live in Redis (``locations``: a GEO index per city, the last fix per rider, a
sampled history written to PostgreSQL in batches); a fix writes nothing to PostgreSQL
unless it crosses a geofence or brings back a rider marked offline, and reads nothing
while the rider's tracking context is in Redis (``tracking``). Each fix is fanned out to
the tracking channels of the rider's trip's orders through Redis pub/sub, so any API
replica's sockets see it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import eta, locations, tracking, trips
from server.delivery.models import Rider, RiderShift
from server.identity.models import User
from server.kit import keys
from server.kit.errors import Conflict, NotFound, Unprocessable
from server.stores.models import DarkStore
from shared.enums import RiderStatus
from shared.geo import LatLng, haversine_m
from shared.schemas.delivery import GpsFix

GEOFENCE_M = 50.0
MAX_FIX_AGE = timedelta(hours=24)  # what a handheld's offline buffer keeps


async def get_rider(session: AsyncSession, *, user: User, for_update: bool = False) -> Rider:
    rider = await session.get(Rider, user.id, with_for_update=for_update)
    if rider is None:
        raise NotFound("this user is not a rider", code="rider_not_found")
    return rider


async def set_shift(
    session: AsyncSession, redis: aioredis.Redis, *, rider: Rider, on_duty: bool, now: datetime
) -> Rider:
    if on_duty == rider.on_duty:
        return rider
    if not on_duty and await trips.current_trip(session, rider_id=rider.rider_id) is not None:
        raise Conflict("finish or hand back the current trip first", code="trip_in_progress")
    rider.on_duty = on_duty
    rider.status = RiderStatus.IDLE if on_duty else RiderStatus.OFFLINE
    session.add(rider)
    if on_duty:
        session.add(RiderShift(rider_id=rider.rider_id, started_at=now))
    else:
        await session.execute(
            text(
                "UPDATE rider_shifts SET ended_at = :now WHERE rider_id = :r AND ended_at IS NULL"
            ),
            {"now": now, "r": rider.rider_id},
        )
        await redis.zrem(keys.rider_geo(rider.city_id), str(rider.rider_id))
    return rider


def _unusable(fix: GpsFix, now: datetime) -> Unprocessable | None:
    if fix.at.tzinfo is None:
        return Unprocessable("fix times must carry a time zone", code="naive_time")
    if fix.at > now + timedelta(seconds=60):
        return Unprocessable("a fix from the future", code="fix_in_future")
    if fix.at < now - MAX_FIX_AGE:
        return Unprocessable("a fix older than the offline buffer keeps (24 h)", code="fix_too_old")
    return None


async def ingest_fixes(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    rider: Rider,
    fixes: list[GpsFix],
    now: datetime,
    refused: list[tuple[GpsFix, Unprocessable]] | None = None,
) -> tuple[int, int]:
    """``take_fixes`` for a rider row already read."""
    return await take_fixes(
        session,
        redis,
        rider_id=rider.rider_id,
        city_id=rider.city_id,
        fixes=fixes,
        now=now,
        refused=refused,
    )


async def take_fixes(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    rider_id: uuid.UUID,
    city_id: str,
    fixes: list[GpsFix],
    now: datetime,
    refused: list[tuple[GpsFix, Unprocessable]] | None = None,
) -> tuple[int, int]:
    """Apply fixes in time order; older-than-last or repeated fixes are duplicates.
    Returns (accepted, duplicates). Only on-duty riders are tracked.

    A fix the server can never take (no time zone, from the future, older than a day)
    raises, unless ``refused`` is given: then it is left out and listed there, so one
    bad fix in a replayed batch does not hold back the good ones.

    The rider's duty and trip come with the fix script's answer (``tracking``): with that
    context in Redis, a fix runs no PostgreSQL statement unless it crosses a geofence or
    brings back a rider marked offline."""
    usable = []
    for fix in fixes:
        problem = _unusable(fix, now)
        if problem is None:
            usable.append(fix)
        elif refused is None:
            raise problem
        else:
            refused.append((fix, problem))
    if not usable:
        return 0, 0
    usable.sort(key=lambda f: f.at)
    recorded = await locations.record(
        redis, city_id=city_id, rider_id=rider_id, fixes=usable, tracked=True
    )
    track = recorded.track
    if track is None:  # no context (first fix, a change since, Redis lost): PostgreSQL
        track = await tracking.fill(session, redis, city_id=city_id, rider_id=rider_id)
        if track.duty != "off":
            recorded = await locations.record(
                redis, city_id=city_id, rider_id=rider_id, fixes=usable
            )
    if track.duty == "off":
        raise Conflict("start a shift first: positions are tracked on duty only", code="off_duty")
    if not recorded.accepted:
        return 0, recorded.duplicates
    latest = usable[-1]  # accepted: newer than the last fix, so the newest of them
    if track.duty == "offline":
        rider = await session.get(Rider, rider_id)
        assert rider is not None
        if rider.status == RiderStatus.OFFLINE:
            rider.status = RiderStatus.IDLE  # the signal is back: offers may come again
            session.add(rider)
    await _after_move(session, redis, rider_id=rider_id, rows=track.rows, fix=latest, now=now)
    return recorded.accepted, recorded.duplicates


def _at_a_geofence(rows: list[Any], here: LatLng) -> bool:
    status, store = rows[0][2], LatLng(rows[0][3], rows[0][4])
    if status == "ACCEPTED":
        return haversine_m(here, store) <= GEOFENCE_M
    return status == "OUT" and any(
        r[5] is not None
        and r[6] == "PENDING"
        and haversine_m(here, LatLng(r[7], r[8])) <= GEOFENCE_M
        for r in rows
    )


async def _cross(
    session: AsyncSession, *, rider_id: uuid.UUID, here: LatLng, now: datetime
) -> None:
    """A fix at a geofence (rare, the only write a fix makes): under the rider row's lock,
    as the trip actions take it, the trip read again, so a fix never undoes an action that
    committed meanwhile. 50 m of the store applies AT_STORE; of a drop, ARRIVED."""
    rider = await session.get(Rider, rider_id, with_for_update=True, populate_existing=True)
    trip = await trips.current_trip(session, rider_id=rider_id)
    if rider is None or trip is None:
        return
    store = await session.get(DarkStore, trip.store_id)
    assert store is not None
    if trip.status == "ACCEPTED" and haversine_m(here, LatLng(store.lat, store.lng)) <= GEOFENCE_M:
        trip.status, trip.updated_at = "AT_STORE", now
        rider.status = RiderStatus.AT_STORE
        session.add(trip)
        session.add(rider)
    if trip.status == "OUT":
        for stop, order in trips.open_stops(await trips.trip_stops(session, trip.trip_id)):
            drop = LatLng(order.delivery_lat, order.delivery_lng)
            if stop.status == "PENDING" and haversine_m(here, drop) <= GEOFENCE_M:
                stop.status, stop.arrived_at = "ARRIVED", now
                session.add(stop)
    await session.flush()


async def _after_move(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    rider_id: uuid.UUID,
    rows: list[list[Any]],
    fix: GpsFix,
    now: datetime,
) -> None:
    """Geofences and the customer's live view for every order on the rider's trip
    (``rows``, the tracking context): one publish per order; PostgreSQL only to cross a
    geofence (the change drops the context: the next fix reads the trip afresh)."""
    here = LatLng(fix.lat, fix.lng)
    if rows and _at_a_geofence(rows, here):
        await _cross(session, rider_id=rider_id, here=here, now=now)
        rows = await tracking.trip_rows(session, rider_id)
    if not rows:
        return
    _, store_id, status, store_lat, store_lng = rows[0][:5]
    stops = [(r[5], r[6], LatLng(r[7], r[8])) for r in rows if r[5] is not None]
    etas = await eta.etas(
        session,
        rider_id=rider_id,
        store_id=store_id,
        trip_status=status,
        store_at=LatLng(store_lat, store_lng),
        here=here,
        speed=fix.speed_mps,
        drops=[drop for _, _, drop in stops],
        now=now,
    )
    publish = redis.pipeline(transaction=False)  # one round trip for every order
    for (order_id, stop_status, _), elapsed in zip(stops, etas, strict=True):
        publish.spublish(  # sharded: only the channel's shard carries it
            keys.order_channel(str(order_id)),
            orjson.dumps(
                {
                    "topic": "rider.location",
                    "payload": {
                        "order_id": str(order_id),
                        "rider_id": str(rider_id),
                        "lat": fix.lat,
                        "lng": fix.lng,
                        "at": fix.at.isoformat(),
                        "eta_s": round(elapsed),
                        "arrived": stop_status == "ARRIVED",
                    },
                }
            ),
        )
    await publish.execute()
