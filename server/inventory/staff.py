"""Staff stock work on top of ``move_stock``: cycle counts, write-offs, transfers between
stores, and the stock list. Each is a physical movement, version-checked like a count."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory.errors import StockBucketShort, StoreNotFound, UnknownSku
from server.inventory.models import StoreInventory
from server.inventory.service import move_stock
from server.kit.errors import Conflict, Unprocessable
from server.stores.models import DarkStore
from shared.enums import Movement


async def count_adjustment(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    sku_id: str,
    counted: int,
    expected_version: int,
    now: datetime,
    actor_id: uuid.UUID | None,
    reason: str | None,
) -> StoreInventory:
    """Cycle count: ``counted`` units on the shelf (available + reserved) after a count."""
    row = await session.get(StoreInventory, (store_id, sku_id))
    if row is None:
        raise UnknownSku(f"{sku_id} is not stocked at {store_id}")
    delta = counted - (row.available_qty + row.reserved_qty)
    if row.available_qty + delta < 0:
        raise StockBucketShort(
            f"counted {counted} but {row.reserved_qty} are held for orders; short-pick them "
            "instead",
            bucket="reserved",
            current=row.reserved_qty,
        )
    return await move_stock(
        session,
        redis,
        store_id=store_id,
        sku_id=sku_id,
        movement=Movement.ADJUSTMENT,
        now=now,
        d_available=delta,
        actor_id=actor_id,
        reason=reason or "cycle count",
        expected_version=expected_version,
    )


async def write_off(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    sku_id: str,
    quantity: int,
    expected_version: int,
    now: datetime,
    actor_id: uuid.UUID | None,
    reason: str,
) -> StoreInventory:
    """Damaged units leave the books (binned, returned to the supplier): a WRITE_OFF
    out of ``damaged``, refused on a stale version like a cycle count."""
    return await move_stock(
        session,
        redis,
        store_id=store_id,
        sku_id=sku_id,
        movement=Movement.WRITE_OFF,
        now=now,
        d_damaged=-quantity,
        actor_id=actor_id,
        reason=reason,
        expected_version=expected_version,
    )


@dataclass(frozen=True)
class Transfer:
    transfer_id: str  # the ledger reference of both sides, and of the receipt
    source: StoreInventory
    destination: StoreInventory


async def transfer(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    from_store: str,
    to_store: str,
    sku_id: str,
    quantity: int,
    expected_version: int,
    now: datetime,
    actor_id: uuid.UUID | None,
    reason: str | None,
) -> Transfer:
    """Send available units of one store to another of its city: out of the source's
    ``available`` into the destination's ``in_transit``, two TRANSFER entries under one
    reference, in the caller's transaction (both stores or neither: a failure undoes
    both Redis changes with the rollback). The destination books them available when
    they arrive (``receive`` from transit, a RECEIPT). The version is the source row's,
    checked like a cycle count's."""
    stores = {s.store_id: s for s in await _stores(session, from_store, to_store)}
    if to_store == from_store:
        raise Unprocessable("a transfer goes to another store", code="same_store")
    if to_store not in stores or from_store not in stores:
        raise StoreNotFound(f"no store {to_store}")
    if stores[to_store].city_id != stores[from_store].city_id:
        raise Conflict(f"{to_store} is in another city", code="other_city")
    transfer_id = f"TRF-{uuid.uuid4().hex[:12].upper()}"
    rows: dict[str, StoreInventory] = {}
    # one lock order, so opposite transfers cannot deadlock
    for store_id in sorted((from_store, to_store)):
        sending = store_id == from_store
        rows[store_id] = await move_stock(
            session,
            redis,
            store_id=store_id,
            sku_id=sku_id,
            movement=Movement.TRANSFER,
            now=now,
            d_available=-quantity if sending else 0,
            d_in_transit=0 if sending else quantity,
            reference=transfer_id,
            actor_id=actor_id,
            reason=reason or f"transfer {from_store} -> {to_store}",
            expected_version=expected_version if sending else None,
        )
    return Transfer(transfer_id, rows[from_store], rows[to_store])


async def _stores(session: AsyncSession, *store_ids: str) -> list[DarkStore]:
    return list(
        (await session.exec(select(DarkStore).where(col(DarkStore.store_id).in_(store_ids)))).all()
    )


async def list_stock(
    session: AsyncSession, *, store_id: str, limit: int, after: str | None, low_only: bool
) -> list[StoreInventory]:
    query = select(StoreInventory).where(StoreInventory.store_id == store_id)
    if after:
        query = query.where(col(StoreInventory.sku_id) > after)
    if low_only:
        query = query.where(col(StoreInventory.available_qty) <= col(StoreInventory.reorder_level))
    return list((await session.exec(query.order_by(col(StoreInventory.sku_id)).limit(limit))).all())
