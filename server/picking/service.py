"""Picking: a confirmed order becomes a task in its store's queue (by SLA deadline); a
picker claims the next one, walks an S-shaped path, scans every unit (a wrong item is
refused), reports shorts (with substitutes), and packs.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from scanners.resolve import item_barcode
from server.events.service import emit
from server.identity.models import User
from server.inventory import service as inventory
from server.kit.cache import TTLCache
from server.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from server.orders import service as orders
from server.orders.models import Order, OrderItem
from server.payments.models import Refund
from server.picking.models import PickScan, PickTask
from server.picking.walk import (
    PickFeatures,
    PickLine,
    PickTimeModel,
    calibrate,
    pick_features,
    sort_pick_lines,
)
from server.stores.models import DarkStore
from server.stores.service import authorize_store
from shared.enums import ItemStatus, Movement, OrderStatus, Role
from shared.schemas.picking import PickLinePublic, PickList, SubstituteOption


class WrongItem(Conflict):
    code, title = "wrong_item", "That is not an item of this order"


class OverPick(Conflict):
    code, title = "over_pick", "This line is already complete"


_models: TTLCache[PickTimeModel] = TTLCache(300)


async def pick_time_model(session: AsyncSession, *, store_id: str) -> PickTimeModel:
    """The store's pick-time model, calibrated from its recorded pick durations once there
    are enough of them (the default model until then); refreshed every 5 minutes."""

    async def load() -> PickTimeModel:
        rows = await session.execute(
            text("""
            SELECT bin_steps, aisle_changes, units, duration_s FROM pick_tasks
            WHERE store_id = :s AND status = 'PACKED' AND duration_s IS NOT NULL
            ORDER BY packed_at DESC LIMIT 500"""),
            {"s": store_id},
        )
        return calibrate([(PickFeatures(r[0], r[1], r[2]), r[3]) for r in rows])

    return await _models.get_or_load(store_id, load)


async def enqueue(session: AsyncSession, *, order: Order, now: datetime) -> PickTask:
    """A confirmed order joins its store's pick queue (called in the confirming tx)."""
    lines = await _lines(session, order.store_id, order.order_id)
    features = pick_features(
        [PickLine(r.sku_id, r.quantity, r.aisle or "", r.walk_seq or 0) for r in lines]
    )
    model = await pick_time_model(session, store_id=order.store_id)
    task = PickTask(
        store_id=order.store_id,
        order_id=order.order_id,
        sla_deadline=order.sla_deadline,
        created_at=now,
        estimate_s=model.features_s(features) if lines else 0.0,
        bin_steps=features.bin_steps,
        aisle_changes=features.aisle_changes,
        units=features.units,
    )
    session.add(task)
    return task


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


def _require_picking(task: PickTask, picker: User) -> None:
    if task.status != "PICKING":
        raise Conflict(f"the task is {task.status}", code="task_not_picking")
    if picker.role == Role.PICKER and task.picker_id != picker.id:
        raise Forbidden("another picker has this task", code="not_your_task")


class _Line:
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
        ) = row

    # the walk module's PickLineLike view of a line
    @property
    def sku(self) -> str:
        return self.sku_id

    @property
    def qty(self) -> int:
        return self.quantity


async def _lines(session: AsyncSession, store_id: str, order_id: uuid.UUID) -> list[_Line]:
    rows = await session.execute(
        text("""
        SELECT i.sku_id, p.name, p.pack_size, p.barcode, i.quantity, i.ordered_qty,
               i.picked_qty, i.status,
               inv.bin_code, b.aisle, b.walk_seq, i.substitute_sku, p.category_id,
               i.unit_price_paise
        FROM order_items i JOIN products p ON p.sku_id = i.sku_id
        LEFT JOIN store_inventory inv ON inv.store_id = i.store_id AND inv.sku_id = i.sku_id
        LEFT JOIN store_bins b ON b.store_id = inv.store_id AND b.bin_code = inv.bin_code
        WHERE i.store_id = :store AND i.order_id = :order"""),
        {"store": store_id, "order": order_id},
    )
    lines = [_Line(tuple(r)) for r in rows]
    return sort_pick_lines(lines, key=lambda ln: ln.walk_seq or 0)


async def pick_list(session: AsyncSession, *, task: PickTask) -> PickList:
    lines = await _lines(session, task.store_id, task.order_id)
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
            )
            for ln in lines
        ],
    )


async def scan(
    session: AsyncSession, *, task: PickTask, picker: User, scan_id: str, code: str, now: datetime
) -> tuple[_Line, bool, bool]:
    """Count one scanned unit against the right line; returns (line, order complete,
    replayed). Wrong items and over-picks are refused and count nothing."""
    _require_picking(task, picker)
    seen = await session.get(PickScan, (task.store_id, scan_id))
    lines = await _lines(session, task.store_id, task.order_id)
    if seen is not None:
        line = next((ln for ln in lines if ln.sku_id == seen.sku_id), None)
        if seen.order_id != task.order_id or line is None:
            raise Conflict("this scan_id was used for another order", code="scan_id_reused")
        return line, all(ln.picked_qty >= ln.quantity for ln in lines), True
    barcode = item_barcode(code)
    line = next((ln for ln in lines if ln.barcode == barcode), None)
    if line is None:
        expected = next((ln for ln in lines if ln.picked_qty < ln.quantity), None)
        raise WrongItem(
            f"{code} is not in this order"
            + (f"; next is {expected.name} at {expected.bin_code}" if expected else ""),
            scanned=code,
            expected_sku=expected.sku_id if expected else None,
            expected_barcode=expected.barcode if expected else None,
        )
    if line.picked_qty >= line.quantity:
        raise OverPick(f"all {line.quantity} of {line.name} are already picked", sku_id=line.sku_id)
    session.add(
        PickScan(
            store_id=task.store_id,
            scan_id=scan_id,
            order_id=task.order_id,
            sku_id=line.sku_id,
            code=code,
            accepted=True,
            at=now,
        )
    )
    await session.execute(
        text(
            "UPDATE order_items SET picked_qty = picked_qty + 1 WHERE store_id = :s "
            "AND order_id = :o AND sku_id = :k"
        ),
        {"s": task.store_id, "o": task.order_id, "k": line.sku_id},
    )
    line.picked_qty += 1
    return line, all(ln.picked_qty >= ln.quantity for ln in lines), False


async def substitutes(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    sku_id: str,
    limit: int = 3,
    exclude: frozenset[str] = frozenset(),
) -> list[SubstituteOption]:
    """Same category, similar size and price, in stock: nearest by relative difference."""
    rows = list(
        await session.execute(
            text("""
        SELECT c.sku_id, c.name, c.pack_size, sp.selling_price_paise
        FROM products o JOIN products c ON c.category_id = o.category_id AND c.sku_id <> o.sku_id
        JOIN store_prices sp ON sp.store_id = :store AND sp.sku_id = c.sku_id
        JOIN store_prices op ON op.store_id = :store AND op.sku_id = o.sku_id
        JOIN store_inventory i ON i.store_id = :store AND i.sku_id = c.sku_id
        WHERE o.sku_id = :sku AND c.is_active AND i.available_qty > 0
        ORDER BY abs(c.weight_grams - o.weight_grams)::float / greatest(o.weight_grams, 1)
               + abs(sp.selling_price_paise - op.selling_price_paise)::float
                 / greatest(op.selling_price_paise, 1)
        LIMIT :n"""),
            {"store": store_id, "sku": sku_id, "n": limit * 3},
        )
    )
    live = await inventory.engine.read_buckets(
        redis, store_id=store_id, sku_ids=[r[0] for r in rows]
    )
    return [
        SubstituteOption(
            sku_id=r[0],
            name=r[1],
            pack_size=r[2],
            price_paise=r[3],
            available_qty=buckets.available,
        )
        for r in rows
        if r[0] not in exclude and (buckets := live.get(r[0])) and buckets.available > 0
    ][:limit]


async def short_pick(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    task: PickTask,
    picker: User,
    sku_id: str,
    found_qty: int,
    reason: str,
    now: datetime,
) -> tuple[int, str, list[SubstituteOption]]:
    """The shelf had fewer units than the books: record the discrepancy in the ledger
    (the missing units leave the books), refund them, and offer substitutes under the
    store policy. Answers (units of the line short in all, policy, offers).

    ``found_qty`` names the line's new quantity, not a change: a line already at
    ``found_qty`` and below its ordered quantity is a retry whose answer was lost, so it
    writes nothing and is answered again."""
    _require_picking(task, picker)
    lines = {ln.sku_id: ln for ln in await _lines(session, task.store_id, task.order_id)}
    line = lines.get(sku_id)
    if line is None:
        raise NotFound(f"{sku_id} is not in this order", code="line_not_found")
    applied = found_qty == line.quantity < line.ordered_qty
    if not applied:
        if found_qty < line.picked_qty or found_qty >= line.quantity:
            raise Unprocessable(
                f"found_qty must be from {line.picked_qty} to {line.quantity - 1}",
                code="invalid_quantity",
            )
        await _record_short(
            session,
            redis,
            task=task,
            picker=picker,
            line=line,
            found_qty=found_qty,
            reason=reason,
            now=now,
        )
    store = await session.get(DarkStore, task.store_id)
    policy = store.substitution_policy if store else "never"
    offers = (
        []
        if policy == "never"
        else await substitutes(
            session, redis, store_id=task.store_id, sku_id=sku_id, exclude=frozenset(lines)
        )
    )
    return line.ordered_qty - found_qty, policy, offers


async def _record_short(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    task: PickTask,
    picker: User,
    line: _Line,
    found_qty: int,
    reason: str,
    now: datetime,
) -> None:
    """One short report: the ledger entry, the line's new quantity, the refund for the
    units this report found missing, and PARTIALLY_FULFILLED on the first short."""
    short = line.quantity - found_qty
    # the books said these units were on the shelf; they are not (ledger: SHORT_PICK /
    # DAMAGE). The shelf may still hold more of the SKU elsewhere: a cycle count settles it.
    await inventory.move_stock(
        session,
        redis,
        store_id=task.store_id,
        sku_id=line.sku_id,
        movement=Movement.SHORT_PICK,
        now=now,
        d_available=0,
        reference=str(task.order_id),
        actor_id=picker.id,
        reason=f"short pick: {short} {reason}",
    )
    await session.execute(
        text(
            "UPDATE order_items SET quantity = :found, status = :st WHERE store_id = :s "
            "AND order_id = :o AND sku_id = :k"
        ),
        {
            "found": found_qty,
            "st": ItemStatus.CANCELLED.value if found_qty == 0 else ItemStatus.PENDING.value,
            "s": task.store_id,
            "o": task.order_id,
            "k": line.sku_id,
        },
    )
    session.add(
        Refund(
            store_id=task.store_id,
            order_id=task.order_id,
            sku_id=line.sku_id,
            amount_paise=short * line.price_paise,
            reason=f"short pick ({reason})",
            created_at=now,
        )
    )
    order = await session.get(Order, (task.store_id, task.order_id), with_for_update=True)
    assert order is not None
    if order.status == OrderStatus.PICKING:
        await orders.transition(
            session,
            order=order,
            to=OrderStatus.PARTIALLY_FULFILLED,
            now=now,
            actor_id=picker.id,
            reason=f"short: {line.sku_id}",
        )


async def substitute(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    task: PickTask,
    picker: User,
    sku_id: str,
    substitute_sku: str,
    quantity: int,
    now: datetime,
) -> None:
    """Fill a short line with another product: its units are taken from stock at once
    (held and committed through the engine), at no more than the original price, and the
    short line's refund shrinks accordingly. The picker then scans it like any line.

    The same substitute already in place for the line (same SKU, same quantity put in)
    is a retry whose answer was lost: nothing is written again."""
    _require_picking(task, picker)
    lines = {ln.sku_id: ln for ln in await _lines(session, task.store_id, task.order_id)}
    original = lines.get(sku_id)
    if original is None:
        raise NotFound(f"{sku_id} is not in this order", code="line_not_found")
    placed = lines.get(substitute_sku)
    if original.substitute_sku == substitute_sku and placed and placed.ordered_qty == quantity:
        return
    if original.substitute_sku or placed is not None:
        raise Conflict("this line already has a substitute", code="already_substituted")
    offered = {
        o.sku_id
        for o in await substitutes(
            session,
            redis,
            store_id=task.store_id,
            sku_id=sku_id,
            limit=10,
            exclude=frozenset(lines),
        )
    }
    if substitute_sku not in offered:
        raise Unprocessable(
            f"{substitute_sku} is not a suitable substitute in stock", code="not_a_substitute"
        )
    store = await session.get(DarkStore, task.store_id)
    if store is None or store.substitution_policy == "never":
        raise Conflict("this store does not substitute", code="substitution_not_allowed")
    short_units = original.ordered_qty - original.quantity
    if quantity > short_units:
        raise Unprocessable(f"at most {short_units} units are short", code="invalid_quantity")
    holder = f"sub:{task.order_id}:{substitute_sku}"
    await inventory.reserve_lines(
        session,
        redis,
        store_id=task.store_id,
        holder=holder,
        lines={substitute_sku: quantity},
        now=now,
        hold_s=60,
        mode="HARD",
        actor_id=picker.id,
    )
    await inventory.settle_hold(
        session,
        redis,
        store_id=task.store_id,
        holder=holder,
        outcome="COMMITTED",
        now=now,
        actor_id=picker.id,
    )
    price = (
        await session.execute(
            text(
                "SELECT selling_price_paise, p.mrp_paise FROM store_prices sp JOIN products p "
                "ON p.sku_id = sp.sku_id WHERE sp.store_id = :s AND sp.sku_id = :k"
            ),
            {"s": task.store_id, "k": substitute_sku},
        )
    ).one()
    unit = min(price[0], original.price_paise)
    session.add(
        OrderItem(
            store_id=task.store_id,
            order_id=task.order_id,
            sku_id=substitute_sku,
            quantity=quantity,
            ordered_qty=quantity,
            unit_price_paise=unit,
            mrp_paise=price[1],
        )
    )
    await session.execute(
        text(
            "UPDATE order_items SET substitute_sku = :sub WHERE store_id = :s AND order_id = :o "
            "AND sku_id = :k"
        ),
        {"sub": substitute_sku, "s": task.store_id, "o": task.order_id, "k": sku_id},
    )
    # the line's refunds (one per short report) shrink by what the substitute costs
    credit = quantity * unit
    refunds = await session.exec(
        select(Refund)
        .where(
            Refund.store_id == task.store_id,
            Refund.order_id == task.order_id,
            Refund.sku_id == sku_id,
        )
        .order_by(col(Refund.created_at))
    )
    for refund in refunds:
        taken = min(credit, refund.amount_paise)
        refund.amount_paise -= taken
        credit -= taken
        session.add(refund)
    await session.flush()


async def pack(
    session: AsyncSession, *, task: PickTask, picker: User, bag_count: int, now: datetime
) -> PickTask:
    if task.status == "PACKED" and task.picker_id == picker.id:
        return task  # a retried pack (the answer was lost) gets the same bag label
    _require_picking(task, picker)
    lines = await _lines(session, task.store_id, task.order_id)
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
