"""Inventory: Redis decides (atomic Lua), PostgreSQL records (same request), never oversell.

Every change runs Redis first, then writes ``store_inventory``, ``inventory_reservations``
and ``stock_ledger`` in the caller's transaction. The inverse of the Redis change is
registered as the transaction's rollback hook, so a failed write puts Redis back; a crash
in between is repaired by the reconciler (PostgreSQL is the source of truth).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import emit
from server.inventory import engine
from server.inventory.engine import LineChange, Reserved, RestoreLine, Settled
from server.inventory.errors import (
    StaleVersion,
    StockBucketShort,
    StoreNotFound,
    StoreNotReady,
    UnknownSku,
)
from server.inventory.models import StoreInventory
from server.kit import uow
from server.kit.errors import Conflict, Unprocessable
from server.stores.models import DarkStore
from shared.enums import Movement, ReservationStatus

MAX_LINE_QTY = 50  # per SKU in one cart: beyond this it is a wholesale order, not q-commerce
T = TypeVar("T")


def _ts(moment: datetime) -> float:
    return moment.timestamp()


async def _gated(
    session: AsyncSession, redis: aioredis.Redis, store_id: str, call: Callable[[], Awaitable[T]]
) -> T:
    """Run a script; if Redis lost the store's stock, load it from PostgreSQL first."""
    from server.inventory.reconcile import load_store

    try:
        return await call()
    except StoreNotReady:
        engine = session.bind
        assert isinstance(engine, AsyncEngine), "sessions are bound to the engine (kit.db)"
        await load_store(engine, redis, store_id)
        return await call()


def validate_lines(lines: dict[str, int], *, allow_zero: bool = True) -> None:
    if not lines:
        raise Unprocessable("at least one line is needed", code="no_lines")
    bad = {
        sku: q
        for sku, q in lines.items()
        if not isinstance(q, int) or q < (0 if allow_zero else 1) or q > MAX_LINE_QTY
    }
    if bad:
        raise Unprocessable(
            f"quantities must be whole numbers from {0 if allow_zero else 1} to {MAX_LINE_QTY}",
            code="invalid_quantity",
            lines=[{"sku_id": s, "quantity": q} for s, q in bad.items()],
        )


_RESERVATION_CTE = """
    res AS (
      INSERT INTO inventory_reservations (reservation_id, store_id, order_id, sku_id,
        quantity, status, created_at, updated_at, expires_at)
      VALUES (:rid, :store, :holder, :sku, :qty, :status, :now, :now, :expires)
      ON CONFLICT (store_id, order_id, sku_id) DO UPDATE SET quantity = EXCLUDED.quantity,
        status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
        expires_at = EXCLUDED.expires_at
    ),"""

_BUCKETS_SQL = """
    WITH {reservation}
    ledger AS (
      INSERT INTO stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
        d_damaged, d_in_transit, reference, actor_id, reason, created_at)
      SELECT :store, :sku, :movement, :da, :dr, :dd, :dt, :ref, :actor, :reason, :now
      WHERE :moves OR :note
    )
    UPDATE store_inventory SET
      available_qty = available_qty + :da, reserved_qty = reserved_qty + :dr,
      damaged_qty = damaged_qty + :dd, in_transit_qty = in_transit_qty + :dt,
      last_updated = :now, version = version + :bump
    WHERE store_id = :store AND sku_id = :sku AND :moves
      AND (CAST(:version AS bigint) IS NULL OR version = :version)
    RETURNING available_qty, reorder_level"""

_PLAIN = text(_BUCKETS_SQL.format(reservation=""))
_WITH_RESERVATION = text(_BUCKETS_SQL.format(reservation=_RESERVATION_CTE))


async def _write_bucket_change(
    session: AsyncSession,
    *,
    store_id: str,
    sku_id: str,
    movement: Movement,
    now: datetime,
    d_available: int = 0,
    d_reserved: int = 0,
    d_damaged: int = 0,
    d_in_transit: int = 0,
    reference: str | None = None,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    bump_version: bool = False,
    expected_version: int | None = None,
    reservation: dict[str, object] | None = None,
) -> None:
    """Apply deltas to the stock row and append the ledger entry (and upsert the
    reservation row) in one statement, so a hot row is locked for one round trip only;
    flag a low-stock crossing."""
    moves = any((d_available, d_reserved, d_damaged, d_in_transit))
    params = {
        "da": d_available,
        "dr": d_reserved,
        "dd": d_damaged,
        "dt": d_in_transit,
        "now": now,
        "bump": 1 if bump_version else 0,
        "store": store_id,
        "sku": sku_id,
        "version": expected_version,
        "movement": movement.value,
        "ref": reference,
        "actor": actor_id,
        "reason": reason,
        "moves": moves,
        # a short pick moves nothing the books still hold, but the discrepancy is recorded
        "note": movement == Movement.SHORT_PICK,
    }
    statement = _PLAIN
    if reservation is not None:
        statement = _WITH_RESERVATION
        params |= reservation
    row = (await session.execute(statement, params)).first()
    if not moves:
        return
    if row is None and expected_version is not None:
        raise StaleVersion(f"{sku_id} changed while counting; count again")
    if row is None:
        raise UnknownSku(f"{sku_id} is not stocked at {store_id}")
    available, reorder_level = row
    if d_available < 0 and available <= reorder_level < available - d_available:
        await emit(
            session,
            topic="inventory.low_stock",
            store_id=store_id,
            aggregate_id=sku_id,
            payload={"sku_id": sku_id, "available": available, "reorder_level": reorder_level},
            now=now,
        )


def _finish_inflight(
    session: AsyncSession, redis: aioredis.Redis, store_id: str, count: int = 1
) -> None:
    async def done() -> None:
        for _ in range(count):
            await engine.done_inflight(redis, store_id=store_id)

    uow.after_either(session, done)


async def reserve_lines(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    holder: str,
    lines: dict[str, int],
    now: datetime,
    hold_s: int,
    mode: Literal["SOFT", "HARD"] = "SOFT",
    new_holder: str | None = None,
    actor_id: uuid.UUID | None = None,
) -> Reserved:
    """Hold ``lines`` (sku -> wanted qty) for a cart or order: all or none.

    SOFT is the cart; HARD is checkout (and may move the hold to the order id).
    """
    validate_lines(lines)
    expires = now + timedelta(seconds=hold_s)
    target = new_holder or holder
    result = await _gated(
        session,
        redis,
        store_id,
        lambda: engine.reserve(
            redis,
            store_id=store_id,
            holder=holder,
            lines=lines,
            mode=mode,
            expires_at=_ts(expires),
            new_holder=new_holder,
        ),
    )

    async def compensate() -> None:
        await engine.restore(
            redis,
            store_id=store_id,
            holder=holder,
            drop_holder=target,
            state=result.previous_state,
            expires_at=result.previous_expires_at,
            lines=[
                RestoreLine(c.sku_id, held_qty=c.old_qty, d_available=c.delta, d_reserved=-c.delta)
                for c in result.lines
            ],
        )

    uow.on_rollback(session, compensate)
    if result.changed:
        _finish_inflight(session, redis, store_id)
    if new_holder and new_holder != holder:
        await session.execute(
            text("""
            UPDATE inventory_reservations SET order_id = :target
            WHERE store_id = :store AND order_id = :holder AND status IN ('SOFT', 'HARD')"""),
            {"target": target, "store": store_id, "holder": holder},
        )
    status = ReservationStatus.SOFT if mode == "SOFT" else ReservationStatus.HARD
    for change in result.lines:
        await _record_reservation(
            session,
            store_id=store_id,
            holder=target,
            change=change,
            status=status,
            now=now,
            expires=expires,
            actor_id=actor_id,
        )
    # Redis extends the whole hold on every touch: so does the books' expiry of each line
    await session.execute(
        text(
            "UPDATE inventory_reservations SET expires_at = :expires WHERE store_id = :store "
            "AND order_id = :holder AND status IN ('SOFT', 'HARD')"
        ),
        {"expires": expires, "store": store_id, "holder": target},
    )
    await session.flush()
    return result


async def _record_reservation(
    session: AsyncSession,
    *,
    store_id: str,
    holder: str,
    change: LineChange,
    status: ReservationStatus,
    now: datetime,
    expires: datetime,
    actor_id: uuid.UUID | None,
) -> None:
    final = status if change.new_qty > 0 else ReservationStatus.RELEASED
    await _write_bucket_change(
        session,
        store_id=store_id,
        sku_id=change.sku_id,
        now=now,
        movement=Movement.RESERVE if change.delta > 0 else Movement.RELEASE,
        d_available=-change.delta,
        d_reserved=change.delta,
        reference=holder,
        actor_id=actor_id,
        reservation={
            "rid": uuid.uuid4(),
            "holder": holder,
            "qty": change.new_qty,
            "status": final.value,
            "expires": expires,
        },
    )


_SETTLE_MOVEMENT = {
    "COMMITTED": Movement.COMMIT,
    "RELEASED": Movement.RELEASE,
    "EXPIRED": Movement.EXPIRE,
}


async def settle_hold(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    holder: str,
    outcome: engine.Outcome,
    now: datetime,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> Settled:
    """Commit (paid), release (failed/cancelled) or expire (timed out) a whole hold.

    Ending a hold that already ended is a no-op, so retries and races are harmless.
    """
    result = await _gated(
        session,
        redis,
        store_id,
        lambda: engine.settle(
            redis, store_id=store_id, holder=holder, outcome=outcome, now=_ts(now)
        ),
    )
    if result.status != "OK":
        return result
    committed = outcome == "COMMITTED"

    async def compensate() -> None:
        await engine.restore(
            redis,
            store_id=store_id,
            holder=holder,
            state=result.previous_state,
            expires_at=result.previous_expires_at,
            lines=[
                RestoreLine(sku, held_qty=q, d_available=0 if committed else -q, d_reserved=q)
                for sku, q in result.lines.items()
            ],
        )

    uow.on_rollback(session, compensate)
    _finish_inflight(session, redis, store_id)
    await session.execute(
        text("""
        UPDATE inventory_reservations SET status = :status, updated_at = :now
        WHERE store_id = :store AND order_id = :holder AND status IN ('SOFT', 'HARD')"""),
        {"status": outcome, "now": now, "store": store_id, "holder": holder},
    )
    for sku, qty in sorted(result.lines.items()):
        await _write_bucket_change(
            session,
            store_id=store_id,
            sku_id=sku,
            now=now,
            movement=_SETTLE_MOVEMENT[outcome],
            d_available=0 if committed else qty,
            d_reserved=-qty,
            reference=holder,
            actor_id=actor_id,
            reason=reason,
        )
    await session.flush()
    return result


async def move_stock(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    sku_id: str,
    movement: Movement,
    now: datetime,
    d_available: int = 0,
    d_damaged: int = 0,
    d_in_transit: int = 0,
    reference: str | None = None,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    expected_version: int | None = None,
) -> StoreInventory:
    """A physical movement (receipt, damage, count, dispatch): Redis gate, then the books."""
    if expected_version is not None:
        current = await session.get(StoreInventory, (store_id, sku_id))
        if current is None:
            raise UnknownSku(f"{sku_id} is not stocked at {store_id}")
        if current.version != expected_version:
            raise StaleVersion(
                f"{sku_id} is at version {current.version}, not {expected_version}; count again",
                version=current.version,
            )
    await _gated(
        session,
        redis,
        store_id,
        lambda: engine.adjust(
            redis,
            store_id=store_id,
            sku_id=sku_id,
            d_available=d_available,
            d_damaged=d_damaged,
            d_in_transit=d_in_transit,
        ),
    )

    async def compensate() -> None:
        await engine.restore(
            redis,
            store_id=store_id,
            lines=[
                RestoreLine(
                    sku_id,
                    d_available=-d_available,
                    d_damaged=-d_damaged,
                    d_in_transit=-d_in_transit,
                )
            ],
        )

    uow.on_rollback(session, compensate)
    _finish_inflight(session, redis, store_id)
    await _write_bucket_change(
        session,
        store_id=store_id,
        sku_id=sku_id,
        movement=movement,
        now=now,
        d_available=d_available,
        d_damaged=d_damaged,
        d_in_transit=d_in_transit,
        reference=reference,
        actor_id=actor_id,
        reason=reason,
        bump_version=True,
        expected_version=expected_version,
    )
    row = await session.get(StoreInventory, (store_id, sku_id), populate_existing=True)
    assert row is not None
    return row


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
