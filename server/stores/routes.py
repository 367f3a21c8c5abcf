"""Dark-store resources."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.kit import ratelimit
from server.kit.deps import ClockDep, ManagerUser, RedisDep, SessionDep, SettingsDep
from server.kit.errors import NotFound
from server.kit.openapi import problem_responses
from server.stores import selection, service
from shared.geo import LatLng, location_cell
from shared.schemas.common import Page
from shared.schemas.identity import UserPublic
from shared.schemas.stores import ServiceableStore, StorePublic, StoreSelection

router = APIRouter(prefix="/v1/stores", tags=["stores"])


@router.get(
    "", summary="List dark stores (optionally of one city)", responses=problem_responses(422)
)
async def list_stores(
    session: SessionDep,
    city: Annotated[str | None, Query(max_length=10, examples=["BLR"])] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Page[StorePublic]:
    stores = await service.list_stores(session, city_id=city, limit=limit + 1, after=cursor)
    page = stores[:limit]
    return Page[StorePublic](
        items=[StorePublic.model_validate(s) for s in page],
        next_cursor=page[-1].store_id if len(stores) > limit else None,
    )


@router.get(
    "/serviceable",
    summary="Dark stores that deliver to a location, best first",
    description="404 `not_serviceable`: no store covers the location, or (`reason: "
    "beyond_reach_now`, `store_id`) the store that covers it is too busy to reach it within "
    "the promise right now; 409 `store_closed`: the store that covers it is closed now "
    "(`opens_at`, its next opening).",
    responses=problem_responses(404, 409, 422, 429),
    dependencies=[
        Depends(ratelimit.per_address("serviceable-ip", lambda s: s.serviceable_limit_per_address))
    ],
)
async def serviceable(
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    lat: Annotated[float, Query(ge=-90, le=90, examples=[12.9352])],
    lng: Annotated[float, Query(ge=-180, le=180, examples=[77.6245])],
) -> StoreSelection:
    point = LatLng(lat, lng)
    ranked = await selection.select_stores(
        session,
        redis,
        point=point,
        now=clock.now(),
        dynamic=settings.serviceability_dynamic,
        promise_s=settings.serviceability_promise_s,
    )
    if not ranked:
        why = await selection.why_unserved(session, point=point, now=clock.now())
        if why.closed is not None:
            raise why.closed
        if why.beyond_reach is not None:
            await selection.count_ask(
                redis, store_id=why.beyond_reach, now=clock.now(), refused=True
            )
            raise NotFound(
                f"{why.beyond_reach} is too busy to reach this address in time right now",
                code="not_serviceable",
                store_id=why.beyond_reach,
                reason="beyond_reach_now",
            )
        raise NotFound("no dark store delivers to this location yet", code="not_serviceable")
    await selection.count_ask(redis, store_id=ranked[0].store_id, now=clock.now(), refused=False)
    return StoreSelection(
        stores=[ServiceableStore(**asdict(c)) for c in ranked], cell=location_cell(point)
    )


@router.get(
    "/{store_id}/staff",
    summary="Pickers of a store (staff only: city manager)",
    tags=["staff"],
    responses=problem_responses(401, 403, 404),
)
async def store_staff(store_id: str, session: SessionDep, manager: ManagerUser) -> list[UserPublic]:
    await service.authorize_store(session, store_id=store_id, user=manager)
    staff = await service.list_store_staff(session, store_id=store_id)
    return [UserPublic.model_validate(u) for u in staff]
