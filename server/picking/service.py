"""Picking: a confirmed order becomes a task in its store's queue (by SLA deadline); a
picker claims the next one, walks an S-shaped path, scans every unit (a wrong item is
refused), reports shorts (with substitutes: ``shorts.py``), and packs.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scanners.resolve import item_barcode
from server.events.service import Event, dispatch, emit, outbox_insert
from server.identity.models import User
from server.kit import db
from server.kit.cache import TTLCache
from server.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from server.orders import service as orders
from server.orders.models import Order
from server.picking.models import PickScan, PickTask
from server.picking.walk import (
    PickFeatures,
    PickTimeModel,
    calibrate,
    sort_pick_lines,
)
from server.stores.service import authorize_store
from shared.enums import OrderStatus, Role
from shared.schemas.picking import PickLinePublic, PickList


class WrongItem(Conflict):
    code, title = "wrong_item", "That is not an item of this order"


class OverPick(Conflict):
    code, title = "over_pick", "This line is already complete"


_models: TTLCache[PickTimeModel] = TTLCache(300)
PICK_MIN_SAMPLES = 20  # recorded picks before a model is fitted to them


async def pick_time_model(session: AsyncSession, *, store_id: str) -> PickTimeModel:
    """The store's pick-time model, calibrated from its recorded pick durations once there
    are enough of them; until then from its city's (the seed lays every store out alike: a
    new store, or every store after a cold start, learns from the first picks anywhere in
    the city); the default model while the city has too few too. Refreshed every 5
    minutes."""

    async def load() -> PickTimeModel:
        rows = await session.execute(
            text("""
            SELECT t.store_id = :s, t.bin_steps, t.aisle_changes, t.units, t.duration_s
            FROM pick_tasks t JOIN dark_stores d ON d.store_id = t.store_id
            WHERE d.city_id = (SELECT city_id FROM dark_stores WHERE store_id = :s)
              AND t.status = 'PACKED' AND t.duration_s IS NOT NULL
            ORDER BY t.store_id = :s DESC, t.packed_at DESC LIMIT 500"""),
            {"s": store_id},
        )
        samples = [(mine, (PickFeatures(r[0], r[1], r[2]), r[3])) for mine, *r in rows]
        own = [sample for mine, sample in samples if mine]
        chosen = own if len(own) >= PICK_MIN_SAMPLES else [s for _, s in samples]
        return calibrate(chosen, min_samples=PICK_MIN_SAMPLES)

    return await _models.get_or_load(store_id, load)


# the order's lines along the walk (``walk.pick_features`` in SQL: lines by walk position
# then SKU, bytewise as Python sorts; an unbinned line at the path's start, aisle ''),
# the task with the model's estimate, and its event: one statement, no read first
_QUEUED = text(
    """
    WITH line AS (
      SELECT i.sku_id, i.quantity, coalesce(b.aisle, '') AS aisle,
        coalesce(b.walk_seq, 0) AS seq
      FROM order_items i JOIN products p ON p.sku_id = i.sku_id
      LEFT JOIN store_inventory inv ON inv.store_id = i.store_id AND inv.sku_id = i.sku_id
      LEFT JOIN store_bins b ON b.store_id = inv.store_id AND b.bin_code = inv.bin_code
      WHERE i.store_id = :store AND i.order_id = :order),
    walked AS (
      SELECT seq, quantity,
        row_number() OVER w > 1 AND aisle <> lag(aisle) OVER w AS changed
      FROM line WINDOW w AS (ORDER BY seq, sku_id COLLATE "C")),
    features AS (
      SELECT count(*) AS lines, coalesce(max(seq), 0) AS steps,
        count(*) FILTER (WHERE changed) AS changes, coalesce(sum(quantity), 0) AS units
      FROM walked),
    task AS (
      INSERT INTO pick_tasks (store_id, order_id, status, sla_deadline, estimate_s,
        bin_steps, aisle_changes, units, created_at)
      SELECT :store, :order, 'WAITING', :sla,
        CASE WHEN lines > 0 THEN CAST(:base_s AS float8) + CAST(:per_step AS float8) * steps
          + CAST(:per_change AS float8) * changes + CAST(:per_unit AS float8) * units
        ELSE 0 END,
        steps, changes, units, :now
      FROM features
      RETURNING order_id, estimate_s, units),
    counted AS (
      SELECT task.*, features.lines FROM task, features)"""
    + outbox_insert(
        "counted",
        merged="jsonb_build_object('estimate_s', counted.estimate_s, 'lines', counted.lines, "
        "'units', counted.units)",
    )
)


async def enqueue(session: AsyncSession, *, order: Order, now: datetime) -> None:
    """A confirmed order joins its store's pick queue (called in the confirming tx): the
    task, its estimate from the order's lines along the walk and its event (pushed to the
    store's pickers, ``/ws/picker``, by the outbox relay) in one statement."""
    model = await pick_time_model(session, store_id=order.store_id)
    payload = {
        "order_id": str(order.order_id),
        "store_id": order.store_id,
        "status": "WAITING",
        "sla_deadline": order.sla_deadline.isoformat() if order.sla_deadline else None,
    }
    written = await db.execute(
        session,
        _QUEUED,
        {
            "store": order.store_id,
            "order": order.order_id,
            "sla": order.sla_deadline,
            "base_s": model.base_s,
            "per_step": model.walk_s_per_bin_step,
            "per_change": model.s_per_aisle_change,
            "per_unit": model.s_per_unit,
            "now": now,
            "topic": "picking.queued",
            "aggregate": str(order.order_id),
            "payload": json.dumps(payload),
        },
    )
    queued = await written.fetchone()
    assert queued is not None  # the task's outbox row
    await dispatch(
        session,
        Event("picking.queued", queued[0], now, order.store_id, str(order.order_id)),
    )


async def queue(session: AsyncSession, *, store_id: str, picker: User) -> list[tuple]:
    await authorize_store(session, store_id=store_id, user=picker)
    rows = await session.execute(
        text("""
        SELECT t.order_id, t.status, t.sla_deadline, count(i.sku_id), coalesce(sum(i.quantity), 0)
        FROM pick_tasks t JOIN order_items i ON i.store_id = t.store_id AND i.order_id = t.order_id
        WHERE t.store_id = :store AND t.status IN ('WAITING', 'PICKING')
        GROUP BY t.order_id, t.status, t.sla_deadline
        ORDER BY t.sla_deadline"""),
        {"store": store_id},
    )
    return list(rows)


async def claim_next(session: AsyncSession, *, picker: User, now: datetime) -> PickTask:
    """The waiting task with the earliest SLA deadline; never the same one for two pickers
    (``FOR UPDATE SKIP LOCKED``). A picker with an unfinished task gets that one back."""
    if picker.store_id is None:
        raise Unprocessable("this user is not assigned to a store", code="no_store")
    mine = (
        await session.exec(
            select(PickTask).where(
                PickTask.store_id == picker.store_id,
                PickTask.picker_id == picker.id,
                PickTask.status == "PICKING",
            )
        )
    ).first()
    if mine is not None:
        return mine
    task = (
        await session.exec(
            select(PickTask)
            .where(PickTask.store_id == picker.store_id, PickTask.status == "WAITING")
            .order_by(col(PickTask.sla_deadline))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if task is None:
        raise NotFound("no order is waiting to be picked", code="queue_empty")
    order = await session.get(Order, (task.store_id, task.order_id), with_for_update=True)
    assert order is not None
    task.status, task.picker_id, task.claimed_at = "PICKING", picker.id, now
    session.add(task)
    await orders.transition(
        session, order=order, to=OrderStatus.PICKING, now=now, actor_id=picker.id
    )
    # rider pre-assignment starts now, while the bag is being picked
    await emit(
        session,
        topic="picking.started",
        store_id=task.store_id,
        aggregate_id=str(task.order_id),
        now=now,
        payload={
            "order_id": str(task.order_id),
            "store_id": task.store_id,
            "status": "PICKING",
            "picker_id": str(picker.id),
            "estimate_s": task.estimate_s,
        },
    )
    return task


async def get_task(
    session: AsyncSession, *, order_id: uuid.UUID, picker: User, for_update: bool = False
) -> PickTask:
    task = (
        await session.exec(
            select(PickTask).where(PickTask.order_id == order_id).with_for_update()
            if for_update
            else select(PickTask).where(PickTask.order_id == order_id)
        )
    ).first()
    if task is None:
        raise NotFound("no such pick task", code="task_not_found")
    await authorize_store(session, store_id=task.store_id, user=picker)
    return task


def require_picking(task: PickTask, picker: User) -> None:
    if task.status != "PICKING":
        raise Conflict(f"the task is {task.status}", code="task_not_picking")
    if picker.role == Role.PICKER and task.picker_id != picker.id:
        raise Forbidden("another picker has this task", code="not_your_task")


class TaskLine:
    def __init__(self, row: tuple) -> None:
        (
            self.sku_id,
            self.name,
            self.pack_size,
            self.barcode,
            self.quantity,
            self.ordered_qty,
            self.picked_qty,
            self.status,
            self.bin_code,
            self.aisle,
            self.walk_seq,
            self.substitute_sku,
            self.category_id,
            self.price_paise,
            self.awaiting_until,  # a substitution offer waits on the customer until then
        ) = row

    # the walk module's PickLineLike view of a line
    @property
    def sku(self) -> str:
        return self.sku_id

    @property
    def qty(self) -> int:
        return self.quantity


_TASK_LINES = text("""
        SELECT i.sku_id, p.name, p.pack_size, p.barcode, i.quantity, i.ordered_qty,
               i.picked_qty, i.status,
               inv.bin_code, b.aisle, b.walk_seq, i.substitute_sku, p.category_id,
               i.unit_price_paise, o.expires_at
        FROM order_items i JOIN products p ON p.sku_id = i.sku_id
        LEFT JOIN store_inventory inv ON inv.store_id = i.store_id AND inv.sku_id = i.sku_id
        LEFT JOIN store_bins b ON b.store_id = inv.store_id AND b.bin_code = inv.bin_code
        LEFT JOIN substitution_offers o ON o.store_id = i.store_id AND o.order_id = i.order_id
             AND o.sku_id = i.sku_id AND o.status = 'PENDING'
        WHERE i.store_id = :store AND i.order_id = :order""")


async def task_lines(
    session: AsyncSession, store_id: str, order_id: uuid.UUID, *, walk_order: bool = True
) -> list[TaskLine]:
    """The order's lines along the S-shaped walk, or (``walk_order`` off, the
    ``QC_PICK_WALK_ORDER`` lever) by bin code as an aisle-by-aisle list would have them."""
    rows = await db.execute(
        session,
        _TASK_LINES,
        {"store": store_id, "order": order_id},
    )
    lines = [TaskLine(tuple(r)) for r in await rows.fetchall()]
    if not walk_order:
        return sorted(lines, key=lambda ln: (ln.bin_code or "", ln.sku_id))
    return sort_pick_lines(lines, key=lambda ln: ln.walk_seq or 0)


async def pick_list(session: AsyncSession, *, task: PickTask, walk_order: bool = True) -> PickList:
    lines = await task_lines(session, task.store_id, task.order_id, walk_order=walk_order)
    return PickList(
        order_id=task.order_id,
        store_id=task.store_id,
        status=task.status,
        picker_id=task.picker_id,
        sla_deadline=task.sla_deadline,
        estimate_s=task.estimate_s,
        claimed_at=task.claimed_at,
        lines=[
            PickLinePublic(
                sku_id=ln.sku_id,
                name=ln.name,
                pack_size=ln.pack_size,
                barcode=ln.barcode,
                quantity=ln.quantity,
                ordered_qty=ln.ordered_qty,
                picked_qty=ln.picked_qty,
                status=ln.status,
                bin_code=ln.bin_code,
                aisle=ln.aisle,
                walk_seq=ln.walk_seq,
                substitute_sku=ln.substitute_sku,
                awaiting_customer_until=ln.awaiting_until,
            )
            for ln in lines
        ],
    )


@dataclass(slots=True)
class ScanLine:
    """What a scan needs of a line: which product it is and how many are picked."""

    sku_id: str
    name: str
    barcode: str
    quantity: int
    picked_qty: int


async def _scan_lines(session: AsyncSession, task: PickTask) -> list[ScanLine]:
    """The task's lines as a scan counts them: a scan comes for every unit, so it reads two
    tables, not the pick list's five (bins, stock and offers are read for a refusal only)."""
    rows = await session.execute(
        text("""
        SELECT i.sku_id, p.name, p.barcode, i.quantity, i.picked_qty
        FROM order_items i JOIN products p ON p.sku_id = i.sku_id
        WHERE i.store_id = :store AND i.order_id = :order"""),
        {"store": task.store_id, "order": task.order_id},
    )
    return [ScanLine(*r) for r in rows]


# the scan recorded and its unit counted in one statement (a scan comes for every unit)
_COUNTED = text("""
    WITH scanned AS (
        INSERT INTO pick_scans (store_id, scan_id, order_id, sku_id, code, accepted, at)
        VALUES (:s, :scan, :o, :k, :code, true, :at))
    UPDATE order_items SET picked_qty = picked_qty + 1
    WHERE store_id = :s AND order_id = :o AND sku_id = :k""")


async def scan(
    session: AsyncSession, *, task: PickTask, picker: User, scan_id: str, code: str, now: datetime
) -> tuple[ScanLine, bool, bool]:
    """Count one scanned unit against the right line; returns (line, order complete,
    replayed). Wrong items and over-picks are refused and count nothing."""
    require_picking(task, picker)
    seen = await session.get(PickScan, (task.store_id, scan_id))
    lines = await _scan_lines(session, task)
    if seen is not None:
        line = next((ln for ln in lines if ln.sku_id == seen.sku_id), None)
        if seen.order_id != task.order_id or line is None:
            raise Conflict("this scan_id was used for another order", code="scan_id_reused")
        return line, all(ln.picked_qty >= ln.quantity for ln in lines), True
    barcode = item_barcode(code)
    line = next((ln for ln in lines if ln.barcode == barcode), None)
    if line is None:
        walk = await task_lines(session, task.store_id, task.order_id)
        expected = next((ln for ln in walk if ln.picked_qty < ln.quantity), None)
        raise WrongItem(
            f"{code} is not in this order"
            + (f"; next is {expected.name} at {expected.bin_code}" if expected else ""),
            scanned=code,
            expected_sku=expected.sku_id if expected else None,
            expected_barcode=expected.barcode if expected else None,
        )
    if line.picked_qty >= line.quantity:
        raise OverPick(f"all {line.quantity} of {line.name} are already picked", sku_id=line.sku_id)
    await session.execute(
        _COUNTED,
        {
            "s": task.store_id,
            "scan": scan_id,
            "o": task.order_id,
            "k": line.sku_id,
            "code": code,
            "at": now,
        },
    )
    line.picked_qty += 1
    return line, all(ln.picked_qty >= ln.quantity for ln in lines), False


async def pack(
    session: AsyncSession, *, task: PickTask, picker: User, bag_count: int, now: datetime
) -> PickTask:
    if task.status == "PACKED" and task.picker_id == picker.id:
        return task  # a retried pack (the answer was lost) gets the same bag label
    require_picking(task, picker)
    lines = await task_lines(session, task.store_id, task.order_id)
    waiting = [ln.sku_id for ln in lines if ln.awaiting_until is not None]
    if waiting:
        raise Conflict(
            "the customer has not answered about: " + ", ".join(waiting),
            code="awaiting_customer",
            lines=waiting,
        )
    missing = [ln.sku_id for ln in lines if ln.picked_qty < ln.quantity]
    if missing:
        raise Conflict(
            "some lines are not picked yet: " + ", ".join(missing),
            code="pick_incomplete",
            lines=missing,
        )
    order = await session.get(Order, (task.store_id, task.order_id), with_for_update=True)
    assert order is not None
    await session.execute(
        text(
            "UPDATE order_items SET status = CASE WHEN substitute_sku IS NOT NULL THEN 'SUBSTITUTED' "
            "WHEN quantity = 0 THEN 'CANCELLED' ELSE 'FULFILLED' END "
            "WHERE store_id = :s AND order_id = :o"
        ),
        {"s": task.store_id, "o": task.order_id},
    )
    task.status, task.packed_at, task.bag_count = "PACKED", now, bag_count
    task.duration_s = (now - task.claimed_at).total_seconds() if task.claimed_at else None
    task.bag_label = f"QC-{task.store_id.split('-')[-1]}-{secrets.token_hex(3).upper()}"
    session.add(task)
    await orders.transition(
        session, order=order, to=OrderStatus.PACKED, now=now, actor_id=picker.id
    )
    return task
