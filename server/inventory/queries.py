"""Typed reads of live holds, for the domains that sell from them.

A soft hold's truth while it lives is Redis (the gate; the books get it through the
journal a moment later), so the lines come from the hold's hash and their names and
prices from PostgreSQL's catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory import engine
from server.kit import db, keys


@dataclass(frozen=True)
class HeldLine:
    """One SKU of a live soft hold, priced at the store."""

    sku_id: str
    name: str
    pack_size: str
    quantity: int
    unit_price_paise: int
    mrp_paise: int
    expires_at: datetime


_PRICED = text("""
    SELECT p.sku_id, p.name, p.pack_size, sp.selling_price_paise, p.mrp_paise
    FROM products p
    JOIN store_prices sp ON sp.store_id = :store AND sp.sku_id = p.sku_id
    WHERE p.sku_id = ANY(CAST(:skus AS text[]))
    ORDER BY p.sku_id""")


async def live_hold(
    redis: aioredis.Redis, session: AsyncSession, store_id: str, holder: str
) -> dict[str, str]:
    hold = await engine.read_hold(redis, store_id=store_id, holder=holder)
    if not hold and not await redis.exists(keys.store_ready(store_id)):
        from server.inventory.reconcile import load_store

        bound = session.bind
        assert isinstance(bound, AsyncEngine), "sessions are bound to the engine (kit.db)"
        await load_store(bound, redis, store_id)
        hold = await engine.read_hold(redis, store_id=store_id, holder=holder)
    return hold


async def soft_hold(
    session: AsyncSession, redis: aioredis.Redis, *, store_id: str, holder: str
) -> tuple[dict[str, int], datetime] | None:
    """The holder's live soft hold at the store: its quantities by SKU and its expiry
    (None: it holds nothing)."""
    hold = await live_hold(redis, session, store_id, holder)
    if hold.get("_state") != "SOFT":
        return None
    quantities = {k: int(v) for k, v in hold.items() if not k.startswith("_") and int(v) > 0}
    if not quantities:
        return None
    return quantities, datetime.fromtimestamp(float(hold["_exp"]), UTC)


async def held_lines(
    session: AsyncSession, redis: aioredis.Redis, *, store_id: str, holder: str
) -> list[HeldLine]:
    """The holder's soft-held lines at the store, by SKU, priced from the books."""
    held = await soft_hold(session, redis, store_id=store_id, holder=holder)
    if held is None:
        return []
    return await priced_from_books(session, store_id=store_id, quantities=held[0], expires=held[1])


async def priced_from_books(
    session: AsyncSession, *, store_id: str, quantities: dict[str, int], expires: datetime
) -> list[HeldLine]:
    """Held quantities named and priced from PostgreSQL, by SKU."""
    # on the session's connection, past SQLAlchemy (a cart view or checkout may read it)
    rows = await db.execute(session, _PRICED, {"store": store_id, "skus": sorted(quantities)})
    return [
        HeldLine(
            sku_id=sku,
            name=name,
            pack_size=pack_size,
            quantity=quantities[sku],
            unit_price_paise=price,
            mrp_paise=mrp,
            expires_at=expires,
        )
        for sku, name, pack_size, price, mrp in await rows.fetchall()
    ]


async def had_expired_hold(
    session: AsyncSession, redis: aioredis.Redis, *, store_id: str, holder: str
) -> bool:
    """Whether some hold of the holder ran out (the sweeper expired it): its tombstone
    in Redis, or (after Redis lost it) its rows in the books. Both go in time (a day, the
    retention): a holder older than the retention cannot be answered here."""
    hold = await engine.read_hold(redis, store_id=store_id, holder=holder)
    if hold.get("_state") == "EXPIRED":
        return True
    found = await session.execute(
        text(
            "SELECT 1 FROM inventory_reservations WHERE store_id = :s AND order_id = :h "
            "AND status = 'EXPIRED' LIMIT 1"
        ),
        {"s": store_id, "h": holder},
    )
    return found.first() is not None


async def hold_moved(redis: aioredis.Redis, *, store_id: str, holder: str) -> bool:
    """Whether the holder's hold was moved to an order by a checkout (``reserve.lua``'s
    mark): on a cart still active, that checkout's transaction died after the move, and
    the reconciler puts the hold back from the books."""
    return await redis.hget(keys.hold(store_id, holder), "_state") == "MOVED"
