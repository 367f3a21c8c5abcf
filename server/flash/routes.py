"""Flash sales over HTTP and the queue's websocket.

Managers create and stop sales; customers join a store's line, watch it on
``/ws/flash/{sale_id}`` (or poll ``.../queue/me``) and check out while they hold a slot.
Queue and checkout requests run inside the flash bulkheads (a join or a poll only for the
part that uses PostgreSQL: taking a place in line needs none) and under the rate limits
(per client IP on join and checkout, per customer on every flash request). Nothing here
is cacheable: every answer carries live stock (the seed's edge rule for inventory).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import (
    APIRouter,
    Depends,
    Header,
    Path,
    Query,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.routes import NO_STORE
from server.flash import checkout as flash_checkout
from server.flash import entries, sales
from server.flash.hub import FINAL
from server.flash.models import FlashSale
from server.identity.models import User
from server.kit import ratelimit, sockets
from server.kit.config import Settings
from server.kit.deps import (
    ClockDep,
    CustomerUser,
    ManagerUser,
    RedisDep,
    ResourcesDep,
    SessionDep,
    SettingsDep,
)
from server.kit.errors import Forbidden
from server.kit.openapi import problem_responses
from server.kit.quick import QuickRoute, bearer_of, limited_customer, path_uuid, quick
from server.kit.resources import Resources, resources_of
from server.orders.routes import answer_checkout_once
from shared.enums import Role
from shared.schemas.common import Page
from shared.schemas.flash import (
    FlashJoin,
    FlashQueueEntry,
    FlashSaleCreate,
    FlashSalePublic,
    FlashSaleStop,
)
from shared.schemas.orders import CheckoutRequest, OrderPublic

router = APIRouter(prefix="/v1/flash-sales", tags=["flash"], route_class=QuickRoute)
# the line's routes (join, where am I, leave) and its socket: the API serves them, and so
# does the waiting room's own server (``qc.serving``: ``QC_WAITING_ROOM_PORT``)
queue_router = APIRouter(prefix="/v1/flash-sales", tags=["flash"], route_class=QuickRoute)
ws_router = APIRouter(tags=["flash"])

SaleId = Annotated[uuid.UUID, Path(description="the flash sale")]
StoreQuery = Annotated[
    str | None, Query(max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-KOR"])
]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        description="repeat it on a retry; the first answer is replayed",
    ),
]


async def _queue_bulkhead(resources: ResourcesDep) -> AsyncIterator[None]:
    async with resources.flash_queue_bulkhead.slot():
        yield


async def _checkout_bulkhead(resources: ResourcesDep) -> AsyncIterator[None]:
    async with resources.flash_checkout_bulkhead.slot():
        yield


_per_ip = ratelimit.per_address("flash-ip", lambda s: s.checkout_rate_limit_per_ip)


async def _limited_customer(
    resources: ResourcesDep, user: CustomerUser, settings: SettingsDep
) -> User:
    await ratelimit.hit(
        resources.rate_limiter,
        scope="flash-customer",
        who=str(user.id),
        spec=settings.flash_rate_limit_per_customer,
    )
    return user


FlashCustomer = Annotated[User, Depends(_limited_customer)]


async def _quick_customer(
    request: Request, resources: Resources, *, per_address: bool
) -> User | None:
    """``FlashCustomer`` (and ``_per_ip`` if asked) for a quick route; None: FastAPI's."""
    credentials = bearer_of(request)
    if credentials is None:
        return None
    return await limited_customer(
        request,
        resources,
        credentials,
        limit=lambda user: _limited_customer(resources, user, resources.settings),
        per_address=_per_ip if per_address else None,
    )


async def _quick_join(request: Request) -> dict[str, Any] | None:
    sale_id = path_uuid(request, "sale_id")
    if sale_id is None or request.headers.get("content-type") != "application/json":
        return None
    try:
        body = FlashJoin.model_validate_json(await request.body())
    except ValidationError:
        return None
    resources = resources_of(request.app)
    user = await _quick_customer(request, resources, per_address=True)
    if user is None:
        return None
    return {"sale_id": sale_id, "body": body, "resources": resources, "user": user}


async def _quick_entry(request: Request) -> dict[str, Any] | None:
    sale_id = path_uuid(request, "sale_id")
    if sale_id is None or request.scope["query_string"]:  # a store_id: FastAPI checks it
        return None
    resources = resources_of(request.app)
    user = await _quick_customer(request, resources, per_address=False)
    if user is None:
        return None
    return {"sale_id": sale_id, "resources": resources, "user": user}


async def _public(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    now: datetime,
    settings: Settings,
) -> FlashSalePublic:
    """The sale's public view, naming the waiting room's server where qc serve runs one."""
    view = await sales.sale_public(session, redis, sale=sale, now=now)
    view.waiting_room_url = settings.waiting_room_url or None
    return view


@router.post(
    "",
    summary="Create a flash sale and pre-generate its tokens (managers, own city)",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_sale(
    body: FlashSaleCreate,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: ManagerUser,
    response: Response,
) -> FlashSalePublic:
    now = clock.now()
    sale = await sales.create_sale(
        session, redis, manager=user, body=body, now=now, settings=settings
    )
    response.headers["Cache-Control"] = NO_STORE
    return await _public(session, redis, sale=sale, now=now, settings=settings)


@router.get(
    "",
    summary="Flash sales: live and upcoming (or all), newest start first",
    responses=problem_responses(422),
)
async def list_sales(
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    response: Response,
    city: Annotated[str | None, Query(max_length=10, pattern=r"^[A-Z]+$")] = None,
    store_id: StoreQuery = None,
    include_finished: bool = False,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[datetime | None, Query(description="starts_at of the last sale seen")] = None,
) -> Page[FlashSalePublic]:
    now = clock.now()
    found = await sales.list_sales(
        session,
        now=now,
        city_id=city,
        store_id=store_id,
        include_finished=include_finished,
        before=cursor,
        limit=limit + 1,
    )
    page = found[:limit]
    response.headers["Cache-Control"] = NO_STORE
    return Page[FlashSalePublic](
        items=[await _public(session, redis, sale=s, now=now, settings=settings) for s in page],
        next_cursor=page[-1].starts_at.isoformat() if len(found) > limit else None,
    )


@router.get(
    "/{sale_id}",
    summary="One flash sale with its units per store (live, never cached)",
    responses=problem_responses(404),
)
async def get_sale(
    sale_id: SaleId,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    response: Response,
) -> FlashSalePublic:
    sale = await sales.get_sale(session, sale_id=sale_id)
    response.headers["Cache-Control"] = NO_STORE
    return await _public(session, redis, sale=sale, now=clock.now(), settings=settings)


@router.post(
    "/{sale_id}/stop",
    summary="Stop a sale now: unsold units go back to regular stock (managers, own city)",
    responses=problem_responses(401, 403, 404, 409),
)
async def stop_sale(
    sale_id: SaleId,
    body: FlashSaleStop,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: ManagerUser,
    response: Response,
) -> FlashSalePublic:
    now = clock.now()
    sale = await sales.stop_sale(
        session, redis, sale_id=sale_id, manager=user, reason=body.reason, now=now
    )
    response.headers["Cache-Control"] = NO_STORE
    return await _public(session, redis, sale=sale, now=now, settings=settings)


@queue_router.post(
    "/{sale_id}/queue",
    summary="Join a store's line: a position and an estimated wait, or a checkout slot",
    dependencies=[Depends(_per_ip)],
    responses=problem_responses(401, 403, 404, 409, 429, 503),
)
@quick(_quick_join)
async def join(
    sale_id: SaleId,
    body: FlashJoin,
    resources: ResourcesDep,
    user: FlashCustomer,
    response: Response,
) -> FlashQueueEntry:
    response.headers["Cache-Control"] = NO_STORE
    return await entries.join(
        resources.sessions,
        resources.redis,
        bulkhead=resources.flash_queue_bulkhead,
        sale_id=sale_id,
        customer=user,
        store_id=body.store_id,
        now=resources.clock.now(),
        settings=resources.settings,
    )


@queue_router.get(
    "/{sale_id}/queue/me",
    summary="Where I stand in the line (for clients without the websocket)",
    responses=problem_responses(401, 403, 404, 429, 503),
)
@quick(_quick_entry)
async def my_entry(
    sale_id: SaleId,
    resources: ResourcesDep,
    user: FlashCustomer,
    response: Response,
    store_id: StoreQuery = None,
) -> FlashQueueEntry:
    response.headers["Cache-Control"] = NO_STORE
    return await entries.my_entry(
        resources.sessions,
        resources.redis,
        bulkhead=resources.flash_queue_bulkhead,
        sale_id=sale_id,
        customer=user,
        store_id=store_id,
        now=resources.clock.now(),
        settings=resources.settings,
    )


@queue_router.delete(
    "/{sale_id}/queue/me",
    summary="Leave the line (an unused checkout slot and its token pass to the next)",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(_queue_bulkhead)],
    responses=problem_responses(401, 403, 404, 409, 429, 503),
)
async def leave(
    sale_id: SaleId,
    request: Request,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: FlashCustomer,
) -> Response:
    await entries.leave(
        resources_of(request.app).sessions,
        redis,
        sale_id=sale_id,
        customer=user,
        now=clock.now(),
        settings=settings,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{sale_id}/checkout",
    summary="Buy the unit of my checkout slot at the sale price (Idempotency-Key)",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(_checkout_bulkhead), Depends(_per_ip)],
    responses={
        201: {"model": OrderPublic},
        **problem_responses(401, 402, 403, 404, 409, 422, 429, 503),
    },
)
async def checkout(
    sale_id: SaleId,
    body: CheckoutRequest,
    request: Request,
    idempotency_key: IdempotencyKey,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: FlashCustomer,
) -> JSONResponse:
    resources = resources_of(request.app)
    now = clock.now()
    answer = await answer_checkout_once(
        request,
        user=user,
        key=idempotency_key,
        body=body,
        now=now,
        what_happened="the unit went back to the sale",
        checkout=lambda order_id, claim: flash_checkout.checkout(
            resources.sessions,
            redis,
            gateway=resources.flash_payments,
            settings=settings,
            customer=user,
            sale_id=sale_id,
            body=body,
            order_id=order_id,
            now=now,
            claim=claim,
        ),
    )
    answer.headers["Cache-Control"] = NO_STORE
    return answer


_GONE: dict[str, Any] = {"type": "gone"}  # put in a socket's inbox once its client left


@ws_router.websocket("/ws/flash/{sale_id}")
async def watch_line(websocket: WebSocket, sale_id: uuid.UUID) -> None:
    """The customer's place in line, pushed as it changes: ``position`` (with the
    estimated wait) only ever decreasing, then ``admitted`` (a 60 s slot) and
    ``slot_ended``, or ``closed`` (sold out, stopped, ended) for everyone at once."""
    resources = resources_of(websocket.app)

    async def entry_store(user: User) -> str:
        sale, stores = await sales.hot_sale(resources.sessions, sale_id=sale_id)  # cached
        return await entries.entry_store(
            resources.redis,
            sale=sale,
            customer=user.id,
            asked=websocket.query_params.get("store_id"),
            stores=list(stores),
        )

    admitted = await sockets.accept(
        websocket,
        roles={Role.CUSTOMER, Role.ADMIN},
        wrong_role=lambda: Forbidden("the queue is for customers"),
        admit=entry_store,
    )
    if admitted is None:
        return
    user, store_id = admitted

    async def client_gone() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:  # the client may send pings; a disconnect ends the watch
                await websocket.receive_text()

    gone = asyncio.create_task(client_gone())
    try:
        async with resources.flash_hub.watch(str(sale_id), store_id, str(user.id)) as inbox:
            # the client leaving is one more message in the inbox: no task and no wait
            # on two of them for each message sent (60,000 at 20,000 customers)
            gone.add_done_callback(lambda _: inbox.put_nowait(_GONE))
            while True:
                message = await inbox.get()
                if message is _GONE:
                    return
                await websocket.send_json(message)
                if message["type"] in FINAL:
                    await websocket.close()
                    return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await gone
