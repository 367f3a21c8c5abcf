"""The dispatcher: batches a store's waiting orders and offers each batch to the best idle
rider nearby; offers nobody took and riders who lost signal go back into the pool."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import eta, planning, trips
from server.delivery.models import Rider, Trip, TripStop
from server.events.service import alert_topic, emit
from server.kit import keys
from server.orders.models import Order
from server.picking.models import PickTask
from server.stores.models import DarkStore
from shared.enums import AlertKind, OrderStatus, RiderStatus
from shared.geo import LatLng

SIGNAL_LOST = timedelta(minutes=2)  # no fix for this long: the rider is treated as offline


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
    offered: list[Trip] = []
    avoid = {
        b.order_ids[0]: {
            a.decode() if isinstance(a, bytes) else a
            for a in await redis.smembers(keys.dispatch_avoid(b.order_ids[0]))
        }
        for b in batches
    }
    past = await eta.rider_history(
        session, store_id=store.store_id, rider_ids=[r.rider_id for r in riders], now=now
    )
    candidates = [
        planning.RiderCandidate(
            str(r.rider_id),
            LatLng(r.lat, r.lng),
            r.status,
            0.0,
            r.rating,
            r.battery_pct,
            past[r.rider_id][0] if r.rider_id in past else None,  # time on this route
        )
        for r in riders
        if r.lat is not None and r.lng is not None  # the query asked for placed riders
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
                    store_id=trip.store_id,
                    trip_id=trip.trip_id,
                    order_id=order.order_id,
                    seq=seq,
                    planned_arrival_at=datetime.fromtimestamp(stop.arrive_at_s, tz=now.tzinfo),
                )
            )
        rider.status = RiderStatus.ASSIGNED
        session.add(rider)
        await trips.notify(session, trip=trip, event="offered", now=now)
        offered.append(trip)
    return offered


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
        expires = trips.offer_expires_at(trip)
        unanswered = expires is not None and now > expires
        if not (lost or unanswered):
            continue
        await trips.hand_back(
            session, redis, trip=trip, now=now, reason="signal_lost" if lost else "offer_timeout"
        )
        if lost:
            rider.status = RiderStatus.OFFLINE
            session.add(rider)
            await emit(
                session,
                topic=alert_topic(AlertKind.RIDER_SIGNAL_LOST),
                store_id=trip.store_id,
                aggregate_id=str(rider.rider_id),
                now=now,
                payload={
                    "rider_id": str(rider.rider_id),
                    "trip_id": str(trip.trip_id),
                    "silent_s": int(SIGNAL_LOST.total_seconds()),
                },
            )
        replaced += 1
    return replaced
