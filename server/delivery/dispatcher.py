"""The dispatcher: batches a store's waiting orders and offers each batch to the best idle
rider nearby; offers nobody took and riders who lost signal go back into the pool."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import candidates, locations, planning, trips
from server.delivery.models import Rider, Trip, TripStop
from server.events.service import alert_topic, emit
from server.kit import keys
from server.kit.config import Settings
from server.orders.models import Order
from server.picking.models import PickTask
from server.stores.models import DarkStore
from shared.enums import AlertKind, OrderStatus, RiderStatus
from shared.geo import LatLng

SIGNAL_LOST = timedelta(minutes=2)  # no fix for this long: the rider is treated as offline


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """The dispatcher's switchable levers (``QC_DISPATCH_*``; see docs/architecture.md)."""

    preassign: bool = True  # orders still being picked get a rider, timed to the bag
    batching: bool = True  # up to three drops per trip
    busy_candidates: bool = True  # DELIVERING riders free within 3 min are candidates
    # a batch is made only if every drop keeps the door time the store promises
    # (QC_SERVICEABILITY_PROMISE_S, never beyond the SLA): batching never breaks the promise
    promise_s: float = 15 * 60.0

    @classmethod
    def of(cls, settings: Settings) -> DispatchPolicy:
        return cls(
            preassign=settings.dispatch_preassign,
            batching=settings.dispatch_batching,
            busy_candidates=settings.dispatch_busy_candidates,
            promise_s=float(min(settings.sla_s, settings.serviceability_promise_s)),
        )


# A rider pre-assigned to a bag still being picked is offered it when the bag will be
# ready within their ride to the store plus this lead (time to see and accept the offer,
# and a cushion so the rider waits for the bag rather than the bag for the rider).
PREASSIGN_LEAD_S = 90.0
MAX_BATCH = 3


async def _waiting(
    session: AsyncSession, *, store: DarkStore, preassign: bool
) -> list[tuple[Order, PickTask]]:
    states = [OrderStatus.PACKED]
    if preassign:
        states += [OrderStatus.PICKING, OrderStatus.PARTIALLY_FULFILLED]
    return list(
        (
            await session.exec(
                select(Order, PickTask)
                .where(
                    Order.store_id == store.store_id,
                    col(Order.rider_id).is_(None),
                    col(Order.status).in_(states),
                    PickTask.store_id == Order.store_id,
                    PickTask.order_id == Order.order_id,
                )
                .with_for_update(skip_locked=True, of=Order)
            )
        ).all()
    )


def _ready_at(order: Order, task: PickTask, now_s: float) -> float:
    """When the bag is expected on the counter: now once packed, else by the estimate."""
    if order.status == OrderStatus.PACKED:
        return now_s
    started = task.claimed_at.timestamp() if task.claimed_at else now_s
    return max(now_s, started + task.estimate_s)


async def dispatch_store(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store: DarkStore,
    now: datetime,
    weights: planning.ScoreWeights,
    policy: DispatchPolicy = DispatchPolicy(),
) -> list[Trip]:
    """Batch the store's orders that wait for a rider and assign the batches together.

    Candidates come from ``candidates.locate`` (locked for this transaction). Trips are
    planned to leave when the later of their bags is ready and the rider can be there; a
    batch is kept only if every drop still meets the SLA counting the assigned rider's
    ride to the store (else the rider takes the oldest order's trip as planned from their
    arrival, and the rest wait for the next run).
    """
    waiting = await _waiting(session, store=store, preassign=policy.preassign)
    if not waiting:
        return []
    here = LatLng(store.lat, store.lng)
    found = await candidates.locate(
        session, redis, store=store, weights=weights, busy=policy.busy_candidates
    )
    fleet = [c for c in found if planning.is_eligible(c, here, weights)]
    if not fleet:
        return []
    now_s = now.timestamp()
    approach = {c.rider_id: planning.approach_s(c, here) for c in fleet}
    typical = statistics.median(approach.values())
    orders_by_id = {str(o.order_id): o for o, _ in waiting}
    pending = {
        str(o.order_id): planning.WaitingOrder(
            str(o.order_id),
            o.store_id,
            here,
            LatLng(o.delivery_lat, o.delivery_lng),
            o.placed_at.timestamp() if o.placed_at else now_s,
            _ready_at(o, t, now_s),
        )
        for o, t in waiting
    }
    max_batch = MAX_BATCH if policy.batching else 1
    batches = [
        b
        for b in planning.plan_batches(
            list(pending.values()),
            now_s + min(approach.values()),
            max_batch=max_batch,
            sla_s=policy.promise_s,
        )
        # pre-assignment: offered once the bag is due within a typical ride here + the lead
        if b.depart_at_s - now_s <= typical + PREASSIGN_LEAD_S
    ]
    if not batches:
        return []
    # scored only now, and only the eligible: most runs have no batch due
    fleet = await candidates.scored(session, redis, fleet, store=store, now=now)
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
    avoid = {
        b.order_ids[0]: {
            a.decode() if isinstance(a, bytes) else a
            for a in await redis.smembers(keys.dispatch_avoid(b.order_ids[0]))
        }
        for b in batches
    }
    batch_of = {b.order_ids[0]: b for b in batches}
    # orders a rider turned down are matched after the rest, to the best other rider
    fresh = [w for w in leaders if not avoid[w.order_id]]
    pairs = planning.assign(fresh, fleet, weights)
    taken = {rider_id for _, rider_id in pairs}
    for w in leaders:
        if not avoid[w.order_id]:
            continue
        options = [c for c in fleet if c.rider_id not in taken | avoid[w.order_id]]
        if options:
            best = max(options, key=lambda c: planning.rider_score(c, here, weights))
            pairs.append((w.order_id, best.rider_id))
            taken.add(best.rider_id)
    offered: list[Trip] = []
    for leader, rider_id in pairs:
        batch = _fit(
            batch_of[leader], pending, now_s + approach[rider_id], max_batch, policy.promise_s
        )
        offered.append(
            await _offer(
                session,
                batch=batch,
                rider=await session.get_one(Rider, uuid.UUID(rider_id)),  # locked by locate
                orders=orders_by_id,
                arrive_s=now_s + approach[rider_id],
                now=now,
            )
        )
    return offered


def _fit(
    batch: planning.PlannedBatch,
    pending: dict[str, planning.WaitingOrder],
    arrive_s: float,
    max_batch: int,
    sla_s: float,
) -> planning.PlannedBatch:
    """The batch as this rider can ride it: planned from their arrival at the store; a
    batch that no longer meets the SLA is planned again from there, and the rider takes
    the trip of its oldest order."""
    orders = [pending[o] for o in batch.order_ids]
    if batch.depart_at_s >= arrive_s:
        return batch
    return planning.plan_batches(orders, arrive_s, max_batch=max_batch, sla_s=sla_s)[0]


async def _offer(
    session: AsyncSession,
    *,
    batch: planning.PlannedBatch,
    rider: Rider,
    orders: dict[str, Order],
    arrive_s: float,
    now: datetime,
) -> Trip:
    trip = Trip(
        store_id=batch.store_id,
        rider_id=rider.rider_id,
        created_at=now,
        updated_at=now,
        planned_depart_at=datetime.fromtimestamp(max(batch.depart_at_s, arrive_s), tz=now.tzinfo),
    )
    session.add(trip)
    for seq, stop in enumerate(batch.stops, start=1):
        order = orders[stop.order_id]
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
    if rider.status == RiderStatus.IDLE:
        rider.status = RiderStatus.ASSIGNED  # a DELIVERING rider stays so: this is their next
    session.add(rider)
    await session.flush()
    await trips.claim_rider(session, rider=rider, trip=trip)
    await trips.notify_offer(
        session, trip=trip, order_ids=[orders[s.order_id].order_id for s in batch.stops], now=now
    )
    return trip


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
    heard: dict[uuid.UUID, datetime] = {}  # the last fixes (Redis), by city
    for city in {rider.city_id for _, rider in rows}:
        ids = [r.rider_id for _, r in rows if r.city_id == city]
        found = await locations.latest(redis, city_id=city, rider_ids=ids)
        heard |= {rider_id: fix.at for rider_id, fix in found.items()}
    for trip, rider in rows:
        # the rows' copy (written with the history, a sample behind) counts too
        last = max(
            (t for t in (heard.get(rider.rider_id), rider.last_fix_at) if t is not None),
            default=None,
        )
        lost = last is None or now - last > SIGNAL_LOST
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
