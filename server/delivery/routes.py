"""The rider handheld's API: shift, positions (socket and offline batch), trip actions."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from server.delivery import riders, tracking, trips
from server.delivery.locations import where
from server.delivery.models import Rider, Trip
from server.identity.models import User
from server.kit import sockets
from server.kit.clock import Clock
from server.kit.db import transaction
from server.kit.deps import ClockDep, RedisDep, RiderUser, SessionDep
from server.kit.errors import DomainError, Forbidden, Unprocessable
from server.kit.keys import rider_channel
from server.kit.openapi import problem_responses
from server.kit.resources import resources_of
from server.stores.models import DarkStore
from shared.enums import Role
from shared.schemas.delivery import (
    DeliverRequest,
    FailRequest,
    FixBatch,
    FixBatchResult,
    GpsFix,
    PickupRequest,
    RefusedFix,
    ReleaseRequest,
    RiderPublic,
    ShiftChange,
    TripPublic,
)

router = APIRouter(prefix="/v1", tags=["delivery", "staff"])
ws_router = APIRouter(tags=["delivery"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


async def _me(session: SessionDep, user: RiderUser, *, lock: bool = False) -> Rider:
    return await riders.get_rider(session, user=user, for_update=lock)


async def _view(session: SessionDep, redis: RedisDep, clock: Clock, trip: Trip) -> TripPublic:
    return await trips.trip_view(
        session, redis, trip=trip, now=clock.now(), clock_speed=clock.speed
    )


async def _public(
    session: SessionDep, redis: RedisDep, rider: Rider, trip_id: uuid.UUID | None
) -> RiderPublic:
    """The rider as they see themselves; the position is the last fix (Redis), else the
    row's copy (e.g. where a new rider was placed); the store they work for, by name."""
    here, _ = await where(redis, rider)
    home = (
        await session.get(DarkStore, rider.home_store_id)
        if rider.home_store_id is not None
        else None
    )
    return RiderPublic(
        rider_id=rider.rider_id,
        status=rider.status,
        on_duty=rider.on_duty,
        lat=here.lat if here else None,
        lng=here.lng if here else None,
        trip_id=trip_id,
        home_store_id=rider.home_store_id,
        home_store_name=home.store_name if home is not None else None,
    )


@router.get("/riders/me", summary="The rider's status and current trip", responses=ERRORS)
async def me(session: SessionDep, redis: RedisDep, user: RiderUser) -> RiderPublic:
    rider = await _me(session, user)
    trip = await trips.current_trip(session, rider_id=rider.rider_id)
    return await _public(session, redis, rider, trip.trip_id if trip else None)


@router.post("/riders/me/shift", summary="Go on or off duty", responses=ERRORS)
async def shift(
    body: ShiftChange, session: SessionDep, redis: RedisDep, clock: ClockDep, user: RiderUser
) -> RiderPublic:
    rider = await riders.set_shift(
        session,
        redis,
        rider=await _me(session, user, lock=True),
        on_duty=body.on_duty,
        now=clock.now(),
    )
    return await _public(session, redis, rider, None)


@router.post(
    "/riders/me/locations",
    summary="Replay fixes buffered while offline (in order; duplicates ignored)",
    responses=ERRORS,
)
async def locations(
    body: FixBatch, session: SessionDep, redis: RedisDep, clock: ClockDep, user: RiderUser
) -> FixBatchResult:
    refused: list[tuple[GpsFix, Unprocessable]] = []
    accepted, duplicates = await riders.take_fixes(  # no rider row: see ``tracking``
        session,
        redis,
        rider_id=user.id,
        city_id=await tracking.city_of(session, user.id),
        fixes=body.fixes,
        now=clock.now(),
        refused=refused,
    )
    if refused and len(refused) == len(body.fixes):
        raise refused[0][1]  # nothing usable at all: say why, as for a single fix
    return FixBatchResult(
        accepted=accepted,
        duplicates=duplicates,
        refused=[RefusedFix(at=f.at, code=e.code, detail=e.detail) for f, e in refused],
    )


@router.get("/riders/me/trip", summary="The current trip, stops in route order", responses=ERRORS)
async def my_trip(
    session: SessionDep, redis: RedisDep, clock: ClockDep, user: RiderUser
) -> TripPublic | None:
    trip = await trips.current_trip(session, rider_id=user.id)
    return await _view(session, redis, clock, trip) if trip else None


@router.get(
    "/riders/me/trips",
    summary="The rider's open trips: the one on the road first, then the next one",
    responses=ERRORS,
)
async def my_trips(
    session: SessionDep, redis: RedisDep, clock: ClockDep, user: RiderUser
) -> list[TripPublic]:
    return [
        await _view(session, redis, clock, trip)
        for trip in await trips.active_trips(session, rider_id=user.id)
    ]


def _trip_action(name: str, summary: str) -> None:
    async def action(
        trip_id: uuid.UUID, session: SessionDep, redis: RedisDep, clock: ClockDep, user: RiderUser
    ) -> TripPublic:
        trip = await trips.own_trip(session, trip_id=trip_id, rider=user)
        now = clock.now()
        if name == "accept":
            await trips.accept(session, trip=trip, now=now)
        elif name == "reject":
            await trips.hand_back(session, redis, trip=trip, now=now, reason="rejected")
        elif name == "arrived":
            await trips.arrived_at_store(session, trip=trip, now=now)
        elif name == "depart":
            await trips.depart(session, trip=trip, actor=user, now=now)
        return await _view(session, redis, clock, trip)

    router.add_api_route(
        f"/trips/{{trip_id}}/{name}",
        action,
        methods=["POST"],
        summary=summary,
        responses=ERRORS,
        response_model=TripPublic,
    )


_trip_action("accept", "Accept an offered trip")
_trip_action("reject", "Turn an offered trip down (it is offered to someone else)")
_trip_action("arrived", "At the store")
_trip_action("depart", "Leave the store: every order OUT_FOR_DELIVERY")


@router.post(
    "/trips/{trip_id}/release",
    summary="Give an accepted trip back before pickup, with why (it goes back to dispatch)",
    responses=ERRORS,
)
async def release(
    trip_id: uuid.UUID,
    body: ReleaseRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: RiderUser,
) -> TripPublic:
    trip = await trips.own_trip(session, trip_id=trip_id, rider=user)
    await trips.release(session, redis, trip=trip, now=clock.now(), reason=body.reason)
    return await _view(session, redis, clock, trip)


@router.post(
    "/trips/{trip_id}/pickup", summary="Scan the bag labels: orders DISPATCHED", responses=ERRORS
)
async def pickup(
    trip_id: uuid.UUID,
    body: PickupRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: RiderUser,
) -> TripPublic:
    trip = await trips.own_trip(session, trip_id=trip_id, rider=user)
    await trips.pick_up(session, trip=trip, bag_labels=body.bag_labels, actor=user, now=clock.now())
    return await _view(session, redis, clock, trip)


@router.post(
    "/trips/{trip_id}/stops/{order_id}/deliver",
    summary="Hand over with the customer's OTP (3 wrong tries lock it)",
    responses=ERRORS,
)
async def deliver(
    trip_id: uuid.UUID,
    order_id: uuid.UUID,
    body: DeliverRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: RiderUser,
) -> TripPublic:
    trip = await trips.own_trip(session, trip_id=trip_id, rider=user)
    await trips.deliver(
        session, trip=trip, order_id=order_id, otp=body.otp, actor=user, now=clock.now()
    )
    return await _view(session, redis, clock, trip)


@router.post(
    "/trips/{trip_id}/stops/{order_id}/fail",
    summary="A failed delivery, with why",
    responses=ERRORS,
)
async def fail(
    trip_id: uuid.UUID,
    order_id: uuid.UUID,
    body: FailRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: RiderUser,
) -> TripPublic:
    trip = await trips.own_trip(session, trip_id=trip_id, rider=user)
    await trips.fail_drop(
        session,
        redis,
        trip=trip,
        order_id=order_id,
        reason=body.reason,
        actor=user,
        now=clock.now(),
    )
    return await _view(session, redis, clock, trip)


@ws_router.websocket("/ws/rider")
async def rider_socket(websocket: WebSocket) -> None:
    """A fix every 5 s in (acknowledged), offers and trip changes out."""
    user = await sockets.accept(
        websocket, roles={Role.RIDER}, wrong_role=lambda: Forbidden("riders only", code="forbidden")
    )
    if user is None:
        return
    push = resources_of(websocket.app).settings.work_push
    async with sockets.relaying(websocket, rider_channel(str(user.id)), gate=_Pushes(push)):
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await _take_fix(websocket, user, await websocket.receive_text())


class _Pushes(sockets.AfterSnapshot):
    """Everything on the rider's channel, but offers only with ``QC_WORK_PUSH`` on (off,
    the handheld polls ``GET /v1/riders/me/trip`` to find them)."""

    def __init__(self, offers: bool) -> None:
        super().__init__()
        self.offers = offers
        self.snapshot_sent(0)

    async def admits(self, payload: dict[str, Any]) -> bool:
        return self.offers or "offer_expires_at" not in payload


async def _take_fix(websocket: WebSocket, user: User, raw: str) -> None:
    resources = resources_of(websocket.app)
    try:
        fix = GpsFix.model_validate(json.loads(raw))
        async with transaction(resources.sessions) as session:
            accepted, _ = await riders.take_fixes(  # no statement while the context is warm
                session,
                resources.redis,
                rider_id=user.id,
                city_id=await tracking.city_of(session, user.id),
                fixes=[fix],
                now=resources.clock.now(),
            )
        await websocket.send_json(
            {"type": "ack", "at": fix.at.isoformat(), "accepted": bool(accepted)}
        )
    except (ValueError, ValidationError) as exc:
        detail = str(exc).splitlines()[0]
        await websocket.send_json(
            {"type": "error", "error": {"code": "invalid_fix", "detail": f"not a fix: {detail}"}}
        )
    except DomainError as exc:
        await websocket.send_json({"type": "error", "error": exc.problem()})
