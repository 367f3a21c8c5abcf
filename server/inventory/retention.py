"""Retention of ``inventory_reservations``: rows of holds that ended long ago are deleted.

Every cart line and order line leaves a row that outlives its hold (COMMITTED, RELEASED,
EXPIRED); at a city's peak that is millions of rows a day, and every index grows with
them. The per-store loop ``inventory-retention`` (``server/kit/loops.py``) deletes, each
run, at most ``batch`` rows of one store whose hold ended more than ``retention`` ago by
the server clock, oldest first (``ix_inventory_reservations_created``, migration 0023), in
one short transaction; rows another transaction has locked are skipped, not waited for.

A SOFT or HARD row is never deleted, whatever its age, and nothing that reads the table
reads what is deleted:

- the drift check (``reconcile.find_drift``, the consistent look) compares Redis's live
  holds with the SOFT and HARD rows only;
- the Redis rebuild (``reconcile._read_books``) reads the stock rows, the SOFT and HARD
  rows and, as tombstones, the ended holds updated within ``reconcile.ENDED_WINDOW`` by
  the database's clock: a row inside that window is kept even when the server clock is
  far ahead of the database's (a sped-up demo), so a rebuild writes the same tombstones;
- the journal writer and the synchronous hold writes (``journal.py``, ``service.py``)
  update only SOFT and HARD rows, and their upsert of a line whose ended row is gone
  inserts the row it would have updated (only ``created_at`` and ``reservation_id`` are
  new, and nothing reads them but this purge);
- the sweeper works from Redis's expiry index and ends SOFT and HARD rows only;
- the books' quantities are ``store_inventory`` and the ledger is ``stock_ledger``: neither
  is touched.

Two readers do see the purge, both of holds older than the retention: a cart whose hold
expired reads as EXPIRED through its EXPIRED rows once Redis's tombstone (a day) is gone
(``queries.had_expired_hold``), and once they are purged too through its age (an active
cart holding nothing that was created more than the retention ago reads EXPIRED:
``orders.cart._had_expired_lines``); and ``qc sim``'s report checks delivered orders
against their COMMITTED rows, so a simulated run longer than the retention needs a longer
one (``QC_RESERVATION_RETENTION_S``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory.reconcile import ENDED_WINDOW
from server.kit.clock import Clock
from server.kit.db import transaction
from shared.enums import ReservationStatus

log = logging.getLogger(__name__)

PURGED = Counter(
    "qc_inventory_reservations_purged_total",
    "Reservation rows of long-ended holds deleted by the retention loop",
    ["store_id"],
)

# named, not "neither SOFT nor HARD": a status added later is kept until it is listed here
ENDED = (ReservationStatus.COMMITTED, ReservationStatus.RELEASED, ReservationStatus.EXPIRED)

# The oldest rows first, by the (store_id, created_at) index: a row's hold ends within its
# cart's hold life of its creation, so the rows past the cutoff are at the index's head.
# ``updated_at`` (when it ended) decides; locked rows are skipped, and a row a concurrent
# upsert made SOFT again before our lock is re-read under it and left.
_PURGE = text(f"""
    WITH old AS (
      SELECT order_id, sku_id FROM inventory_reservations
      WHERE store_id = :s AND created_at < :cutoff AND updated_at < :cutoff
        AND updated_at < now() - {ENDED_WINDOW} AND status = ANY(CAST(:ended AS text[]))
      ORDER BY created_at LIMIT :n
      FOR UPDATE SKIP LOCKED),
    gone AS (
      DELETE FROM inventory_reservations r USING old
      WHERE r.store_id = :s AND r.order_id = old.order_id AND r.sku_id = old.sku_id
      RETURNING 1)
    SELECT count(*) FROM gone""")


async def purge_store(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    store_id: str,
    *,
    retention_s: int,
    batch: int,
) -> int:
    """Delete at most ``batch`` of the store's reservation rows whose hold ended more than
    ``retention_s`` ago (server clock); returns how many went."""
    cutoff = clock.now() - timedelta(seconds=retention_s)
    async with transaction(sessions) as session:
        found = await session.execute(
            _PURGE,
            {"s": store_id, "cutoff": cutoff, "n": batch, "ended": [s.value for s in ENDED]},
        )
        purged = int(found.scalar_one())
    if purged:
        PURGED.labels(store_id).inc(purged)
        log.info("ended reservations purged", extra={"store_id": store_id, "count": purged})
    return purged
