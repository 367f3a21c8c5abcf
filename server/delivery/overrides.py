"""Manager overrides from the control tower: take an order off its rider's trip, or hand it
to a chosen idle rider as a one-stop offer."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import planning, trips
from server.delivery.models import Rider, Trip, TripStop
from server.kit.errors import Conflict
from server.orders.models import Order
from server.stores.models import DarkStore
from shared.enums import OrderStatus, RiderStatus
from shared.geo import LatLng, haversine_m

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
                col(Trip.status).in_(trips.ACTIVE_TRIP),
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
        left = await trips.trip_stops(session, trip.trip_id)
        for seq, (s, _) in enumerate(left, start=1):
            s.seq = seq
            session.add(s)
        if not left:
            trip.status = "CANCELLED"
            session.add(trip)
            await trips.release_rider(session, trip=trip)
            await session.flush()
            rider = await session.get(Rider, trip.rider_id, with_for_update=True)
            if rider is not None:
                rider.status = await trips.free_status(session, rider=rider)
                session.add(rider)
    elif stop.status not in ("DELIVERED", "FAILED"):
        stop.status, stop.failed_reason = "FAILED", reason[:200]
        session.add(stop)
    trip.updated_at = now
    session.add(trip)
    await session.flush()
    if trip.status != "CANCELLED":
        await trips.maybe_complete(session, trip=trip, now=now)
    await trips.notify(session, trip=trip, event="changed", now=now)
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
    if rider.next_trip_id is not None:
        raise Conflict("the rider already has a trip waiting", code="rider_taken")
    await detach_order(session, order=order, now=now, reason=f"reassigned: {reason}")
    store = await session.get(DarkStore, order.store_id)
    assert store is not None
    start = LatLng(store.lat, store.lng)
    to_store = (
        haversine_m(LatLng(rider.lat, rider.lng), start)
        if rider.lat is not None and rider.lng is not None
        else 0.0
    )
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
            store_id=trip.store_id,
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
    await trips.claim_rider(session, rider=rider, trip=trip)
    await trips.notify_offer(session, trip=trip, order_ids=[order.order_id], now=now)
    return trip
