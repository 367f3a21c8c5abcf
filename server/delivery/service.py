"""Delivery: shifts, live locations, assignment with batching, handover with the OTP.

Positions live in Redis (a GEO index per city and the last fix per rider) and a sampled
history in PostgreSQL; each fix is fanned out to the tracking channels of the rider's
orders through Redis pub/sub, so any API replica's sockets see it.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import planning
from server.delivery.models import Rider, RiderShift, Trip, TripStop
from server.events.service import emit
from server.identity.models import User
from server.kit import keys
from server.kit.cache import TTLCache
from server.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from server.ops.alerts import raise_alert
from server.orders import service as orders
from server.orders.models import Order
from server.picking.models import PickTask
from server.stores.models import DarkStore
from shared.enums import AlertKind, AlertSeverity, OrderStatus, RiderStatus
from shared.geo import LatLng, haversine_m
from shared.schemas import GpsFix, TripPublic, TripStopPublic

GEOFENCE_M = 50.0
OTP_TRIES = 3
ACTIVE_TRIP = ("OFFERED", "ACCEPTED", "AT_STORE", "PICKED_UP", "OUT")
HISTORY_SAMPLE_S = 15
OFFER_TIMEOUT = timedelta(seconds=60)  # an offer not accepted in time goes to someone else
SIGNAL_LOST = timedelta(minutes=2)  # no fix for this long: the rider is treated as offline
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
    if not on_duty and await current_trip(session, rider_id=rider.rider_id) is not None:
        raise Conflict("finish or hand back the current trip first", code="trip_in_progress")
    rider.on_duty = on_duty
    rider.status = RiderStatus.IDLE if on_duty else RiderStatus.OFFLINE
    session.add(rider)
    if on_duty:
        session.add(RiderShift(rider_id=rider.rider_id, started_at=now))
    else:
        await session.exec(
            text(  # type: ignore[call-overload]
                "UPDATE rider_shifts SET ended_at = :now WHERE rider_id = :r AND ended_at IS NULL"
            ),
            params={"now": now, "r": rider.rider_id},
        )
        await redis.zrem(keys.rider_geo(rider.city_id), str(rider.rider_id))
    return rider


async def current_trip(session: AsyncSession, *, rider_id: uuid.UUID) -> Trip | None:
    return (
        await session.exec(
            select(Trip).where(Trip.rider_id == rider_id, col(Trip.status).in_(ACTIVE_TRIP))
        )
    ).first()


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
    """Apply fixes in time order; older-than-last or repeated fixes are duplicates.
    Returns (accepted, duplicates). Only on-duty riders are tracked.

    A fix the server can never take (no time zone, from the future, older than a day)
    raises, unless ``refused`` is given: then it is left out and listed there, so one
    bad fix in a replayed batch does not hold back the good ones."""
    if not rider.on_duty:
        raise Conflict("start a shift first: positions are tracked on duty only", code="off_duty")
    accepted = duplicates = 0
    last_recorded = rider.last_fix_at
    for fix in sorted(fixes, key=lambda f: (f.at.tzinfo is not None, f.at.timestamp())):
        problem = _unusable(fix, now)
        if problem is not None:
            if refused is None:
                raise problem
            refused.append((fix, problem))
            continue
        if rider.last_fix_at is not None and fix.at <= rider.last_fix_at:
            duplicates += 1
            continue
        if last_recorded is None or (fix.at - last_recorded).total_seconds() >= HISTORY_SAMPLE_S:
            await session.exec(
                text(  # type: ignore[call-overload]
                    "INSERT INTO rider_locations (rider_id, recorded_at, lat, lng, speed_mps, "
                    "accuracy_m) VALUES (:r, :at, :lat, :lng, :v, :acc) ON CONFLICT DO NOTHING"
                ),
                params={
                    "r": rider.rider_id,
                    "at": fix.at,
                    "lat": fix.lat,
                    "lng": fix.lng,
                    "v": fix.speed_mps,
                    "acc": fix.accuracy_m,
                },
            )
            last_recorded = fix.at
        rider.lat, rider.lng, rider.last_fix_at = fix.lat, fix.lng, fix.at
        latest = fix
        accepted += 1
    if not accepted:
        return accepted, duplicates
    if rider.status == RiderStatus.OFFLINE:
        rider.status = RiderStatus.IDLE  # the signal is back: offers may come again
    session.add(rider)
    pipe = redis.pipeline(transaction=False)
    pipe.geoadd(keys.rider_geo(rider.city_id), (rider.lng, rider.lat, str(rider.rider_id)))
    pipe.hset(
        keys.rider_fix(str(rider.rider_id)),
        mapping={
            "lat": rider.lat,
            "lng": rider.lng,
            "at": rider.last_fix_at.isoformat(),  # type: ignore[union-attr]
            "speed": latest.speed_mps if latest.speed_mps is not None else "",
        },
    )
    await pipe.execute()
    await _after_move(session, redis, rider=rider, speed=latest.speed_mps, now=now)
    return accepted, duplicates


async def _after_move(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    rider: Rider,
    speed: float | None,
    now: datetime,
) -> None:
    """Geofences and the customer's live view for every order on the rider's trip."""
    trip = await current_trip(session, rider_id=rider.rider_id)
    if trip is None or rider.lat is None or rider.lng is None:
        return
    here = LatLng(rider.lat, rider.lng)
    store = await session.get(DarkStore, trip.store_id)
    assert store is not None
    if trip.status == "ACCEPTED" and haversine_m(here, LatLng(store.lat, store.lng)) <= GEOFENCE_M:
        trip.status, trip.updated_at = "AT_STORE", now  # arrived at the store: applied
        rider.status = RiderStatus.AT_STORE
        session.add(trip)
        session.add(rider)
    pending = _open(await _stops(session, trip.trip_id))
    etas = await _etas(
        session, trip=trip, store=store, here=here, speed=speed, pending=pending, now=now
    )
    for (stop, order), elapsed in zip(pending, etas, strict=True):
        drop = LatLng(order.delivery_lat, order.delivery_lng)
        if (
            trip.status == "OUT"
            and stop.status == "PENDING"
            and haversine_m(here, drop) <= GEOFENCE_M
        ):
            stop.status, stop.arrived_at = "ARRIVED", now
            session.add(stop)
        await redis.publish(
            keys.order_channel(str(order.order_id)),
            json.dumps(
                {
                    "topic": "rider.location",
                    "payload": {
                        "order_id": str(order.order_id),
                        "rider_id": str(rider.rider_id),
                        "lat": rider.lat,
                        "lng": rider.lng,
                        "at": rider.last_fix_at.isoformat()  # type: ignore[union-attr]
                        if rider.last_fix_at
                        else None,
                        "eta_s": round(elapsed),
                        "arrived": stop.status == "ARRIVED",
                    },
                }
            ),
        )


async def _stops(session: AsyncSession, trip_id: uuid.UUID) -> list[tuple[TripStop, Order]]:
    rows = await session.exec(
        select(TripStop, Order)
        .where(TripStop.trip_id == trip_id, col(Order.order_id) == col(TripStop.order_id))
        .order_by(col(TripStop.seq))
    )
    return list(rows.all())  # type: ignore[arg-type]


def _open(stops: list[tuple[TripStop, Order]]) -> list[tuple[TripStop, Order]]:
    return [(s, o) for s, o in stops if s.status in ("PENDING", "ARRIVED")]


async def _etas(
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


def offer_expires_at(trip: Trip) -> datetime | None:
    """When an offer nobody accepted goes to someone else (``replace_lost_riders``)."""
    if trip.status != "OFFERED" or trip.created_at is None:
        return None
    return trip.created_at + OFFER_TIMEOUT


async def trip_view(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    trip: Trip,
    now: datetime,
    clock_speed: float = 1.0,
) -> TripPublic:
    store = await session.get(DarkStore, trip.store_id)
    assert store is not None
    stops = await _stops(session, trip.trip_id)
    eta_at: dict[uuid.UUID, datetime] = {}
    rider = await session.get(Rider, trip.rider_id)
    if (
        trip.status in ACTIVE_TRIP
        and rider is not None
        and rider.lat is not None
        and rider.lng is not None
    ):
        pending = _open(stops)
        speed = await redis.hget(keys.rider_fix(str(rider.rider_id)), "speed")
        etas = await _etas(
            session,
            trip=trip,
            store=store,
            here=LatLng(rider.lat, rider.lng),
            speed=float(speed) if speed else None,  # as the last fix's fan-out used it
            pending=pending,
            now=now,
        )
        eta_at = {
            s.order_id: now + timedelta(seconds=round(e))
            for (s, _), e in zip(pending, etas, strict=True)
        }
    return TripPublic(
        trip_id=trip.trip_id,
        store_id=trip.store_id,
        store_lat=store.lat,
        store_lng=store.lng,
        status=trip.status,
        stops=[
            TripStopPublic(
                order_id=o.order_id,
                seq=s.seq,
                status=s.status,
                lat=o.delivery_lat,
                lng=o.delivery_lng,
                address=(o.delivery_address or {}).get("line1"),
                planned_arrival_at=s.planned_arrival_at,
                sla_deadline=o.sla_deadline,
                order_status=o.status,
                eta_at=eta_at.get(s.order_id),
            )
            for s, o in stops
        ],
        server_now=now,
        clock_speed=clock_speed,
        offer_expires_at=offer_expires_at(trip),
    )


async def own_trip(
    session: AsyncSession, *, trip_id: uuid.UUID, rider: User, for_update: bool = True
) -> Trip:
    trip = await session.get(Trip, trip_id, with_for_update=for_update)
    if trip is None:
        raise NotFound("no such trip", code="trip_not_found")
    if trip.rider_id != rider.id:
        raise Forbidden("this trip belongs to another rider", code="not_your_trip")
    return trip


def _expect(trip: Trip, *states: str) -> None:
    if trip.status not in states:
        raise Conflict(
            f"the trip is {trip.status}", code="invalid_trip_state", trip_status=trip.status
        )


async def _notify(
    session: AsyncSession, *, trip: Trip, event: str, now: datetime, **extra: str
) -> None:
    await emit(
        session,
        topic=f"delivery.{event}",
        store_id=trip.store_id,
        aggregate_id=str(trip.trip_id),
        now=now,
        payload={
            "trip_id": str(trip.trip_id),
            "rider_id": str(trip.rider_id),
            "status": trip.status,
            **extra,
        },
    )


async def accept(session: AsyncSession, *, trip: Trip, now: datetime) -> None:
    _expect(trip, "OFFERED")
    trip.status, trip.updated_at = "ACCEPTED", now
    session.add(trip)
    await _notify(session, trip=trip, event="accepted", now=now)


async def hand_back(
    session: AsyncSession, redis: aioredis.Redis, *, trip: Trip, now: datetime, reason: str
) -> None:
    """A rejected offer or a rider gone offline: the orders go back to the dispatcher."""
    _expect(trip, "OFFERED", "ACCEPTED")
    await _to_dispatcher(session, redis, trip=trip, now=now)
    await _notify(session, trip=trip, event=f"handed_back:{reason}", now=now)


async def release(
    session: AsyncSession, redis: aioredis.Redis, *, trip: Trip, now: datetime, reason: str
) -> None:
    """The rider gives an accepted trip back before pickup (bags not ready, vehicle
    problem): as a hand-back, with the reason for the control tower. After pickup the
    bags are with the rider (DISPATCHED), so the trip can no longer be given back."""
    _expect(trip, "ACCEPTED", "AT_STORE")
    await _to_dispatcher(session, redis, trip=trip, now=now)
    await _notify(session, trip=trip, event="released", now=now, reason=reason)


async def _to_dispatcher(
    session: AsyncSession, redis: aioredis.Redis, *, trip: Trip, now: datetime
) -> None:
    """Cancel the trip and free its orders and rider; the dispatcher will not offer the
    orders to this rider again for a while."""
    trip.status, trip.updated_at = "CANCELLED", now
    session.add(trip)
    for _, order in await _stops(session, trip.trip_id):
        order.rider_id = None
        session.add(order)
        await redis.sadd(keys.dispatch_avoid(str(order.order_id)), str(trip.rider_id))
        await redis.expire(keys.dispatch_avoid(str(order.order_id)), 1800)
    rider = await session.get(Rider, trip.rider_id)
    if rider is not None:
        rider.status = RiderStatus.IDLE if rider.on_duty else RiderStatus.OFFLINE
        session.add(rider)


async def arrived_at_store(session: AsyncSession, *, trip: Trip, now: datetime) -> None:
    _expect(trip, "ACCEPTED", "AT_STORE")
    trip.status, trip.updated_at = "AT_STORE", now
    session.add(trip)


async def pick_up(
    session: AsyncSession, *, trip: Trip, bag_labels: list[str], actor: User, now: datetime
) -> None:
    """Every order of the trip must be PACKED and its bag label scanned: DISPATCHED."""
    _expect(trip, "ACCEPTED", "AT_STORE")
    stops = await _stops(session, trip.trip_id)
    labels = {}
    for _, order in stops:
        task = await session.get(PickTask, (order.store_id, order.order_id))
        labels[order.order_id] = task.bag_label if task else None
    if any(o.status != OrderStatus.PACKED for _, o in stops):
        raise Conflict("not every bag is packed yet", code="not_packed")
    missing = [str(oid) for oid, label in labels.items() if label not in bag_labels]
    if missing:
        raise Conflict("scan the bag label of every order", code="bag_not_scanned", orders=missing)
    for _, order in stops:
        order.delivery_otp = f"{secrets.randbelow(10_000):04d}"
        await orders.transition(
            session, order=order, to=OrderStatus.DISPATCHED, now=now, actor_id=actor.id
        )
    trip.status, trip.updated_at = "PICKED_UP", now
    session.add(trip)


async def depart(session: AsyncSession, *, trip: Trip, actor: User, now: datetime) -> None:
    _expect(trip, "PICKED_UP")
    for _, order in await _stops(session, trip.trip_id):
        await orders.transition(
            session, order=order, to=OrderStatus.OUT_FOR_DELIVERY, now=now, actor_id=actor.id
        )
    trip.status, trip.updated_at = "OUT", now
    session.add(trip)
    rider = await session.get(Rider, trip.rider_id)
    if rider is not None:
        rider.status = RiderStatus.DELIVERING
        session.add(rider)


async def _stop(session: AsyncSession, trip: Trip, order_id: uuid.UUID) -> tuple[TripStop, Order]:
    for stop, order in await _stops(session, trip.trip_id):
        if stop.order_id == order_id:
            return stop, order
    raise NotFound("this order is not on the trip", code="stop_not_found")


async def deliver(
    session: AsyncSession, *, trip: Trip, order_id: uuid.UUID, otp: str, actor: User, now: datetime
) -> TripStop:
    """The customer's 4-digit OTP completes the drop; three wrong tries lock it and
    raise an alert for the control tower."""
    _expect(trip, "OUT")
    stop, order = await _stop(session, trip, order_id)
    if stop.status in ("DELIVERED", "FAILED"):
        raise Conflict(f"this drop is already {stop.status}", code="stop_closed")
    if stop.otp_locked:
        raise Conflict("the OTP is locked after 3 wrong tries; call support", code="otp_locked")
    if not secrets.compare_digest(otp, order.delivery_otp or ""):
        stop.otp_attempts += 1
        stop.otp_locked = stop.otp_attempts >= OTP_TRIES
        session.add(stop)
        if stop.otp_locked:
            await emit(
                session,
                topic="alert.otp_locked",
                store_id=trip.store_id,
                aggregate_id=str(order_id),
                now=now,
                payload={"order_id": str(order_id), "rider_id": str(trip.rider_id)},
            )
            await raise_alert(
                session,
                kind=AlertKind.OTP_LOCKED,
                severity=AlertSeverity.CRITICAL,
                store_id=trip.store_id,
                subject=str(order_id),
                message=f"OTP locked after {OTP_TRIES} wrong tries on order {str(order_id)[:8]}",
                now=now,
            )
        await session.commit()  # the attempt counts even though the request fails
        raise Conflict(
            "wrong OTP",
            code="otp_locked" if stop.otp_locked else "wrong_otp",
            tries_left=max(0, OTP_TRIES - stop.otp_attempts),
        )
    stop.status, stop.delivered_at = "DELIVERED", now
    session.add(stop)
    await orders.transition(
        session, order=order, to=OrderStatus.DELIVERED, now=now, actor_id=actor.id
    )
    await _maybe_complete(session, trip=trip, now=now)
    return stop


async def fail_drop(
    session: AsyncSession,
    *,
    trip: Trip,
    order_id: uuid.UUID,
    reason: str,
    actor: User,
    now: datetime,
) -> TripStop:
    _expect(trip, "OUT")
    stop, order = await _stop(session, trip, order_id)
    if stop.status in ("DELIVERED", "FAILED"):
        raise Conflict(f"this drop is already {stop.status}", code="stop_closed")
    stop.status, stop.failed_reason = "FAILED", reason
    session.add(stop)
    await orders.transition(
        session,
        order=order,
        to=OrderStatus.CANCELLED,
        now=now,
        actor_id=actor.id,
        reason=f"delivery_failed: {reason}",
    )
    await _maybe_complete(session, trip=trip, now=now)
    return stop


async def _maybe_complete(session: AsyncSession, *, trip: Trip, now: datetime) -> None:
    if all(s.status in ("DELIVERED", "FAILED") for s, _ in await _stops(session, trip.trip_id)):
        trip.status, trip.updated_at = "COMPLETED", now
        session.add(trip)
        rider = await session.get(Rider, trip.rider_id)
        if rider is not None:
            rider.status = RiderStatus.IDLE if rider.on_duty else RiderStatus.OFFLINE
            session.add(rider)


async def dispatch_store(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store: DarkStore,
    now: datetime,
    weights: planning.ScoreWeights,
) -> list[Trip]:
    """Batch the store's orders that wait for a rider and assign the batches together."""
    waiting = list(
        (
            await session.exec(
                select(Order, PickTask)
                .where(
                    Order.store_id == store.store_id,
                    col(Order.rider_id).is_(None),
                    col(Order.status).in_(
                        [OrderStatus.PICKING, OrderStatus.PARTIALLY_FULFILLED, OrderStatus.PACKED]
                    ),
                    PickTask.store_id == Order.store_id,
                    PickTask.order_id == Order.order_id,
                )
                .with_for_update(skip_locked=True, of=Order)
            )
        ).all()
    )
    if not waiting:
        return []
    here = LatLng(store.lat, store.lng)
    now_s = now.timestamp()
    ready = {}
    for order, task in waiting:
        started = task.claimed_at.timestamp() if task.claimed_at else now_s
        ready[str(order.order_id)] = max(now_s, started + task.estimate_s)
    batches = planning.plan_batches(
        [
            planning.WaitingOrder(
                str(o.order_id),
                o.store_id,
                here,
                LatLng(o.delivery_lat, o.delivery_lng),
                o.placed_at.timestamp() if o.placed_at else now_s,
                ready[str(o.order_id)],
            )
            for o, _ in waiting
        ],
        now_s,
    )
    riders = list(
        (
            await session.exec(
                select(Rider).where(
                    Rider.city_id == store.city_id,
                    col(Rider.on_duty).is_(True),
                    Rider.status == RiderStatus.IDLE,
                    col(Rider.lat).is_not(None),
                )
            )
        ).all()
    )
    by_id = {str(r.rider_id): r for r in riders}
    leaders = [
        planning.WaitingOrder(
            b.order_ids[0],
            store.store_id,
            here,
            b.stops[0].drop,
            b.stops[0].placed_at_s,
            b.depart_at_s,
        )
        for b in batches
    ]
    trips: list[Trip] = []
    avoid = {
        b.order_ids[0]: {
            a.decode() if isinstance(a, bytes) else a
            for a in await redis.smembers(keys.dispatch_avoid(b.order_ids[0]))
        }
        for b in batches
    }
    past = await rider_history(
        session, store_id=store.store_id, rider_ids=[r.rider_id for r in riders], now=now
    )
    candidates = [
        planning.RiderCandidate(
            str(r.rider_id),
            LatLng(r.lat, r.lng),  # type: ignore[arg-type]
            r.status,
            0.0,
            r.rating,
            r.battery_pct,
            past[r.rider_id][0] if r.rider_id in past else None,  # time on this route
        )
        for r in riders
    ]
    batch_of = {b.order_ids[0]: b for b in batches}
    orders_by_id = {str(o.order_id): o for o, _ in waiting}
    # orders a rider turned down are matched after the rest, to the best other rider
    fresh = [w for w in leaders if not avoid[w.order_id]]
    pairs = planning.assign(fresh, candidates, weights)
    taken = {rider_id for _, rider_id in pairs}
    for w in leaders:
        if not avoid[w.order_id]:
            continue
        options = [
            c
            for c in candidates
            if c.rider_id not in taken | avoid[w.order_id]
            and planning.is_eligible(c, here, weights)
        ]
        if options:
            best = max(options, key=lambda c: planning.rider_score(c, here, weights))
            pairs.append((w.order_id, best.rider_id))
            taken.add(best.rider_id)
    for leader, rider_id in pairs:
        batch, rider = batch_of[leader], by_id[rider_id]
        trip = Trip(
            store_id=store.store_id,
            rider_id=rider.rider_id,
            created_at=now,
            updated_at=now,
            planned_depart_at=datetime.fromtimestamp(batch.depart_at_s, tz=now.tzinfo),
        )
        session.add(trip)
        for seq, stop in enumerate(batch.stops, start=1):
            order = orders_by_id[stop.order_id]
            order.rider_id = rider.rider_id
            session.add(order)
            session.add(
                TripStop(
                    trip_id=trip.trip_id,
                    order_id=order.order_id,
                    seq=seq,
                    planned_arrival_at=datetime.fromtimestamp(stop.arrive_at_s, tz=now.tzinfo),
                )
            )
        rider.status = RiderStatus.ASSIGNED
        session.add(rider)
        await _notify(session, trip=trip, event="offered", now=now)
        trips.append(trip)
    return trips


async def replace_lost_riders(
    session: AsyncSession, redis: aioredis.Redis, *, now: datetime
) -> int:
    """Offers nobody accepted in time, and trips not yet picked up whose rider lost signal,
    go back to the dispatcher (the rider is set offline when the signal is gone)."""
    rows = (
        await session.exec(
            select(Trip, Rider)
            .where(col(Trip.status).in_(["OFFERED", "ACCEPTED"]), Rider.rider_id == Trip.rider_id)
            .with_for_update(skip_locked=True, of=Trip)
        )
    ).all()
    replaced = 0
    for trip, rider in rows:
        lost = rider.last_fix_at is None or now - rider.last_fix_at > SIGNAL_LOST
        expires = offer_expires_at(trip)
        unanswered = expires is not None and now > expires
        if not (lost or unanswered):
            continue
        await hand_back(
            session, redis, trip=trip, now=now, reason="signal_lost" if lost else "offer_timeout"
        )
        if lost:
            rider.status = RiderStatus.OFFLINE
            session.add(rider)
            await emit(
                session,
                topic="alert.rider_signal_lost",
                store_id=trip.store_id,
                aggregate_id=str(rider.rider_id),
                now=now,
                payload={"rider_id": str(rider.rider_id), "trip_id": str(trip.trip_id)},
            )
            await raise_alert(
                session,
                kind=AlertKind.RIDER_SIGNAL_LOST,
                severity=AlertSeverity.WARNING,
                store_id=trip.store_id,
                subject=str(rider.rider_id),
                message=f"no signal from rider {str(rider.rider_id)[:8]} for 2 min; trip reassigned",
                now=now,
            )
        replaced += 1
    return replaced


HISTORY_MIN_SAMPLES = 3
# a fix arrives every 5 s per rider: the history query runs once per rider and store per
# 10 minutes, not on every fix
_factors: TTLCache[float | None] = TTLCache(600)


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
    rows = await session.exec(
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
        GROUP BY t.rider_id"""),  # type: ignore[call-overload]
        params={"store": store_id, "riders": rider_ids, "since": now - timedelta(days=30)},
    )
    return {r[0]: (float(r[1]), float(r[2])) for r in rows if r[3] >= HISTORY_MIN_SAMPLES}


# --- manager overrides (control tower) ------------------------------------------------------

NOT_PICKED_UP = ("OFFERED", "ACCEPTED", "AT_STORE")
ASSIGNABLE_ORDER_STATES = frozenset(
    {
        OrderStatus.CONFIRMED,
        OrderStatus.PICKING,
        OrderStatus.PARTIALLY_FULFILLED,
        OrderStatus.PACKED,
    }
)


async def detach_order(
    session: AsyncSession, *, order: Order, now: datetime, reason: str
) -> Trip | None:
    """Take the order off its rider's open trip. Before pickup the stop is removed (a trip
    left empty is cancelled and its rider freed); after pickup the bag is with the rider,
    so the stop is closed as FAILED with the reason. Returns the trip it left, if any."""
    row = (
        await session.exec(
            select(TripStop, Trip)
            .where(
                TripStop.order_id == order.order_id,
                col(Trip.trip_id) == col(TripStop.trip_id),
                col(Trip.status).in_(ACTIVE_TRIP),
            )
            .with_for_update(of=Trip)
        )
    ).first()
    order.rider_id = None
    session.add(order)
    if row is None:
        return None
    stop, trip = row
    if trip.status in NOT_PICKED_UP:
        await session.delete(stop)
        await session.flush()
        left = await _stops(session, trip.trip_id)
        for seq, (s, _) in enumerate(left, start=1):
            s.seq = seq
            session.add(s)
        if not left:
            trip.status = "CANCELLED"
            rider = await session.get(Rider, trip.rider_id, with_for_update=True)
            if rider is not None:
                rider.status = RiderStatus.IDLE if rider.on_duty else RiderStatus.OFFLINE
                session.add(rider)
    elif stop.status not in ("DELIVERED", "FAILED"):
        stop.status, stop.failed_reason = "FAILED", reason[:200]
        session.add(stop)
    trip.updated_at = now
    session.add(trip)
    await session.flush()
    if trip.status != "CANCELLED":
        await _maybe_complete(session, trip=trip, now=now)
    await _notify(session, trip=trip, event="changed", now=now)
    return trip


async def assign_to_rider(
    session: AsyncSession, *, order: Order, rider: Rider, now: datetime, reason: str
) -> Trip:
    """A manager hands an order that is still at the store to a chosen idle rider: it
    leaves its current trip and becomes a one-stop offer on the new rider's handheld."""
    if order.status not in ASSIGNABLE_ORDER_STATES:
        raise Conflict(
            f"an order that is {order.status} cannot change rider",
            code="order_not_reassignable",
            status_now=order.status,
        )
    if rider.city_id != order.city_id:
        raise Conflict("the rider works in another city", code="rider_not_in_city")
    if order.rider_id == rider.rider_id:
        raise Conflict("the order is already with this rider", code="same_rider")
    if not rider.on_duty or rider.status != RiderStatus.IDLE:
        raise Conflict(
            f"the rider is {rider.status if rider.on_duty else 'off duty'}; pick an idle one",
            code="rider_unavailable",
            rider_status=rider.status,
        )
    await detach_order(session, order=order, now=now, reason=f"reassigned: {reason}")
    store = await session.get(DarkStore, order.store_id)
    assert store is not None
    start = LatLng(store.lat, store.lng)
    to_store = haversine_m(LatLng(rider.lat, rider.lng), start) if rider.lat is not None else 0.0
    arrive = planning.eta_s(to_store) + planning.eta_s(
        haversine_m(start, LatLng(order.delivery_lat, order.delivery_lng))
    )
    trip = Trip(
        store_id=order.store_id,
        rider_id=rider.rider_id,
        created_at=now,
        updated_at=now,
        planned_depart_at=now + timedelta(seconds=planning.eta_s(to_store)),
    )
    session.add(trip)
    session.add(
        TripStop(
            trip_id=trip.trip_id,
            order_id=order.order_id,
            seq=1,
            planned_arrival_at=now + timedelta(seconds=arrive),
        )
    )
    order.rider_id = rider.rider_id
    rider.status = RiderStatus.ASSIGNED
    session.add_all([order, rider])
    await session.flush()
    await _notify(session, trip=trip, event="offered", now=now)
    return trip
