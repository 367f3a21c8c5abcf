"""Manager actions from the control tower. Each one checks the manager's city, does its
change, and writes its audit row in the same transaction (so an action without a trace,
or a trace without the action, cannot happen)."""

from __future__ import annotations

import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery.models import Rider
from server.delivery.overrides import assign_to_rider, detach_order
from server.events.service import emit
from server.identity.access import check_city_scope
from server.identity.models import User
from server.kit import uow
from server.kit.errors import Conflict, NotFound
from server.ops.audit import record_action
from server.orders import service as orders
from server.orders.models import Order
from server.stores.models import DarkStore
from server.stores.selection import invalidate_selection
from server.stores.service import get_store_for_manager
from shared.enums import RiderStatus
from shared.states import TERMINAL


def require_city(manager: User, city_id: str) -> None:
    check_city_scope(manager, city_id=city_id, what=f"city {city_id}")


async def _store(session: AsyncSession, *, store_id: str, manager: User) -> DarkStore:
    store = await get_store_for_manager(session, store_id=store_id, manager=manager)
    await session.refresh(store, with_for_update=True)
    return store


def _refresh_selection_after_commit(session: AsyncSession, redis: aioredis.Redis) -> None:
    # after the commit: a request recomputing the cache before it would store the old view
    async def bump() -> None:
        await invalidate_selection(redis)

    uow.after_commit(session, bump)


async def _store_changed(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store: DarkStore,
    manager: User,
    action: str,
    now: datetime,
    reason: str | None,
    details: dict[str, object] | None = None,
) -> None:
    session.add(store)
    await record_action(
        session,
        actor_id=manager.id,
        city_id=store.city_id,
        action=action,
        target=store.store_id,
        now=now,
        reason=reason,
        details=details,
    )
    await emit(
        session,
        topic=action,
        store_id=store.store_id,
        now=now,
        payload={"store_id": store.store_id, "reason": reason, **(details or {})},
    )
    _refresh_selection_after_commit(session, redis)


async def pause_store(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    manager: User,
    reason: str,
    now: datetime,
) -> DarkStore:
    """Store selection stops offering the store and checkout refuses it; orders already
    taken are still picked and delivered."""
    store = await _store(session, store_id=store_id, manager=manager)
    if not store.is_operational:
        raise Conflict(f"{store_id} is already paused", code="store_already_paused")
    store.is_operational, store.paused_reason = False, reason
    await _store_changed(
        session, redis, store=store, manager=manager, action="store.pause", now=now, reason=reason
    )
    return store


async def resume_store(
    session: AsyncSession, redis: aioredis.Redis, *, store_id: str, manager: User, now: datetime
) -> DarkStore:
    store = await _store(session, store_id=store_id, manager=manager)
    if store.is_operational:
        raise Conflict(f"{store_id} is not paused", code="store_not_paused")
    was = store.paused_reason
    store.is_operational, store.paused_reason = True, None
    await _store_changed(
        session,
        redis,
        store=store,
        manager=manager,
        action="store.resume",
        now=now,
        reason=None,
        details={"paused_reason": was},
    )
    return store


async def set_radius(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    manager: User,
    radius_m: int,
    reason: str | None,
    now: datetime,
) -> DarkStore:
    store = await _store(session, store_id=store_id, manager=manager)
    before = store.service_radius_m
    store.service_radius_m = radius_m
    await _store_changed(
        session,
        redis,
        store=store,
        manager=manager,
        action="store.radius",
        now=now,
        reason=reason,
        details={"from_m": before, "to_m": radius_m},
    )
    return store


async def set_substitution(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    manager: User,
    policy: str,
    fallback: str,
    reason: str | None,
    now: datetime,
) -> DarkStore:
    """How the store settles short lines from now on (lines already offered keep theirs)."""
    store = await _store(session, store_id=store_id, manager=manager)
    before = {"policy": store.substitution_policy, "fallback": store.substitution_fallback}
    store.substitution_policy, store.substitution_fallback = policy, fallback
    await _store_changed(
        session,
        redis,
        store=store,
        manager=manager,
        action="store.substitution",
        now=now,
        reason=reason,
        details={"from": before, "to": {"policy": policy, "fallback": fallback}},
    )
    return store


async def _order(session: AsyncSession, *, order_id: uuid.UUID, manager: User) -> Order:
    order = await orders.get_order(session, order_id=order_id, viewer=manager, for_update=True)
    require_city(manager, order.city_id)
    return order


async def reassign_order(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    rider_id: uuid.UUID,
    manager: User,
    reason: str,
    now: datetime,
) -> Order:
    order = await _order(session, order_id=order_id, manager=manager)
    rider = await session.get(Rider, rider_id, with_for_update=True)
    if rider is None:
        raise NotFound("no such rider", code="rider_not_found")
    previous = order.rider_id
    trip = await assign_to_rider(session, order=order, rider=rider, now=now, reason=reason)
    await record_action(
        session,
        actor_id=manager.id,
        city_id=order.city_id,
        action="order.reassign",
        target=str(order.order_id),
        now=now,
        reason=reason,
        details={
            "from_rider": str(previous) if previous else None,
            "to_rider": str(rider_id),
            "trip_id": str(trip.trip_id),
        },
    )
    return order


async def cancel_order(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    order_id: uuid.UUID,
    manager: User,
    reason: str,
    now: datetime,
) -> Order:
    """Cancel with the stock released (a hold) or returned (a paid order), the refund
    owed, the pick task withdrawn and the order taken off its rider's trip."""
    order = await _order(session, order_id=order_id, manager=manager)
    status = order.status
    if status in TERMINAL:
        raise Conflict(f"the order is already {status}", code="order_closed", status_now=status)
    await orders.cancel_order(
        session,
        redis,
        order=order,
        now=now,
        actor=manager,
        reason=f"ops: {reason}",
        by_customer=False,
    )
    await detach_order(session, order=order, now=now, reason=f"cancelled: {reason}")
    await record_action(
        session,
        actor_id=manager.id,
        city_id=order.city_id,
        action="order.cancel",
        target=str(order.order_id),
        now=now,
        reason=reason,
        details={"status_was": status},
    )
    return order


async def move_rider(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    rider_id: uuid.UUID,
    store_id: str,
    manager: User,
    reason: str,
    now: datetime,
) -> tuple[Rider, str | None]:
    """The rider works for ``store_id`` from now on (their home store: store selection
    counts them there); (the rider, the store they left). A rider on a trip, or with a
    next trip waiting, finishes it first: 409 ``rider_busy``."""
    store = await get_store_for_manager(session, store_id=store_id, manager=manager)
    rider = await session.get(Rider, rider_id, with_for_update=True)
    if rider is None:
        raise NotFound("no such rider", code="rider_not_found")
    require_city(manager, rider.city_id)
    before = rider.home_store_id
    if before == store.store_id:
        raise Conflict(f"the rider already works for {store_id}", code="rider_already_there")
    if rider.next_trip_id is not None or rider.status not in (
        RiderStatus.IDLE,
        RiderStatus.OFFLINE,
    ):
        raise Conflict(
            f"the rider is {rider.status.lower()} on a trip: move them once it is done",
            code="rider_busy",
            rider_status=str(rider.status),
        )
    rider.home_store_id = store.store_id
    session.add(rider)
    details = {"from_store": before, "to_store": store.store_id}
    await record_action(
        session,
        actor_id=manager.id,
        city_id=rider.city_id,
        action="rider.move",
        target=str(rider_id),
        now=now,
        reason=reason,
        details=details,
    )
    await emit(  # the relay pushes it to the rider's socket too: the handheld tells them
        session,
        topic="rider.move",
        store_id=store.store_id,
        now=now,
        payload={
            "rider_id": str(rider_id),
            "reason": reason,
            "to_store_name": store.store_name,
            **details,
        },
    )
    _refresh_selection_after_commit(session, redis)  # idle riders count per home store
    return rider, before
