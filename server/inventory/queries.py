"""Typed reads of the holds recorded in PostgreSQL, for the domains that sell from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession


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


_HELD_LINES = text("""
    SELECT r.sku_id, p.name, p.pack_size, r.quantity, sp.selling_price_paise, p.mrp_paise,
           r.expires_at
    FROM inventory_reservations r
    JOIN products p ON p.sku_id = r.sku_id
    JOIN store_prices sp ON sp.store_id = r.store_id AND sp.sku_id = r.sku_id
    WHERE r.store_id = :store AND r.order_id = :holder AND r.status = 'SOFT'
      AND r.quantity > 0
    ORDER BY r.sku_id""")


async def held_lines(session: AsyncSession, *, store_id: str, holder: str) -> list[HeldLine]:
    """The holder's soft-held lines at the store, by SKU."""
    rows = await session.execute(_HELD_LINES, {"store": store_id, "holder": holder})
    return [
        HeldLine(
            sku_id=r.sku_id,
            name=r.name,
            pack_size=r.pack_size,
            quantity=r.quantity,
            unit_price_paise=r.selling_price_paise,
            mrp_paise=r.mrp_paise,
            expires_at=r.expires_at,
        )
        for r in rows
    ]


async def had_expired_hold(session: AsyncSession, *, store_id: str, holder: str) -> bool:
    """Whether some hold of the holder ran out (the sweeper expired it)."""
    found = await session.execute(
        text(
            "SELECT 1 FROM inventory_reservations WHERE store_id = :s AND order_id = :h "
            "AND status = 'EXPIRED' LIMIT 1"
        ),
        {"s": store_id, "h": holder},
    )
    return found.first() is not None
