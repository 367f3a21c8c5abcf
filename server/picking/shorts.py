"""Short picks and substitutes: a picker who cannot find a line says how many were found;
the rest is refunded, or replaced under the store's substitution policy."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import emit
from server.identity.models import User
from server.inventory import service as inventory
from server.kit.errors import Conflict, NotFound, Unprocessable
from server.orders import service as orders
from server.orders.models import Order, OrderItem
from server.payments.models import Refund
from server.picking.models import PickTask, SubstitutionOffer
from server.picking.service import TaskLine, require_picking, task_lines
from server.stores.models import DarkStore
from shared.enums import ItemStatus, Movement, OrderStatus
from shared.schemas.orders import SubstitutionOfferPublic
from shared.schemas.picking import SubstituteOption


class ShortOutcome(NamedTuple):
    short_qty: int  # units of the line short in all
    policy: str
    offers: list[SubstituteOption]
    awaiting_until: datetime | None  # policy ask: the customer answers by then


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
    answer_s: int,
) -> ShortOutcome:
    """The shelf had fewer units than the books: record the discrepancy in the ledger
    (the missing units leave the books), refund them, and offer substitutes under the
    store policy: to the picker, or (``ask``) to the customer, who has ``answer_s`` to
    choose (``consent.py``).

    ``found_qty`` names the line's new quantity, not a change: a line already at
    ``found_qty`` and below its ordered quantity is a retry whose answer was lost, so it
    writes nothing and is answered again."""
    require_picking(task, picker)
    lines = {ln.sku_id: ln for ln in await task_lines(session, task.store_id, task.order_id)}
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
        if line.awaiting_until is not None:
            raise Conflict("this line waits on the customer's answer", code="awaiting_customer")
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
    short_qty = line.ordered_qty - found_qty
    if policy == "ask":
        # the customer chooses: on the line's first short, the products in stock for every
        # unit short are offered to them (applied: the offer of that short, if any)
        made = await _offer_to_customer(
            session,
            task=task,
            picker=picker,
            line=line,
            quantity=short_qty,
            options=[o for o in offers if o.available_qty >= short_qty],
            first_short=line.quantity == line.ordered_qty,
            now=now,
            answer_s=answer_s,
        )
        return ShortOutcome(short_qty, policy, offers, made.expires_at if made else None)
    return ShortOutcome(short_qty, policy, offers, None)


async def _offer_to_customer(
    session: AsyncSession,
    *,
    task: PickTask,
    picker: User,
    line: TaskLine,
    quantity: int,
    options: list[SubstituteOption],
    first_short: bool,
    now: datetime,
    answer_s: int,
) -> SubstitutionOffer | None:
    """Policy ``ask``: the line's offer, made on its first short (at most one per line).
    The short's refund is HELD, never paid out, until the answer (or the timeout) says
    how much of it a substitute takes (``consent.py``). The customer's tracking socket
    gets the offer (``order.substitution_offered``). No candidate in stock: no offer, and
    the refund is paid as for any short."""
    key = (task.store_id, task.order_id, line.sku_id)
    made = await session.get(SubstitutionOffer, key)
    if made is not None or not first_short or not options:
        return made if made is not None and made.status == "PENDING" else None
    made = SubstitutionOffer(
        store_id=task.store_id,
        order_id=task.order_id,
        sku_id=line.sku_id,
        quantity=quantity,
        proposed_sku=options[0].sku_id,
        candidates=[
            {
                "sku_id": o.sku_id,
                "name": o.name,
                "pack_size": o.pack_size,
                "price_paise": min(o.price_paise, line.price_paise),
            }
            for o in options
        ],
        picker_id=picker.id,
        created_at=now,
        expires_at=now + timedelta(seconds=answer_s),
    )
    session.add(made)
    await session.flush()
    await session.execute(
        text(
            "UPDATE refunds SET status = 'HELD' WHERE store_id = :s AND order_id = :o "
            "AND sku_id = :k AND status = 'PENDING'"
        ),
        {"s": task.store_id, "o": task.order_id, "k": line.sku_id},
    )
    await emit(
        session,
        topic="order.substitution_offered",
        store_id=task.store_id,
        aggregate_id=str(task.order_id),
        now=now,
        payload={
            "order_id": str(task.order_id),
            "store_id": task.store_id,
            "name": line.name,
            **SubstitutionOfferPublic.model_validate(made).model_dump(mode="json"),
        },
    )
    return made


async def _record_short(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    task: PickTask,
    picker: User,
    line: TaskLine,
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
    require_picking(task, picker)
    lines = {ln.sku_id: ln for ln in await task_lines(session, task.store_id, task.order_id)}
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
    if store.substitution_policy == "ask":
        raise Conflict("the customer chooses the substitute", code="customer_decides")
    short_units = original.ordered_qty - original.quantity
    if quantity > short_units:
        raise Unprocessable(f"at most {short_units} units are short", code="invalid_quantity")
    await place_substitute(
        session,
        redis,
        task=task,
        original=original,
        substitute_sku=substitute_sku,
        quantity=quantity,
        now=now,
        actor_id=picker.id,
    )


async def place_substitute(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    task: PickTask,
    original: TaskLine,
    substitute_sku: str,
    quantity: int,
    now: datetime,
    actor_id: uuid.UUID | None,
) -> None:
    """Put ``quantity`` of ``substitute_sku`` in the order in place of the short line:
    the units are held and committed through the engine (a refusal, 409
    ``insufficient_stock``, rolls the caller's transaction back), priced at no more than
    the original, and the line's unpaid refunds shrink by what the substitute costs."""
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
        actor_id=actor_id,
    )
    await inventory.settle_hold(
        session,
        redis,
        store_id=task.store_id,
        holder=holder,
        outcome="COMMITTED",
        now=now,
        actor_id=actor_id,
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
        {"sub": substitute_sku, "s": task.store_id, "o": task.order_id, "k": original.sku_id},
    )
    # the line's refunds (one per short report) not yet paid out shrink by what the
    # substitute costs
    credit = quantity * unit
    refunds = await session.exec(
        select(Refund)
        .where(
            Refund.store_id == task.store_id,
            Refund.order_id == task.order_id,
            Refund.sku_id == original.sku_id,
            col(Refund.status).in_(("PENDING", "HELD")),
        )
        .order_by(col(Refund.created_at))
    )
    for refund in refunds:
        taken = min(credit, refund.amount_paise)
        refund.amount_paise -= taken
        credit -= taken
        session.add(refund)
    await session.flush()
