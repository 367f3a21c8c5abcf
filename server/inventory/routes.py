"""Stock operations for staff: view, receive, damage, cycle count, write-off, transfer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from server.inventory import service, staff
from server.kit.deps import ClockDep, PickerUser, RedisDep, SessionDep
from server.kit.openapi import problem_responses
from server.stores.service import authorize_store
from shared.enums import Movement
from shared.schemas.common import Page
from shared.schemas.inventory import (
    CountStock,
    DamageStock,
    ReceiveStock,
    StockRow,
    TransferPublic,
    TransferStock,
    WriteOffStock,
)

router = APIRouter(prefix="/v1/stores/{store_id}/inventory", tags=["inventory", "staff"])

StoreId = Annotated[
    str, Path(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-KOR"])
]
SkuId = Annotated[
    str, Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$", examples=["SKU00042"])
]


@router.get(
    "", summary="Stock of a store (staff only)", responses=problem_responses(401, 403, 404, 422)
)
async def list_stock(
    store_id: StoreId,
    session: SessionDep,
    user: PickerUser,
    low_stock: Annotated[bool, Query(description="only rows at or below reorder level")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
) -> Page[StockRow]:
    await authorize_store(session, store_id=store_id, user=user)
    rows = await staff.list_stock(
        session, store_id=store_id, limit=limit + 1, after=cursor, low_only=low_stock
    )
    page = rows[:limit]
    return Page[StockRow](
        items=[StockRow.model_validate(r) for r in page],
        next_cursor=page[-1].sku_id if len(rows) > limit else None,
    )


@router.post(
    "/{sku_id}/receive",
    summary="Receive stock (a transfer arriving, or new stock)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def receive(
    store_id: StoreId,
    sku_id: SkuId,
    body: ReceiveStock,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: PickerUser,
) -> StockRow:
    await authorize_store(session, store_id=store_id, user=user)
    row = await service.move_stock(
        session,
        redis,
        store_id=store_id,
        sku_id=sku_id,
        movement=Movement.RECEIPT,
        now=clock.now(),
        d_available=body.quantity,
        d_in_transit=-body.quantity if body.from_transit else 0,
        reference=body.reference,
        actor_id=user.id,
    )
    return StockRow.model_validate(row)


@router.post(
    "/{sku_id}/damage",
    summary="Mark available units damaged",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def damage(
    store_id: StoreId,
    sku_id: SkuId,
    body: DamageStock,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: PickerUser,
) -> StockRow:
    await authorize_store(session, store_id=store_id, user=user)
    row = await service.move_stock(
        session,
        redis,
        store_id=store_id,
        sku_id=sku_id,
        movement=Movement.DAMAGE,
        now=clock.now(),
        d_available=-body.quantity,
        d_damaged=body.quantity,
        reason=body.reason,
        actor_id=user.id,
    )
    return StockRow.model_validate(row)


@router.post(
    "/{sku_id}/count",
    summary="Cycle-count adjustment (409 on a stale version)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def count(
    store_id: StoreId,
    sku_id: SkuId,
    body: CountStock,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: PickerUser,
) -> StockRow:
    await authorize_store(session, store_id=store_id, user=user)
    row = await staff.count_adjustment(
        session,
        redis,
        store_id=store_id,
        sku_id=sku_id,
        counted=body.counted,
        expected_version=body.version,
        now=clock.now(),
        actor_id=user.id,
        reason=body.reason,
    )
    return StockRow.model_validate(row)


@router.post(
    "/{sku_id}/write-off",
    summary="Damaged units leave the books (409 on a stale version)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def write_off(
    store_id: StoreId,
    sku_id: SkuId,
    body: WriteOffStock,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: PickerUser,
) -> StockRow:
    await authorize_store(session, store_id=store_id, user=user)
    row = await staff.write_off(
        session,
        redis,
        store_id=store_id,
        sku_id=sku_id,
        quantity=body.quantity,
        expected_version=body.version,
        now=clock.now(),
        actor_id=user.id,
        reason=body.reason,
    )
    return StockRow.model_validate(row)


@router.post(
    "/{sku_id}/transfer",
    summary="Send available units to another store of the city (409 on a stale version)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def transfer(
    store_id: StoreId,
    sku_id: SkuId,
    body: TransferStock,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    user: PickerUser,
) -> TransferPublic:
    """The sender works on the sending store; the receiving store's staff book the
    units in when they arrive (``receive`` from transit)."""
    await authorize_store(session, store_id=store_id, user=user)
    sent = await staff.transfer(
        session,
        redis,
        from_store=store_id,
        to_store=body.to_store_id,
        sku_id=sku_id,
        quantity=body.quantity,
        expected_version=body.version,
        now=clock.now(),
        actor_id=user.id,
        reason=body.reason,
    )
    return TransferPublic(
        transfer_id=sent.transfer_id,
        source=StockRow.model_validate(sent.source),
        destination=StockRow.model_validate(sent.destination),
    )
