"""Customer carts, checkout and orders."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from server.idempotency.service import Claim, request_fingerprint, run_once
from server.identity.models import User
from server.kit import db, ratelimit
from server.kit.deps import (
    ClockDep,
    CurrentUser,
    CustomerUser,
    RedisDep,
    ResourcesDep,
    SessionDep,
    SettingsDep,
)
from server.kit.errors import problem_body
from server.kit.openapi import problem_responses
from server.kit.quick import (
    QuickRoute,
    bearer_of,
    customer,
    json_body,
    limited_customer,
    path_check,
    path_uuid,
    quick,
)
from server.kit.resources import Resources, resources_of
from server.orders import cart as carts
from server.orders import cart_checkout, service, views
from server.orders.flows import CheckoutOutcome, CheckoutPlaced, PaymentDeclined
from shared.schemas.common import Page
from shared.schemas.orders import (
    CancelRequest,
    CartCreate,
    CartLineSet,
    CartPublic,
    CartSwitchStore,
    CheckoutRequest,
    OrderPublic,
)

# the cart's and the checkout's requests skip FastAPI's dependency machinery (``quick``)
router = APIRouter(prefix="/v1", tags=["orders"], route_class=QuickRoute)

SkuId = Annotated[
    str, Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$", examples=["SKU00042"])
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


_sku_id = path_check(SkuId)
M = TypeVar("M", bound=BaseModel)


async def _customer_with(request: Request, model: type[M]) -> tuple[M, Resources, User] | None:
    """The body as ``model`` and the token's customer, or None (FastAPI's to read)."""
    body = await json_body(request, model)
    credentials = bearer_of(request)
    if body is None or credentials is None:
        return None
    resources = resources_of(request.app)
    return body, resources, await customer(resources, credentials)


async def _quick_create(request: Request) -> dict[str, Any] | None:
    read = await _customer_with(request, CartCreate)
    if read is None:
        return None
    body, resources, user = read
    return {"body": body, "clock": resources.clock, "settings": resources.settings, "user": user}


async def _quick_set_line(request: Request) -> dict[str, Any] | None:
    cart_id, sku_id = path_uuid(request, "cart_id"), _sku_id(request.path_params["sku_id"])
    read = None if cart_id is None or sku_id is None else await _customer_with(request, CartLineSet)
    if read is None:
        return None
    body, resources, user = read
    return {
        "cart_id": cart_id,
        "sku_id": sku_id,
        "body": body,
        "resources": resources,
        "redis": resources.redis,
        "clock": resources.clock,
        "settings": resources.settings,
        "user": user,
    }


async def _quick_checkout(request: Request) -> dict[str, Any] | None:
    cart_id = path_uuid(request, "cart_id")
    keys = request.headers.getlist("idempotency-key")
    if cart_id is None or len(keys) != 1 or not 1 <= len(keys[0]) <= 100:
        return None
    body = await json_body(request, CheckoutRequest)
    credentials = bearer_of(request)
    if body is None or credentials is None:
        return None
    resources = resources_of(request.app)
    user = await limited_customer(
        request,
        resources,
        credentials,
        limit=lambda user: _per_customer(resources, user),
        per_address=_per_address,
        address_first=False,  # _checkout_limits depends on the user: 401/403 first
    )
    return {
        "cart_id": cart_id,
        "body": body,
        "request": request,
        "idempotency_key": keys[0],
        "redis": resources.redis,
        "clock": resources.clock,
        "settings": resources.settings,
        "user": user,
    }


async def answer_checkout_once(
    request: Request,
    *,
    user: User,
    key: str,
    body: CheckoutRequest,
    now: datetime,
    what_happened: str,
    checkout: Callable[[uuid.UUID, Claim], Awaitable[CheckoutOutcome]],
) -> JSONResponse:
    """Run a checkout once per Idempotency-Key (a retry gets the first answer) and answer
    it; ``what_happened``: where the stock went when the payment failed. ``checkout``
    gets the order's id (the attempt's, so a retry after a crash finds that order) and the
    key's claim, which the flow takes and answers in its own transactions."""
    claim = Claim(
        user_id=user.id,
        key=key,
        fingerprint=request_fingerprint("POST", request.url.path, body.model_dump(mode="json")),
        now=now,
        render=lambda outcome: _checkout_answer(outcome, what_happened=what_happened),
    )
    return await run_once(resources_of(request.app).sessions, claim, checkout)


def _checkout_answer(outcome: CheckoutOutcome, *, what_happened: str) -> tuple[int, dict[str, Any]]:
    """A checkout's HTTP answer: 201 with the order, or 402 when the payment failed."""
    match outcome:
        case CheckoutPlaced(order=order):
            return 201, order.model_dump(mode="json")
        case PaymentDeclined(order_id=order_id, failure_reason=reason):
            return 402, problem_body(
                402,
                "payment_failed",
                f"the payment failed ({reason or 'declined'}); nothing was charged "
                f"and {what_happened}",
                title="Payment failed",
                order_id=str(order_id),
            )


@router.post(
    "/carts",
    summary="Start a cart at a store",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 422),
)
@quick(_quick_create, session="session")
async def create_cart(
    body: CartCreate,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: CustomerUser,
) -> CartPublic:
    await db.autocommit(session)  # one statement
    cart = await carts.create_cart(
        session,
        user=user,
        store_id=body.store_id,
        now=clock.now(),
        max_holding=settings.cart_max_holding,
        hold_life_s=settings.cart_hold_life_s,
    )
    return carts.new_cart_view(cart, hold_life_s=settings.cart_hold_life_s)


@router.get(
    "/carts/{cart_id}",
    summary="A cart with each line's hold time left",
    responses=problem_responses(401, 403, 404),
)
async def get_cart(
    cart_id: uuid.UUID,
    session: SessionDep,
    resources: ResourcesDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: CustomerUser,
) -> CartPublic:
    cart = await carts.get_cart(session, cart_id=cart_id, user=user)
    return await carts.cart_view(
        session,
        redis,
        cart=cart,
        now=clock.now(),
        retention_s=settings.reservation_retention_s,
        hold_life_s=settings.cart_hold_life_s,
        catalog=resources.catalog,
    )


@router.put(
    "/carts/{cart_id}/lines/{sku_id}",
    summary="Set a line's quantity (holds the stock for 10 minutes; 0 removes it)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
@quick(_quick_set_line, session="session")
async def set_line(
    cart_id: uuid.UUID,
    sku_id: SkuId,
    body: CartLineSet,
    session: SessionDep,
    resources: ResourcesDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: CustomerUser,
) -> CartPublic:
    cart, held = await carts.set_line(
        session,
        redis,
        cart_id=cart_id,
        user=user,
        sku_id=sku_id,
        quantity=body.quantity,
        now=clock.now(),
        hold_s=settings.soft_hold_s,
        hold_life_s=settings.cart_hold_life_s,
        max_units=settings.cart_max_units_per_sku,
    )
    return await carts.cart_view(
        session,
        redis,
        cart=cart,
        now=clock.now(),
        retention_s=settings.reservation_retention_s,
        hold_life_s=settings.cart_hold_life_s,
        catalog=resources.catalog,
        known=held,
    )


@router.delete(
    "/carts/{cart_id}/lines/{sku_id}",
    summary="Remove a line (releases its hold)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def remove_line(
    cart_id: uuid.UUID,
    sku_id: SkuId,
    session: SessionDep,
    resources: ResourcesDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: CustomerUser,
) -> CartPublic:
    return await set_line(
        cart_id, sku_id, CartLineSet(quantity=0), session, resources, redis, clock, settings, user
    )


@router.patch(
    "/carts/{cart_id}",
    summary="Move the cart to another store",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def switch_store(
    cart_id: uuid.UUID,
    body: CartSwitchStore,
    session: SessionDep,
    resources: ResourcesDep,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: CustomerUser,
) -> CartPublic:
    cart = await carts.get_cart(session, cart_id=cart_id, user=user, for_update=True)
    dropped = await carts.switch_store(
        session,
        redis,
        cart=cart,
        store_id=body.store_id,
        now=clock.now(),
        hold_s=settings.soft_hold_s,
        hold_life_s=settings.cart_hold_life_s,
    )
    return await carts.cart_view(
        session,
        redis,
        cart=cart,
        now=clock.now(),
        retention_s=settings.reservation_retention_s,
        dropped=dropped,
        hold_life_s=settings.cart_hold_life_s,
        catalog=resources.catalog,
    )


_per_address = ratelimit.per_address("checkout-ip", lambda s: s.cart_checkout_limit_per_address)


async def _checkout_limits(request: Request, resources: ResourcesDep, user: CustomerUser) -> User:
    """Checkouts are counted per client address (behind QC_TRUSTED_PROXIES: the real one)
    and per customer; past either limit a 429 with Retry-After, before any work is done."""
    await _per_address(request)
    await _per_customer(resources, user)
    return user


async def _per_customer(resources: Resources, user: User) -> None:
    await ratelimit.hit(
        resources.rate_limiter,
        scope="checkout-customer",
        who=str(user.id),
        spec=resources.settings.cart_checkout_limit_per_customer,
    )


CheckoutCustomer = Annotated[User, Depends(_checkout_limits)]


@router.post(
    "/carts/{cart_id}/checkout",
    summary="Check out: hard reservation, order PLACED, payment (Idempotency-Key)",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"model": OrderPublic},
        **problem_responses(401, 402, 403, 404, 409, 422, 429, 503),
    },
)
@quick(_quick_checkout)
async def checkout(
    cart_id: uuid.UUID,
    body: CheckoutRequest,
    request: Request,
    idempotency_key: IdempotencyKey,
    redis: RedisDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: CheckoutCustomer,
) -> JSONResponse:
    resources = resources_of(request.app)
    now = clock.now()
    return await answer_checkout_once(
        request,
        user=user,
        key=idempotency_key,
        body=body,
        now=now,
        what_happened="the items were put back",
        checkout=lambda order_id, claim: cart_checkout.checkout(
            resources.sessions,
            redis,
            gateway=resources.payments,
            settings=settings,
            user=user,
            cart_id=cart_id,
            body=body,
            order_id=order_id,
            now=now,
            claim=claim,
            catalog=resources.catalog,
        ),
    )


@router.get(
    "/orders",
    summary="The customer's own orders, newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_orders(
    session: SessionDep,
    user: CustomerUser,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[
        datetime | None, Query(description="placed_at of the last order seen")
    ] = None,
) -> Page[OrderPublic]:
    found = await service.list_orders(session, user=user, limit=limit + 1, before=cursor)
    page = found[:limit]
    return Page[OrderPublic](
        items=[await views.public(session, o) for o in page],
        next_cursor=page[-1].placed_at.isoformat()
        if len(found) > limit and page[-1].placed_at
        else None,
    )


@router.get(
    "/orders/{order_id}",
    summary="One order with its state times",
    responses=problem_responses(401, 404),
)
async def get_order(order_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> OrderPublic:
    order = await service.get_order(session, order_id=order_id, viewer=user)
    return await views.public(session, order, show_otp=user.id == order.user_id)


@router.post(
    "/orders/{order_id}/cancel",
    summary="Cancel an order (customers: until picking starts)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel(
    order_id: uuid.UUID,
    body: CancelRequest,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: CustomerUser,
) -> OrderPublic:
    order = await service.get_order(session, order_id=order_id, viewer=user, for_update=True)
    await service.cancel_order(
        session,
        redis,
        order=order,
        now=clock.now(),
        actor=user,
        reason=body.reason,
        by_customer=True,
    )
    return await views.public(session, order)
