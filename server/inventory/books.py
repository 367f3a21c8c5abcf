"""The books' own balance: a stock row's reserved units are the units its open holds (its
SOFT and HARD reservation rows) hold.

Every write keeps the two equal in one transaction, so a row that disagrees was left by
something outside today's code: an older release's bug, a hand edit, a restore. Such a row
strands units, either reserved units no hold will ever release (unsellable until someone
notices) or a hold the books never reserved (its paid order cannot commit its stock). The
reconciler's full pass looks for them (one statement: a single snapshot, in which every
committed state balances) and mends each from its holds, the rows that say who holds what:
the difference moves between reserved and available, with an ``ADJUSTMENT`` in the ledger,
and the reconcile that follows reloads Redis from the mended books. A hold larger than the
reserved and available units together cannot be mended by moving units; it is left and
reported as short (a count of the shelf decides).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit import db

log = logging.getLogger(__name__)

BOOKS_MENDED = Counter(
    "qc_inventory_books_mended_total",
    "Stock rows whose reserved units disagreed with their open holds: mended from the "
    "holds, or short (the holds need more units than the row has)",
    ["store_id", "outcome"],
)
MENDED_REASON = "books: reserved units set to what the open holds hold"

_UNEQUAL_ROWS = """
    SELECT i.sku_id, i.reserved_qty AS reserved, coalesce(h.held, 0) AS held, i.available_qty
    FROM store_inventory i LEFT JOIN (
      SELECT sku_id, sum(quantity) AS held FROM inventory_reservations
      WHERE store_id = :store AND status IN ('SOFT', 'HARD') GROUP BY sku_id) h
      ON h.sku_id = i.sku_id
    WHERE i.store_id = :store AND i.reserved_qty <> coalesce(h.held, 0)"""
_UNBALANCED = text(_UNEQUAL_ROWS + " ORDER BY i.sku_id")
_LOCK_ROWS = text(
    "SELECT sku_id FROM store_inventory WHERE store_id = :store "
    "AND sku_id = ANY(CAST(:skus AS text[])) ORDER BY sku_id FOR UPDATE"
)
# run after _LOCK_ROWS, in a statement of its own: its snapshot then sees every hold
# committed before the rows were had, and no writer changes the units a row's holds hold
# without that row's lock (a hold's move to its order, or SOFT to HARD, keeps the sum).
# Answers the rows still unbalanced as it found them; the mendable ones it mended.
_MEND = text(f"""
    WITH seen AS ({_UNEQUAL_ROWS} AND i.sku_id = ANY(CAST(:skus AS text[]))),
    fix AS (
      SELECT sku_id, reserved - held AS freed FROM seen
      WHERE available_qty + reserved - held >= 0),
    ledger AS (
      INSERT INTO stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
        d_damaged, d_in_transit, reason, created_at)
      SELECT :store, sku_id, 'ADJUSTMENT', freed, -freed, 0, 0, :reason, :now FROM fix),
    mended AS (
      UPDATE store_inventory s SET available_qty = s.available_qty + f.freed,
        reserved_qty = s.reserved_qty - f.freed, version = s.version + 1, last_updated = :now
      FROM fix f WHERE s.store_id = :store AND s.sku_id = f.sku_id)
    SELECT * FROM seen ORDER BY sku_id""")


@dataclass(frozen=True)
class Unbalanced:
    """A stock row whose ``reserved`` units are not the ``held`` units of its open holds."""

    sku_id: str
    reserved: int
    held: int
    available: int

    @property
    def mendable(self) -> bool:
        """Whether moving units between available and reserved balances it."""
        return self.available + self.reserved - self.held >= 0

    def __str__(self) -> str:
        return f"{self.sku_id} reserved {self.reserved}, held {self.held}"


async def unbalanced(session: AsyncSession, *, store_id: str) -> list[Unbalanced]:
    """The store's stock rows whose reserved units differ from their open holds'."""
    found = await db.execute(session, _UNBALANCED, {"store": store_id})
    return [Unbalanced(*row) for row in await found.fetchall()]


async def mend(session: AsyncSession, *, store_id: str, now: datetime) -> list[Unbalanced]:
    """Balance the store's books from its holds (see the module's note); the rows found
    unbalanced, as they stood with their locks had (the ``mendable`` ones are mended).
    Redis still holds the old figures: the caller's reconcile reloads it."""
    found = await unbalanced(session, store_id=store_id)
    if not found:
        return []
    skus = [u.sku_id for u in found]
    await db.execute(session, _LOCK_ROWS, {"store": store_id, "skus": skus})
    mended = await db.execute(
        session, _MEND, {"store": store_id, "skus": skus, "reason": MENDED_REASON, "now": now}
    )
    found = [Unbalanced(*row) for row in await mended.fetchall()]
    for u in found:
        outcome = "mended" if u.mendable else "short"
        BOOKS_MENDED.labels(store_id, outcome).inc()
        log.warning(
            "inventory books unbalanced: %s",
            outcome,
            extra={
                "store_id": store_id,
                "sku_id": u.sku_id,
                "reserved": u.reserved,
                "held": u.held,
                "available": u.available,
            },
        )
    return found
