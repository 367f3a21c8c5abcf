"""The control tower's API: the live city feed, alerts, audited actions, the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect

from server.flash import sales as flash
from server.identity.models import User
from server.kit import sockets
from server.kit.db import transaction
from server.kit.deps import ClockDep, ManagerUser, RedisDep, SessionDep
from server.kit.errors import Forbidden
from server.kit.openapi import problem_responses
from server.kit.resources import Resources, resources_of
from server.ops import alerts, audit, feed, service, stages
from server.orders import views
from server.stores.models import DarkStore
from shared.aio import wait_event
from shared.enums import Role
from shared.schemas.ops import (
    AlertPublic,
    AuditEntry,
    MoveRider,
    OpsCancelOrder,
    OpsSnapshot,
    PauseStore,
    ReassignOrder,
    RiderMoved,
    ServerClockPublic,
    StageBreakdown,
    StoreOps,
    StoreRadius,
    StoreSubstitution,
)
from shared.schemas.orders import OrderPublic

router = APIRouter(prefix="/v1/ops", tags=["ops", "staff"])
ws_router = APIRouter(tags=["ops"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
CityId = Annotated[str, Query(min_length=1, max_length=10, pattern=r"^[A-Z0-9-]+$")]
StoreId = Annotated[str, Path(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$")]
PING_AFTER_S = 15.0  # a quiet city still proves the socket is alive


async def city_snapshot(resources: Resources, city_id: str) -> OpsSnapshot:
    """The city as every socket of this process sees it (built at most twice a second)."""
    cache = resources.ops_feed

    async def build() -> OpsSnapshot:
        async with transaction(resources.sessions) as session:
            now = resources.clock.now()
            return await feed.build_snapshot(
                session,
                city_id=city_id,
                now=now,
                cache=cache,
                clock_speed=resources.clock.speed,
                redis=resources.redis,
                flash_queues=await flash.queue_figures(
                    session, resources.redis, city_id=city_id, now=now
                ),
            )

    return await cache.snapshots.get_or_load(city_id, build)


async def _store_ops(session: SessionDep, store: DarkStore, now: datetime) -> StoreOps:
    await session.flush()
    snapshot = await feed.build_snapshot(session, city_id=store.city_id, now=now)
    return next(s for s in snapshot.stores if s.store_id == store.store_id)


@router.get("/snapshot", summary="The whole city as the control tower shows it", responses=ERRORS)
async def snapshot(
    city: CityId, session: SessionDep, redis: RedisDep, clock: ClockDep, manager: ManagerUser
) -> OpsSnapshot:
    service.require_city(manager, city)
    now = clock.now()
    return await feed.build_snapshot(
        session,
        city_id=city,
        now=now,
        clock_speed=clock.speed,
        redis=redis,
        flash_queues=await flash.queue_figures(session, redis, city_id=city, now=now),
    )


@router.get("/clock", summary="The server's clock and its speed (no login needed)")
async def server_clock(clock: ClockDep) -> ServerClockPublic:
    """Terminals and ``qc token`` set their clocks by it: a demo's world runs ``speed``
    times faster than the wall, so deadlines are judged on this clock, not the wall's."""
    return ServerClockPublic(now=clock.now(), speed=clock.speed)


@router.get(
    "/stages",
    summary="Where the minutes go: per store, p50/p90 of each stage of an order",
    responses=ERRORS,
)
async def stage_breakdown(
    city: CityId,
    session: SessionDep,
    clock: ClockDep,
    manager: ManagerUser,
    window_min: Annotated[int, Query(ge=5, le=24 * 60)] = 60,
) -> StageBreakdown:
    service.require_city(manager, city)
    return await stages.stage_breakdown(
        session, city_id=city, now=clock.now(), window=timedelta(minutes=window_min)
    )


@router.get("/alerts", summary="Open alerts of the city, newest first", responses=ERRORS)
async def open_alerts(city: CityId, session: SessionDep, manager: ManagerUser) -> list[AlertPublic]:
    service.require_city(manager, city)
    return await alerts.open_alerts(session, city_id=city)


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert", responses=ERRORS)
async def acknowledge(
    alert_id: uuid.UUID, session: SessionDep, clock: ClockDep, manager: ManagerUser
) -> AlertPublic:
    alert = await alerts.acknowledge(session, alert_id=alert_id, manager=manager, now=clock.now())
    return alerts.public(alert)


@router.post("/stores/{store_id}/pause", summary="Stop sending the store orders", responses=ERRORS)
async def pause(
    store_id: StoreId,
    body: PauseStore,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    manager: ManagerUser,
) -> StoreOps:
    now = clock.now()
    store = await service.pause_store(
        session, redis, store_id=store_id, manager=manager, reason=body.reason, now=now
    )
    return await _store_ops(session, store, now)


@router.post("/stores/{store_id}/resume", summary="Take orders again", responses=ERRORS)
async def resume(
    store_id: StoreId, session: SessionDep, redis: RedisDep, clock: ClockDep, manager: ManagerUser
) -> StoreOps:
    now = clock.now()
    store = await service.resume_store(session, redis, store_id=store_id, manager=manager, now=now)
    return await _store_ops(session, store, now)


@router.put("/stores/{store_id}/radius", summary="Change the service radius", responses=ERRORS)
async def radius(
    store_id: StoreId,
    body: StoreRadius,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    manager: ManagerUser,
) -> StoreOps:
    now = clock.now()
    store = await service.set_radius(
        session,
        redis,
        store_id=store_id,
        manager=manager,
        radius_m=body.service_radius_m,
        reason=body.reason,
        now=now,
    )
    return await _store_ops(session, store, now)


@router.put(
    "/stores/{store_id}/substitution",
    summary="How the store settles a short line: substitute, ask the customer, or never",
    responses=ERRORS,
)
async def substitution(
    store_id: StoreId,
    body: StoreSubstitution,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    manager: ManagerUser,
) -> StoreOps:
    now = clock.now()
    store = await service.set_substitution(
        session,
        redis,
        store_id=store_id,
        manager=manager,
        policy=body.policy,
        fallback=body.fallback,
        reason=body.reason,
        now=now,
    )
    return await _store_ops(session, store, now)


@router.post(
    "/orders/{order_id}/reassign", summary="Give an order to another rider", responses=ERRORS
)
async def reassign(
    order_id: uuid.UUID,
    body: ReassignOrder,
    session: SessionDep,
    clock: ClockDep,
    manager: ManagerUser,
) -> OrderPublic:
    order = await service.reassign_order(
        session,
        order_id=order_id,
        rider_id=body.rider_id,
        manager=manager,
        reason=body.reason,
        now=clock.now(),
    )
    return await views.public(session, order)


@router.post(
    "/riders/{rider_id}/move",
    summary="Send a rider to work for another store of the city",
    description="409 `rider_busy`: the rider is on a trip or has one waiting (move them once "
    "it is done); 409 `rider_already_there`.",
    responses=ERRORS,
)
async def move_rider(
    rider_id: uuid.UUID,
    body: MoveRider,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    manager: ManagerUser,
) -> RiderMoved:
    rider, before = await service.move_rider(
        session,
        redis,
        rider_id=rider_id,
        store_id=body.store_id,
        manager=manager,
        reason=body.reason,
        now=clock.now(),
    )
    return RiderMoved(
        rider_id=rider.rider_id,
        from_store_id=before,
        store_id=body.store_id,
        status=str(rider.status),
    )


@router.post(
    "/orders/{order_id}/cancel", summary="Cancel an order, releasing its stock", responses=ERRORS
)
async def cancel(
    order_id: uuid.UUID,
    body: OpsCancelOrder,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    manager: ManagerUser,
) -> OrderPublic:
    order = await service.cancel_order(
        session, redis, order_id=order_id, manager=manager, reason=body.reason, now=clock.now()
    )
    return await views.public(session, order)


@router.get("/audit", summary="Manager actions in the city, newest first", responses=ERRORS)
async def audit_log(
    city: CityId,
    session: SessionDep,
    manager: ManagerUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> list[AuditEntry]:
    service.require_city(manager, city)
    rows = await audit.list_actions(session, city_id=city, limit=limit, before=before)
    return [AuditEntry.model_validate(r, from_attributes=True) for r in rows]


@ws_router.websocket("/ws/ops")
async def ops_socket(websocket: WebSocket) -> None:
    """A snapshot on connect, then what changed, at most once per feed interval."""
    resources = resources_of(websocket.app)

    async def first_snapshot(user: User) -> tuple[str, OpsSnapshot]:
        city = websocket.query_params.get("city") or user.city_id or ""
        service.require_city(user, city)
        return city, await city_snapshot(resources, city)

    admitted = await sockets.accept(
        websocket,
        roles={Role.MANAGER, Role.ADMIN},
        wrong_role=lambda: Forbidden("managers only", code="forbidden"),
        admit=first_snapshot,
        otherwise=sockets.CLOSE_FORBIDDEN,  # final for the control tower: no retrying
    )
    if admitted is None:
        return
    _, (city, previous) = admitted
    await websocket.send_text(previous.model_dump_json())
    gone = asyncio.Event()

    async def watch_for_close() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await websocket.receive_text()  # the client has nothing to say; this sees it leave
        gone.set()

    watcher = asyncio.create_task(watch_for_close())
    last_sent = time.monotonic()
    try:
        while not gone.is_set():
            if await wait_event(gone, resources.settings.ops_feed_interval_s):
                break
            current = await city_snapshot(resources, city)
            changes = feed.changes_between(previous, current)
            previous = current
            if changes is not None:
                await websocket.send_text(changes.model_dump_json())
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > PING_AFTER_S:
                await websocket.send_json({"type": "ping"})
                last_sent = time.monotonic()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
