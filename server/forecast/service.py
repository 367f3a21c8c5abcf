"""Replenishment on the live books: plan PLANNED orders from the latest forecasts and the
stock positions, dispatch them into the store's in-transit bucket, receive them, and the
stock-out risk the control tower shows. Request-sized: each call takes an ``AsyncSession``
first and never commits, like every other service; stock moves go through the Redis gate.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.forecast.models import ReplenishmentOrder, ReplenishmentStatus
from server.forecast.replenish import Reason, StockPosition, plan
from server.inventory.service import move_stock
from server.kit.errors import Conflict, NotFound
from shared.enums import Movement


@dataclass(frozen=True)
class PlannedLine:
    order: ReplenishmentOrder
    position: StockPosition  # in_transit includes units already PLANNED, not yet dispatched


@dataclass(frozen=True)
class ReplenishmentPlan:
    lines: list[PlannedLine]
    reasons: Counter[Reason]  # decisions per reason over every position considered
    positions: int
    forecast_at: dict[str, datetime | None]  # per store: the forecast run used


_POSITIONS_SQL = text("""
    WITH latest AS (
      SELECT s.store_id, (SELECT max(f.forecast_at) FROM demand_forecasts f
                          WHERE f.store_id = s.store_id AND f.forecast_at <= :now) AS at
      FROM dark_stores s
      WHERE CAST(:store AS varchar) IS NULL OR s.store_id = :store
    ), planned AS (
      SELECT store_id, sku_id, sum(quantity) AS qty FROM replenishment_orders
      WHERE status = 'PLANNED' AND (CAST(:store AS varchar) IS NULL OR store_id = :store)
      GROUP BY store_id, sku_id
    )
    SELECT i.store_id, i.sku_id, i.available_qty, i.in_transit_qty + coalesce(p.qty, 0),
           i.max_capacity, pr.case_pack, f.next_24h, f.next_72h, l.at
    FROM latest l
    JOIN store_inventory i ON i.store_id = l.store_id
    JOIN products pr ON pr.sku_id = i.sku_id
    LEFT JOIN demand_forecasts f
      ON f.store_id = i.store_id AND f.sku_id = i.sku_id AND f.forecast_at = l.at
    LEFT JOIN planned p ON p.store_id = i.store_id AND p.sku_id = i.sku_id
    ORDER BY i.store_id, i.sku_id""")


async def plan_replenishment(
    session: AsyncSession, *, now: datetime, store_id: str | None = None
) -> ReplenishmentPlan:
    """Apply the reorder rule to every SKU of every store (or one store) with the store's
    latest forecast at or before ``now``, and write a PLANNED order per SKU that needs one.

    Units PLANNED but not yet dispatched count as in transit, so planning again before
    dispatch orders nothing twice. A SKU without a forecast is never reordered.
    """
    rows = (await session.execute(_POSITIONS_SQL, {"now": now, "store": store_id})).all()
    if store_id is not None and not rows:
        exists = (
            await session.execute(
                text("SELECT 1 FROM dark_stores WHERE store_id = :s"), {"s": store_id}
            )
        ).first()
        if exists is None:
            raise NotFound(f"no store {store_id}", code="store_not_found")
    positions: list[StockPosition] = []
    forecasts: dict[tuple[str, str], tuple[float, float]] = {}
    used: dict[str, datetime | None] = {}
    for store, sku, available, in_transit, capacity, case_pack, f24, f72, at in rows:
        positions.append(StockPosition(store, sku, available, in_transit, capacity, case_pack))
        used[store] = at
        if f24 is not None:
            forecasts[store, sku] = (float(f24), float(f72))
    decisions = plan(positions, forecasts)
    lines: list[PlannedLine] = []
    for position, decision in zip(positions, decisions, strict=True):
        if decision.quantity <= 0:
            continue
        f24, f72 = forecasts[position.store_id, position.sku_id]
        order = ReplenishmentOrder(
            store_id=position.store_id,
            sku_id=position.sku_id,
            quantity=decision.quantity,
            cases=decision.cases,
            status=ReplenishmentStatus.PLANNED,
            created_at=now,
            forecast_24h=f24,
            forecast_72h=f72,
        )
        session.add(order)
        lines.append(PlannedLine(order, position))
    await session.flush()
    return ReplenishmentPlan(
        lines=lines,
        reasons=Counter(d.reason for d in decisions),
        positions=len(positions),
        forecast_at=used,
    )


async def _locked(session: AsyncSession, replenishment_id: uuid.UUID) -> ReplenishmentOrder:
    query = (
        select(ReplenishmentOrder)
        .where(col(ReplenishmentOrder.replenishment_id) == replenishment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    order = (await session.exec(query)).first()
    if order is None:
        raise NotFound(f"no replenishment {replenishment_id}", code="replenishment_not_found")
    return order


def _require(order: ReplenishmentOrder, status: ReplenishmentStatus, action: str) -> None:
    if order.status != status:
        raise Conflict(
            f"replenishment {order.replenishment_id} is {order.status}; only a "
            f"{status} one can be {action}",
            code="replenishment_state",
            status_now=str(order.status),
        )


async def dispatch(
    session: AsyncSession, redis: aioredis.Redis, *, replenishment_id: uuid.UUID, now: datetime
) -> ReplenishmentOrder:
    """Send a PLANNED order: its units enter the store's in_transit bucket (Redis gate,
    then the books and the ledger, through ``move_stock``) and it becomes DISPATCHED."""
    order = await _locked(session, replenishment_id)
    _require(order, ReplenishmentStatus.PLANNED, "dispatched")
    await move_stock(
        session,
        redis,
        store_id=order.store_id,
        sku_id=order.sku_id,
        movement=Movement.DISPATCH,
        now=now,
        d_in_transit=order.quantity,
        reference=str(order.replenishment_id),
        reason="replenishment",
    )
    order.status = ReplenishmentStatus.DISPATCHED
    order.dispatched_at = now
    session.add(order)
    await session.flush()
    return order


async def receive(
    session: AsyncSession, redis: aioredis.Redis, *, replenishment_id: uuid.UUID, now: datetime
) -> ReplenishmentOrder:
    """A DISPATCHED order arrives: in_transit -> available (RECEIPT), status RECEIVED.

    (Staff receiving through ``POST /v1/stores/{id}/inventory/{sku}/receive`` with
    ``from_transit`` moves the same stock but does not know the order; use this instead
    when the replenishment id is known.)
    """
    order = await _locked(session, replenishment_id)
    _require(order, ReplenishmentStatus.DISPATCHED, "received")
    await move_stock(
        session,
        redis,
        store_id=order.store_id,
        sku_id=order.sku_id,
        movement=Movement.RECEIPT,
        now=now,
        d_available=order.quantity,
        d_in_transit=-order.quantity,
        reference=str(order.replenishment_id),
        reason="replenishment",
    )
    order.status = ReplenishmentStatus.RECEIVED
    order.received_at = now
    session.add(order)
    await session.flush()
    return order


_RISK_SQL = text("""
    SELECT s.store_id, count(f.sku_id) FILTER (WHERE i.available_qty < f.next_24h)
    FROM dark_stores s
    LEFT JOIN LATERAL (SELECT max(forecast_at) AS at FROM demand_forecasts
                       WHERE store_id = s.store_id) l ON true
    LEFT JOIN demand_forecasts f ON f.store_id = s.store_id AND f.forecast_at = l.at
    LEFT JOIN store_inventory i ON i.store_id = f.store_id AND i.sku_id = f.sku_id
    WHERE CAST(:store AS varchar) IS NULL OR s.store_id = :store
    GROUP BY s.store_id
    ORDER BY s.store_id""")


async def stockout_risk(session: AsyncSession, *, store_id: str | None = None) -> dict[str, int]:
    """Per store: SKUs whose available units are below the next-24h forecast of the
    store's latest run (0 for a store without forecasts). For the control tower feed."""
    rows = (await session.execute(_RISK_SQL, {"store": store_id})).all()
    if store_id is not None and not rows:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    return {store: int(n) for store, n in rows}
