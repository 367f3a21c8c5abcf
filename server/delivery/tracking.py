"""What a fix needs of its rider, kept in Redis so a fix reads no PostgreSQL (issue 17
point 5): on or off duty (or marked offline), and the trip the fan-out publishes to (the
trip on the road, else the next one: its store and open stops with their drop points).

The fix script reads it beside the fix (``rider:{C}:<id>:track``, one round trip). When it
is missing (first fix, after a change, Redis lost) the fix reads PostgreSQL (``fill``) and
keeps what it read for the next fixes.

It is dropped, never patched: every transaction that changes a trip, a stop or a rider row
(through the ORM: assign, accept, pickup, depart, each drop, release, reassign, cancel,
geofence crossings, shifts) drops the context of every rider it touched once it ends
(``after_flush`` listener below; raw SQL calls ``touched``). A drop bumps a per-rider
sequence first, and a fill is written only if the sequence is the one it saw before its
read, so a fill that read the old trip can never land after the change's drop. What is
left: a fix that read the context just before a commit publishes once more to the old trip
(as a PostgreSQL read just before it did); a process that dies between its commit and the
drop leaves the context for its TTL (2 min).
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery.models import Rider, Trip, TripStop
from server.kit import keys, scripts, uow
from server.kit.errors import NotFound

TTL_S = 120

# The rider's trip as the fan-out needs it, in one statement: the trip on the road, else
# the next one (as ``trips.current_trip`` orders them), its store and its open stops.
# A row: trip, store, trip status, store lat, lng, order, stop status, drop lat, lng.
_TRACKING = text("""
    WITH t AS (
      SELECT trip_id, store_id, status FROM trips
      WHERE rider_id = :r AND status IN ('OFFERED', 'ACCEPTED', 'AT_STORE', 'PICKED_UP', 'OUT')
      ORDER BY status IN ('OFFERED', 'ACCEPTED', 'AT_STORE'), created_at NULLS FIRST
      LIMIT 1)
    SELECT t.trip_id, t.store_id, t.status, d.lat, d.lng,
           s.order_id, s.status, o.delivery_lat, o.delivery_lng
    FROM t JOIN dark_stores d ON d.store_id = t.store_id
    LEFT JOIN trip_stops s ON s.store_id = t.store_id AND s.trip_id = t.trip_id
      AND s.status IN ('PENDING', 'ARRIVED')
    LEFT JOIN orders o ON o.store_id = s.store_id AND o.order_id = s.order_id
    ORDER BY s.seq""")
_RIDER = text("SELECT on_duty, status FROM riders WHERE rider_id = :r")


@dataclass(frozen=True)
class Track:
    duty: str  # on, off, offline (on duty, the signal lost)
    rows: list[list[Any]]  # the ``_TRACKING`` rows, ids as text; [] when no trip


def decode(duty: Any, rows: Any) -> Track:
    return Track(scripts.text(duty), json.loads(scripts.text(rows)))


async def trip_rows(session: AsyncSession, rider_id: uuid.UUID) -> list[list[Any]]:
    rows = (await session.execute(_TRACKING, {"r": rider_id})).all()
    return [[str(v) if isinstance(v, uuid.UUID) else v for v in row] for row in rows]


async def fill(
    session: AsyncSession, redis: aioredis.Redis, *, city_id: str, rider_id: uuid.UUID
) -> Track:
    """The rider and their trip from PostgreSQL, kept in Redis unless a change came
    between (the cold path: the first fix, or the first after a change)."""
    attach(_engine(session.sync_session), redis)
    seq = await redis.get(keys.rider_track_seq(city_id, str(rider_id)))
    rider = (await session.execute(_RIDER, {"r": rider_id})).one_or_none()
    if rider is None:
        raise NotFound("this user is not a rider", code="rider_not_found")
    duty = "off" if not rider[0] else "offline" if rider[1] == "OFFLINE" else "on"
    track = Track(duty, await trip_rows(session, rider_id))
    await scripts.run(
        redis,
        "delivery/track",
        keys=[
            keys.rider_track(city_id, str(rider_id)),
            keys.rider_track_seq(city_id, str(rider_id)),
        ],
        args=[scripts.text(seq) if seq is not None else "", duty, json.dumps(track.rows), TTL_S],
    )
    return track


async def drop(redis: aioredis.Redis, riders: Iterable[tuple[str, uuid.UUID]]) -> None:
    """Forget the contexts of (city, rider): the sequence first, so a fill in flight is
    refused whichever comes first."""
    pipe = redis.pipeline(transaction=False)
    for city_id, rider_id in riders:
        pipe.incr(keys.rider_track_seq(city_id, str(rider_id)))
        pipe.delete(keys.rider_track(city_id, str(rider_id)))
    await pipe.execute()


# Where to drop contexts, per database this process has filled contexts of or serves
# (``attach``) and per event loop: a transaction's listener has only its session. A
# process whose trip changes run on another loop than its fixes (a test's stack beside
# its live server) gets a client of the same Redis for that loop.
_redis_of: dict[str, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]] = {}


def attach(engine: Engine, redis: aioredis.Redis) -> None:
    loops = _redis_of.setdefault(str(engine.url), weakref.WeakKeyDictionary())
    loops[asyncio.get_running_loop()] = redis


def _redis_for(engine: Engine) -> aioredis.Redis | None:
    loops = _redis_of.get(str(engine.url))
    if not loops:
        return None  # no context was filled through this database in this process
    loop = asyncio.get_running_loop()
    redis = loops.get(loop)
    source = next(iter(loops.values()))
    if redis is None and isinstance(source, aioredis.Redis):  # a cluster client: attach it
        pool = source.connection_pool
        redis = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool(
                connection_class=pool.connection_class, **pool.connection_kwargs
            )
        )
        loops[loop] = redis
    return redis


# a rider's city never changes: read once per process
_cities: dict[uuid.UUID, str] = {}


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


async def city_of(session: AsyncSession, rider_id: uuid.UUID) -> str:
    city = _cities.get(rider_id)
    if city is None:
        found = await session.execute(
            text("SELECT city_id FROM riders WHERE rider_id = :r"), {"r": rider_id}
        )
        city = found.scalar_one_or_none()
        if city is None:
            raise NotFound("this user is not a rider", code="rider_not_found")
        _cities[rider_id] = city
    return city


def touched(session: Session | AsyncSession, riders: Iterable[tuple[str, uuid.UUID]]) -> None:
    """Drop these (city, rider) contexts when the transaction ends (committed or not: a
    fill inside it may have read what it had not committed)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    redis = _redis_for(_engine(sync))
    if redis is None:
        return  # no context was filled through this database in this process
    pending: set[tuple[str, uuid.UUID]] = sync.info.setdefault("qc_track_touched", set())
    if not pending:

        async def hook() -> None:
            await drop(redis, sync.info.pop("qc_track_touched", ()))

        uow.after_either(sync, hook)
    pending.update(riders)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    """Which riders' trips this flush changed (a reassign: both riders)."""
    if str(_engine(session).url) not in _redis_of:
        return
    riders: set[uuid.UUID] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Trip):
            riders.add(obj.rider_id)
            riders.update(inspect(obj).attrs.rider_id.history.deleted or ())
        elif isinstance(obj, TripStop):
            trip = session.identity_map.get(inspect(Trip).identity_key_from_primary_key(
                (obj.store_id, obj.trip_id)))  # fmt: skip
            if isinstance(trip, Trip):
                riders.add(trip.rider_id)
            else:
                found = session.connection().execute(
                    text("SELECT rider_id FROM trips WHERE trip_id = :t"), {"t": obj.trip_id}
                )
                riders.update(found.scalars())
        elif isinstance(obj, Rider):
            riders.add(obj.rider_id)
            _cities[obj.rider_id] = obj.city_id
    missing = riders - _cities.keys()
    if missing:
        found = session.connection().execute(
            text("SELECT rider_id, city_id FROM riders WHERE rider_id = ANY(:r)"),
            {"r": list(missing)},
        )
        _cities.update({r: c for r, c in found.all()})
    touched(session, [(_cities[r], r) for r in riders if r in _cities])
