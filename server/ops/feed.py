"""The control tower's view of a city: one snapshot built from PostgreSQL, and the
difference between two snapshots that the ``/ws/ops`` socket sends.

PostgreSQL is the source of every figure, so the feed agrees with the database by
construction; a snapshot is a handful of aggregate queries over the city's stores. Figures
that move slowly (stock counts, the forecast's stock-out risk) are cached per process.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from pydantic import BaseModel
from sqlalchemy import TextClause, text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery.locations import latest as latest_fixes
from server.forecast.history import ist_midnight
from server.forecast.service import stockout_risk
from server.kit.cache import TTLCache
from server.kit.errors import NotFound
from server.ops import alerts as alert_store
from server.ops import sla
from server.stores.selection import asks_today, next_opening
from shared.enums import OrderStatus, RiderStatus
from shared.geo import LatLng, haversine_m
from shared.schemas.ops import (
    CityOps,
    FlashQueueOps,
    OpsChanges,
    OpsOrder,
    OpsPicker,
    OpsRider,
    OpsSnapshot,
    StoreOps,
)

ACTIVE_STATES = [
    s.value for s in OrderStatus if s not in (OrderStatus.DELIVERED, OrderStatus.CANCELLED)
]
BUSY_RIDER_STATES = frozenset(
    {RiderStatus.ASSIGNED, RiderStatus.AT_STORE, RiderStatus.DELIVERING, RiderStatus.RETURNING}
)
PICKER_ACTIVE_WINDOW = timedelta(minutes=15)  # claimed a task this recently: on the floor
SERIES_MINUTES = 30


class FeedCache:
    """Per app instance: slow-moving figures (stock counts 5 s, forecast risk 60 s) and
    each city's last snapshot (half a second: every socket of the process shares it)."""

    def __init__(self) -> None:
        self.stock: TTLCache[dict[str, tuple[int, int, int]]] = TTLCache(5.0)
        self.risk: TTLCache[dict[str, int]] = TTLCache(60.0)
        self.snapshots: TTLCache[OpsSnapshot] = TTLCache(0.5)


_STORES = text("""
    SELECT s.store_id, s.store_name, s.lat, s.lng, s.is_operational, s.paused_reason,
           s.service_radius_m, s.operating_hours, c.timezone, s.substitution_policy,
           s.substitution_fallback
    FROM dark_stores s JOIN cities c ON c.city_id = s.city_id
    WHERE s.city_id = :city ORDER BY s.store_id""")

_TIMEZONE = text("SELECT timezone FROM cities WHERE city_id = :city")

_ORDERS = text("""
    SELECT o.order_id, o.store_id, o.status, o.placed_at, o.sla_deadline, o.rider_id,
           o.delivery_lat, o.delivery_lng, t.estimate_s, t.claimed_at
    FROM orders o
    LEFT JOIN pick_tasks t ON t.store_id = o.store_id AND t.order_id = o.order_id
    WHERE o.store_id = ANY(:stores) AND o.status = ANY(:states)
    ORDER BY o.sla_deadline NULLS LAST, o.placed_at""")

_RIDERS = text("""
    SELECT r.rider_id, u.name, r.status, r.lat, r.lng,
           (SELECT t.store_id FROM trips t WHERE t.rider_id = r.rider_id
              AND t.status NOT IN ('COMPLETED', 'CANCELLED')
            ORDER BY t.created_at DESC LIMIT 1) AS trip_store,
           GREATEST(
             (SELECT max(t.updated_at) FROM trips t WHERE t.rider_id = r.rider_id),
             (SELECT max(s.started_at) FROM rider_shifts s WHERE s.rider_id = r.rider_id)
           ) AS free_since
    FROM riders r JOIN users u ON u.id = r.rider_id
    WHERE r.city_id = :city AND r.on_duty
    ORDER BY r.rider_id""")

_PICKERS = text("""
    SELECT u.id, u.name, u.store_id,
           (SELECT t.order_id FROM pick_tasks t WHERE t.store_id = u.store_id
              AND t.picker_id = u.id AND t.status = 'PICKING' LIMIT 1) AS picking
    FROM users u
    WHERE u.role = 'picker' AND u.store_id = ANY(:stores) AND EXISTS (
        SELECT 1 FROM pick_tasks p WHERE p.store_id = u.store_id AND p.picker_id = u.id
          AND (p.status = 'PICKING' OR p.claimed_at > :since))
    ORDER BY u.store_id, u.login""")

# low; none on the shelf; of those, sold out today (a customer's hold took units off the
# shelf since the city's midnight): the rest were never stocked or not restocked since
_STOCK = text("""
    SELECT i.store_id,
           count(*) FILTER (WHERE i.available_qty > 0 AND i.available_qty <= i.reorder_level),
           count(*) FILTER (WHERE i.available_qty = 0),
           count(*) FILTER (WHERE i.available_qty = 0 AND EXISTS (
             SELECT 1 FROM stock_ledger l WHERE l.store_id = i.store_id AND l.sku_id = i.sku_id
               AND l.created_at >= :since AND l.movement = 'RESERVE'))
    FROM store_inventory i WHERE i.store_id = ANY(:stores) GROUP BY i.store_id""")

_PER_MINUTE = text("""
    SELECT floor(extract(epoch FROM (:now - placed_at)) / 60)::int AS ago, count(*)
    FROM orders
    WHERE store_id = ANY(:stores) AND placed_at > :since AND placed_at <= :now
    GROUP BY ago""")

_DELIVERED = text("""
    SELECT count(*),
           count(*) FILTER (WHERE delivered_at - placed_at <= interval '10 minutes'),
           count(*) FILTER (WHERE delivered_at - placed_at <= interval '15 minutes'),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - placed_at)),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - placed_at))
    FROM orders
    WHERE store_id = ANY(:stores) AND status = 'DELIVERED'
      AND delivered_at >= :midnight AND delivered_at <= :now""")

_CANCELLED = text("""
    SELECT coalesce(nullif(split_part(cancel_reason, ':', 1), ''), 'unspecified'), count(*)
    FROM orders
    WHERE store_id = ANY(:stores) AND status = 'CANCELLED'
      AND cancelled_at >= :midnight AND cancelled_at <= :now
    GROUP BY 1""")


def _rows(result: Any) -> list[Any]:
    return list(result.all())


async def _exec(session: AsyncSession, statement: TextClause, **params: Any) -> list[Any]:
    return _rows(await session.execute(statement, params))


async def _stock(
    session: AsyncSession, city_id: str, stores: list[str], cache: FeedCache | None, now: datetime
) -> dict[str, tuple[int, int, int]]:
    async def load() -> dict[str, tuple[int, int, int]]:
        rows = await _exec(session, _STOCK, stores=stores, since=ist_midnight(now))
        return {store: (int(low), int(outs), int(today)) for store, low, outs, today in rows}

    return await cache.stock.get_or_load(city_id, load) if cache else await load()


async def _risk(session: AsyncSession, city_id: str, cache: FeedCache | None) -> dict[str, int]:
    async def load() -> dict[str, int]:
        return await stockout_risk(session)

    return await cache.risk.get_or_load(city_id, load) if cache else await load()


def _home_store(here: LatLng, stores: list[Any]) -> str | None:
    """The nearest store whose service radius covers the rider, if any."""
    best: tuple[float, str] | None = None
    for s in stores:
        d = haversine_m(here, LatLng(s.lat, s.lng))
        if d <= s.service_radius_m and (best is None or d < best[0]):
            best = (d, s.store_id)
    return best[1] if best else None


async def build_snapshot(
    session: AsyncSession,
    *,
    city_id: str,
    now: datetime,
    flash_queues: Iterable[FlashQueueOps] = (),
    cache: FeedCache | None = None,
    clock_speed: float = 1.0,
    redis: aioredis.Redis | None = None,
) -> OpsSnapshot:
    """Every figure of the city at ``now``; without a ``cache`` all of them are fresh."""
    stores = await _exec(session, _STORES, city=city_id)
    if not stores:
        raise NotFound(f"no city {city_id}", code="city_not_found")
    store_ids = [s.store_id for s in stores]
    by_store = {s.store_id: s for s in stores}
    now_s = now.timestamp()

    pickers = [
        OpsPicker(user_id=uid, name=name, store_id=store, picking_order_id=picking)
        for uid, name, store, picking in await _exec(
            session, _PICKERS, stores=store_ids, since=now - PICKER_ACTIVE_WINDOW
        )
    ]
    pickers_at: dict[str, int] = defaultdict(int)
    for p in pickers:
        pickers_at[p.store_id] += 1

    riders: list[OpsRider] = []
    idle_at: dict[str, int] = defaultdict(int)
    busy_at: dict[str, int] = defaultdict(int)
    rider_at: dict[uuid.UUID, LatLng] = {}
    rows = await _exec(session, _RIDERS, city=city_id)
    # positions: the last fixes (Redis); without Redis, the rows' copy (a sample behind)
    fixes = (
        {}
        if redis is None
        else await latest_fixes(redis, city_id=city_id, rider_ids=[r[0] for r in rows])
    )
    for rider_id, name, status, lat, lng, trip_store, free_since in rows:
        if rider_id in fixes:
            lat, lng = fixes[rider_id].position.lat, fixes[rider_id].position.lng
        here = LatLng(lat, lng) if lat is not None and lng is not None else None
        store = trip_store or (_home_store(here, stores) if here else None)
        idle = status == RiderStatus.IDLE
        riders.append(
            OpsRider(
                rider_id=rider_id,
                name=name,
                store_id=store,
                status=status,
                lat=lat,
                lng=lng,
                idle_s=max(0.0, now_s - free_since.timestamp()) if idle and free_since else None,
            )
        )
        if here is not None:
            rider_at[rider_id] = here
        if store is not None:
            if idle:
                idle_at[store] += 1
            elif status in BUSY_RIDER_STATES:
                busy_at[store] += 1

    orders: list[OpsOrder] = []
    by_state: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    oldest: dict[str, float] = defaultdict(float)
    breaches: dict[str, int] = defaultdict(int)
    waiting_ahead: dict[str, int] = defaultdict(int)
    for row in await _exec(session, _ORDERS, stores=store_ids, states=ACTIVE_STATES):
        store = by_store[row.store_id]
        progress = sla.OrderProgress(
            status=row.status,
            store=LatLng(store.lat, store.lng),
            drop=LatLng(row.delivery_lat, row.delivery_lng),
            sla_deadline_s=row.sla_deadline.timestamp() if row.sla_deadline else None,
            pick_estimate_s=row.estimate_s,
            pick_started_s=row.claimed_at.timestamp() if row.claimed_at else None,
            has_rider=row.rider_id is not None,
            rider_at=rider_at.get(row.rider_id) if row.rider_id else None,
        )
        ahead = 0.0
        if row.status in sla.WAITING_FOR_PICK:
            # orders come in SLA order: those before this one are picked first
            ahead = sla.queue_wait_s(waiting_ahead[row.store_id], pickers=pickers_at[row.store_id])
            waiting_ahead[row.store_id] += 1
        predicted = sla.breach_predicted(progress, now_s=now_s, queue_ahead_s=ahead)
        age = max(0.0, now_s - row.placed_at.timestamp()) if row.placed_at else 0.0
        orders.append(
            OpsOrder(
                order_id=row.order_id,
                store_id=row.store_id,
                status=row.status,
                placed_at=row.placed_at or now,
                age_s=round(age, 1),
                sla_deadline=row.sla_deadline,
                predicted_breach=predicted,
                rider_id=row.rider_id,
                drop_lat=row.delivery_lat,
                drop_lng=row.delivery_lng,
            )
        )
        by_state[row.store_id][row.status] += 1
        if row.status in sla.IN_STORE:
            oldest[row.store_id] = max(oldest[row.store_id], age)
        breaches[row.store_id] += predicted

    stock = await _stock(session, city_id, store_ids, cache, now)
    risk = await _risk(session, city_id, cache)
    store_rows = []
    for s in stores:
        sid = s.store_id
        states = dict(by_state[sid])
        load = sla.StoreLoad(
            in_store=sum(n for st, n in states.items() if st in sla.IN_STORE),
            predicted_breaches=breaches[sid],
            oldest_wait_s=oldest[sid],
            active_pickers=pickers_at[sid],
            idle_riders=idle_at[sid],
            is_operational=s.is_operational,
        )
        low, outs, sold_out_today = stock.get(sid, (0, 0, 0))
        store_rows.append(
            StoreOps(
                store_id=sid,
                name=s.store_name,
                lat=s.lat,
                lng=s.lng,
                is_operational=s.is_operational,
                paused_reason=s.paused_reason,
                # closed by its hours: when it opens (the tower says so, not "live")
                opens_at=next_opening(s.operating_hours, now.astimezone(ZoneInfo(s.timezone))),
                service_radius_m=s.service_radius_m,
                substitution_policy=s.substitution_policy,
                substitution_fallback=s.substitution_fallback,
                orders_by_state=states,
                oldest_wait_s=round(oldest[sid], 1),
                predicted_breaches=breaches[sid],
                active_pickers=pickers_at[sid],
                idle_riders=idle_at[sid],
                busy_riders=busy_at[sid],
                low_stock=low,
                stock_outs=outs,
                sold_out_today=sold_out_today,
                stockout_risk=risk.get(sid, 0),
                risk=sla.store_risk(load),
            )
        )
    return OpsSnapshot(
        at=now,
        clock_speed=clock_speed,
        city=await _city(session, city_id, store_ids, now, list(flash_queues), redis),
        stores=store_rows,
        orders=orders,
        riders=riders,
        pickers=pickers,
        alerts=await alert_store.open_alerts(session, city_id=city_id),
    )


async def _city(
    session: AsyncSession,
    city_id: str,
    stores: list[str],
    now: datetime,
    flash_queues: list[FlashQueueOps],
    redis: aioredis.Redis | None,
) -> CityOps:
    series = [0] * SERIES_MINUTES
    for ago, n in await _exec(
        session, _PER_MINUTE, stores=stores, now=now, since=now - timedelta(minutes=SERIES_MINUTES)
    ):
        if 0 <= ago < SERIES_MINUTES:
            series[SERIES_MINUTES - 1 - ago] = int(n)
    midnight = ist_midnight(now)
    ((delivered, in10, in15, p50, p90),) = await _exec(
        session, _DELIVERED, stores=stores, midnight=midnight, now=now
    )
    cancelled = await _exec(session, _CANCELLED, stores=stores, midnight=midnight, now=now)
    zone = await _exec(session, _TIMEZONE, city=city_id)
    asked, refused = (0, 0) if redis is None else await asks_today(redis, store_ids=stores, now=now)
    return CityOps(
        city_id=city_id,
        timezone=zone[0][0] if zone else None,
        orders_last_minute=series[-1],
        orders_per_minute=series,
        delivered_today=int(delivered),
        within_10_share=round(in10 / delivered, 4) if delivered else None,
        within_15_share=round(in15 / delivered, 4) if delivered else None,
        p50_door_s=round(float(p50), 1) if p50 is not None else None,
        p90_door_s=round(float(p90), 1) if p90 is not None else None,
        asks_today=asked,
        refused_share=round(refused / asked, 4) if asked else None,
        cancellations_by_reason={reason: int(n) for reason, n in cancelled},
        flash_queues=flash_queues,
    )


# --- changes ------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)

# Fields that tick with the clock are not what makes a change: an order's age is left
# out (clients count it from ``placed_at``), the others are compared in coarse steps, so
# a quiet city sends nothing.
_IGNORED = frozenset({"age_s"})
_COARSE = {"oldest_wait_s": 15.0, "idle_s": 60.0}


def _fingerprint(model: BaseModel) -> tuple[Any, ...]:
    values = []
    for name, value in model:
        if name in _IGNORED:
            continue
        step = _COARSE.get(name)
        values.append(int(value // step) if step is not None and value is not None else value)
    return tuple(values)


def _diff(old: list[M], new: list[M], key: Callable[[M], Any]) -> tuple[list[M], list[Any]]:
    before = {key(m): _fingerprint(m) for m in old}
    now_ids = {key(m) for m in new}
    upserts = [m for m in new if before.get(key(m)) != _fingerprint(m)]
    removed = [k for k in before if k not in now_ids]
    return upserts, removed


def changes_between(old: OpsSnapshot, new: OpsSnapshot) -> OpsChanges | None:
    """What a client holding ``old`` needs to reach ``new``; None when nothing changed."""
    stores, _ = _diff(old.stores, new.stores, lambda s: s.store_id)
    orders, removed_orders = _diff(old.orders, new.orders, lambda o: o.order_id)
    riders, removed_riders = _diff(old.riders, new.riders, lambda r: r.rider_id)
    pickers, removed_pickers = _diff(old.pickers, new.pickers, lambda p: p.user_id)
    alerts, removed_alerts = _diff(old.alerts, new.alerts, lambda a: a.alert_id)
    city = new.city if _fingerprint(old.city) != _fingerprint(new.city) else None
    if not any(
        (city, stores, orders, removed_orders, riders, removed_riders, pickers, removed_pickers)
    ) and not (alerts or removed_alerts):
        return None
    return OpsChanges(
        at=new.at,
        city=city,
        stores=stores,
        orders=orders,
        removed_orders=removed_orders,
        riders=riders,
        removed_riders=removed_riders,
        pickers=pickers,
        removed_pickers=removed_pickers,
        alerts=alerts,
        removed_alerts=removed_alerts,
    )
