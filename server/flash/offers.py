"""The flash sales running now at a store, for the catalogue's prices (a read that needs
nothing else of the flash package)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.schemas.flash import FlashOffer


async def live_offers(
    session: AsyncSession, *, store_id: str, now: datetime, sku_ids: list[str] | None = None
) -> dict[str, FlashOffer]:
    """The sales running now at a store, by SKU (the catalogue shows their price)."""
    filters = " AND s.sku_id = ANY(:skus)" if sku_ids is not None else ""
    rows = await session.execute(
        text(f"""
        SELECT s.sku_id, s.sale_id, s.sale_price_paise, s.starts_at, s.ends_at,
               s.per_customer_limit
        FROM flash_sales s JOIN flash_sale_stores fs ON fs.sale_id = s.sale_id
        WHERE fs.store_id = :store AND s.status = 'ACTIVE'
          AND s.starts_at <= :now AND s.ends_at > :now{filters}"""),
        {"store": store_id, "now": now, "skus": sku_ids or []},
    )
    return {
        r.sku_id: FlashOffer(
            sale_id=r.sale_id,
            price_paise=r.sale_price_paise,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            per_customer_limit=r.per_customer_limit,
        )
        for r in rows
    }
