"""Trips: the rider's offer and its lifecycle (accept, hand back, arrive, pick up, depart,
deliver with the customer's OTP or fail a drop) and the trip as the rider's handheld sees it."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import eta, locations
from server.delivery.models import Rider, Trip, TripStop
from server.events.service import alert_topic, emit
from server.identity.models import User
from server.kit import keys
from server.kit.errors import Conflict, Forbidden, NotFound
from server.orders import service as orders
from server.orders.models import Order
from server.picking.models import PickTask
from server.stores.models import DarkStore
from shared.enums import AlertKind, OrderStatus, RiderStatus
from shared.geo import LatLng
from shared.schemas.delivery import TripPublic, TripStopPublic

OTP_TRIES = 3
ACTIVE_TRIP = ("OFFERED", "ACCEPTED", "AT_STORE", "PICKED_UP", "OUT")
OFFER_TIMEOUT = timedelta(seconds=60)  # an offer not accepted in time goes to someone else


OPEN_STOP = ("PENDING", "ARRIVED")  # a drop not yet delivered or failed
QUEUED_TRIP = ("OFFERED", "ACCEPTED", "AT_STORE")  # the rider's next job, not picked up


async def active_trips(session: AsyncSession, *, rider_id: uuid.UUID) -> list[Trip]:
    """At most two: the trip on the road, then the next one (a rider free within minutes
    may be offered their next trip while still delivering)."""
    rows = await session.exec(
        select(Trip).where(Trip.rider_id == rider_id, col(Trip.status).in_(ACTIVE_TRIP))
    )
    return sorted(rows.all(), key=lambda t: (t.status in QUEUED_TRIP, t.created_at or 0))


async def current_trip(session: AsyncSession, *, rider_id: uuid.UUID) -> Trip | None:
    """The trip the rider is on: the one on the road, else their next one."""
    found = await active_trips(session, rider_id=rider_id)
    return found[0] if found else None


class RiderTaken(Conflict):
    code, title = "rider_taken", "The rider already has a next trip"


async def claim_rider(session: AsyncSession, *, rider: Rider, trip: Trip) -> None:
    """The one door through which a rider gets a trip: ``riders.next_trip_id`` is set only
    while empty, by one conditional UPDATE of the rider's row, so of two dispatcher runs,
    or a dispatcher and a manager's reassign, the second finds the rider taken
    (``RiderTaken``) whatever each had read before. Freed by ``release_rider`` when the
    trip is picked up (it is then on the road) or goes back to the dispatcher."""
    claimed = await session.execute(
        text(
            "UPDATE riders SET next_trip_id = :t WHERE rider_id = :r AND next_trip_id IS NULL "
            "RETURNING rider_id"
        ),
        {"t": trip.trip_id, "r": rider.rider_id},
    )
    if claimed.first() is None:
        raise RiderTaken("the rider already has a trip waiting", rider_id=str(rider.rider_id))
    set_committed_value(rider, "next_trip_id", trip.trip_id)


async def release_rider(session: AsyncSession, *, trip: Trip) -> None:
    await session.execute(
        text("UPDATE riders SET next_trip_id = NULL WHERE rider_id = :r AND next_trip_id = :t"),
        {"t": trip.trip_id, "r": trip.rider_id},
    )
    rider = session.identity_map.get(session.identity_key(Rider, trip.rider_id))
    if isinstance(rider, Rider) and rider.next_trip_id == trip.trip_id:
        set_committed_value(rider, "next_trip_id", None)


async def free_status(session: AsyncSession, *, rider: Rider) -> RiderStatus:
    """What a rider is once a trip of theirs ends: still delivering another, assigned to
    their next one, idle, or offline when off duty."""
    if not rider.on_duty:
        return RiderStatus.OFFLINE
    rest = await active_trips(session, rider_id=rider.rider_id)
    if any(t.status in ("PICKED_UP", "OUT") for t in rest):
        return RiderStatus.DELIVERING
    return RiderStatus.ASSIGNED if rest else RiderStatus.IDLE


async def trip_stops(session: AsyncSession, trip_id: uuid.UUID) -> list[tuple[TripStop, Order]]:
    rows = await session.exec(
        select(TripStop, Order)
        .where(
            TripStop.trip_id == trip_id,
            col(Order.store_id) == col(TripStop.store_id),
            col(Order.order_id) == col(TripStop.order_id),
        )
        .order_by(col(TripStop.seq))
    )
    return list(rows.all())


def open_stops(stops: list[tuple[TripStop, Order]]) -> list[tuple[TripStop, Order]]:
    return [(s, o) for s, o in stops if s.status in OPEN_STOP]


async def _phones(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The customers' phones, for the drops still open (a closed drop's number is not shown)."""
    if not user_ids:
        return {}
    rows = await session.exec(select(User.id, User.phone).where(col(User.id).in_(user_ids)))
    return {uid: phone for uid, phone in rows.all() if phone}


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
    stops = await trip_stops(session, trip.trip_id)
    eta_at: dict[uuid.UUID, datetime] = {}
    rider = await session.get(Rider, trip.rider_id)
    here, speed = (
        await locations.where(redis, rider)
        if rider is not None and trip.status in ACTIVE_TRIP
        else (None, None)
    )
    if here is not None:  # the rider's last fix (Redis), as its fan-out used it
        pending = open_stops(stops)
        etas = await eta.etas(
            session,
            rider_id=trip.rider_id,
            store_id=trip.store_id,
            trip_status=trip.status,
            store_at=LatLng(store.lat, store.lng),
            here=here,
            speed=speed,
            drops=[LatLng(o.delivery_lat, o.delivery_lng) for _, o in pending],
            now=now,
        )
        eta_at = {
            s.order_id: now + timedelta(seconds=round(e))
            for (s, _), e in zip(pending, etas, strict=True)
        }
    phones = await _phones(session, [o.user_id for _, o in open_stops(stops)])
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
                landmark=(o.delivery_address or {}).get("landmark"),
                instructions=(o.delivery_address or {}).get("instructions"),
                customer_phone=phones.get(o.user_id) if s.status in OPEN_STOP else None,
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
    query = select(Trip).where(Trip.trip_id == trip_id)
    if for_update:
        query = query.with_for_update()
    trip = (await session.exec(query)).first()
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


async def notify(
    session: AsyncSession, *, trip: Trip, event: str, now: datetime, **extra: Any
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


async def notify_offer(
    session: AsyncSession, *, trip: Trip, order_ids: list[uuid.UUID], now: datetime
) -> None:
    """``delivery.offered``, pushed to the rider's socket: the trip, its store, its orders
    in route order and when the offer goes to someone else."""
    expires = offer_expires_at(trip)
    await notify(
        session,
        trip=trip,
        event="offered",
        now=now,
        store_id=trip.store_id,
        order_ids=[str(o) for o in order_ids],
        offer_expires_at=expires.isoformat() if expires else None,
    )


async def accept(session: AsyncSession, *, trip: Trip, now: datetime) -> None:
    _expect(trip, "OFFERED")
    trip.status, trip.updated_at = "ACCEPTED", now
    session.add(trip)
    await notify(session, trip=trip, event="accepted", now=now)


async def hand_back(
    session: AsyncSession, redis: aioredis.Redis, *, trip: Trip, now: datetime, reason: str
) -> None:
    """A rejected offer or a rider gone offline: the orders go back to the dispatcher."""
    _expect(trip, "OFFERED", "ACCEPTED")
    await _to_dispatcher(session, redis, trip=trip, now=now)
    await notify(session, trip=trip, event=f"handed_back:{reason}", now=now)


async def release(
    session: AsyncSession, redis: aioredis.Redis, *, trip: Trip, now: datetime, reason: str
) -> None:
    """The rider gives an accepted trip back before pickup (bags not ready, vehicle
    problem): as a hand-back, with the reason for the control tower. After pickup the
    bags are with the rider (DISPATCHED), so the trip can no longer be given back."""
    _expect(trip, "ACCEPTED", "AT_STORE")
    await _to_dispatcher(session, redis, trip=trip, now=now)
    await notify(session, trip=trip, event="released", now=now, reason=reason)


async def _to_dispatcher(
    session: AsyncSession, redis: aioredis.Redis, *, trip: Trip, now: datetime
) -> None:
    """Cancel the trip and free its orders and rider; the dispatcher will not offer the
    orders to this rider again for a while."""
    trip.status, trip.updated_at = "CANCELLED", now
    session.add(trip)
    for _, order in await trip_stops(session, trip.trip_id):
        order.rider_id = None
        session.add(order)
        await redis.sadd(keys.dispatch_avoid(str(order.order_id)), str(trip.rider_id))
        await redis.expire(keys.dispatch_avoid(str(order.order_id)), 1800)
    await release_rider(session, trip=trip)
    await session.flush()
    rider = await session.get(Rider, trip.rider_id)
    if rider is not None:
        rider.status = await free_status(session, rider=rider)
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
    stops = await trip_stops(session, trip.trip_id)
    labels = {}
    for _, order in stops:
        task = await session.get(PickTask, (order.store_id, order.order_id))
        labels[order.order_id] = task.bag_label if task else None
    if any(o.status != OrderStatus.PACKED for _, o in stops):
        raise Conflict("not every bag is packed yet", code="not_packed")
    if any(
        t.status in ("PICKED_UP", "OUT")
        for t in await active_trips(session, rider_id=trip.rider_id)
    ):
        raise Conflict("finish the trip on the road first", code="trip_in_progress")
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
    await release_rider(session, trip=trip)  # on the road: the rider may get a next trip


async def depart(session: AsyncSession, *, trip: Trip, actor: User, now: datetime) -> None:
    _expect(trip, "PICKED_UP")
    for _, order in await trip_stops(session, trip.trip_id):
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
    for stop, order in await trip_stops(session, trip.trip_id):
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
                topic=alert_topic(AlertKind.OTP_LOCKED),
                store_id=trip.store_id,
                aggregate_id=str(order_id),
                now=now,
                payload={
                    "order_id": str(order_id),
                    "rider_id": str(trip.rider_id),
                    "tries": OTP_TRIES,
                },
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
    await maybe_complete(session, trip=trip, now=now)
    return stop


async def fail_drop(
    session: AsyncSession,
    redis: aioredis.Redis,
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
    # the bag goes back on the shelf (or to damaged) and the money back to the customer
    await orders.take_back_undelivered(session, redis, order=order, now=now, actor=actor)
    await maybe_complete(session, trip=trip, now=now)
    return stop


async def maybe_complete(session: AsyncSession, *, trip: Trip, now: datetime) -> None:
    if all(s.status in ("DELIVERED", "FAILED") for s, _ in await trip_stops(session, trip.trip_id)):
        trip.status, trip.updated_at = "COMPLETED", now
        session.add(trip)
        await session.flush()
        rider = await session.get(Rider, trip.rider_id)
        if rider is not None:
            rider.status = await free_status(session, rider=rider)
            session.add(rider)
