"""Soft holds reach PostgreSQL through a journal, not inside the customer's request.

The reserve and settle scripts append every SOFT movement to the store's stream
(``invlog:{S}``) in the same atomic step that decides it. A writer (a leased loop, and any
request that needs the books of a hold now: a checkout) applies the entries after the
store's offset in one transaction: one ``UPDATE`` of ``store_inventory`` with the summed
deltas per SKU (rows locked in SKU order), the reservation rows in one upsert and the
expiry and end updates, all in one pipeline (one round trip), then the ledger rows by
``COPY``, and the offset row moved, so each entry reaches the books exactly once. HARD holds, commits and physical movements stay
synchronous (written with the order).

Every PostgreSQL write of a store's Redis changes (this writer, and the synchronous paths)
holds the store's advisory lock in shared mode; a rebuild takes it exclusively, so it waits
for the work in flight and sees it, and applies the journal's tail before it reads the books.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import redis.asyncio as aioredis
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import emit
from server.inventory.errors import StoreNotReady
from server.kit import keys, streams, uow
from shared.enums import Movement, ReservationStatus

log = logging.getLogger(__name__)

LOCK_CLASS = 7417  # pg_advisory_*lock(LOCK_CLASS, hashtext(store_id)): a store's books
BATCH = 1000
CLAIM_WAIT_S = 10.0  # a checkout waits at most this long for another writer's batch

APPLIED = Counter(
    "qc_inventory_journal_applied_total", "Journal entries written to PostgreSQL", ["store_id"]
)
DROPPED = Counter(
    "qc_inventory_journal_dropped_total",
    "Journal entries PostgreSQL refused (Redis had drifted ahead); the store is reloaded",
    ["store_id"],
)

NEVER = datetime.min.replace(tzinfo=UTC)
_MOVEMENT = {
    "COMMITTED": Movement.COMMIT,
    "RELEASED": Movement.RELEASE,
    "EXPIRED": Movement.EXPIRE,
}


async def lock_store(session: AsyncSession, redis: aioredis.Redis, store_id: str) -> None:
    """Before a synchronous Redis change of ``store_id``: the store is loaded, and this
    transaction holds the store's lock in shared mode until it ends (a rebuild waits)."""
    locked: set[str] = session.info.setdefault("qc_inventory_locks", set())
    if store_id in locked:
        return
    if not await redis.exists(keys.store_ready(store_id)):
        from server.inventory.reconcile import load_store

        engine = session.bind
        assert isinstance(engine, AsyncEngine), "sessions are bound to the engine (kit.db)"
        await load_store(engine, redis, store_id)
    await _lock_shared(session, store_id)


async def _lock_shared(session: AsyncSession, store_id: str) -> None:
    """The store's lock in shared mode until the transaction ends (once per transaction)."""
    locked: set[str] = session.info.setdefault("qc_inventory_locks", set())
    if store_id in locked:
        return
    await session.execute(
        text("SELECT pg_advisory_xact_lock_shared(:c, hashtext(:s))"),
        {"c": LOCK_CLASS, "s": store_id},
    )
    locked.add(store_id)

    async def released() -> None:  # the transaction ended, and the lock with it
        locked.discard(store_id)

    uow.after_either(session, released)


def not_ready(store_id: str) -> StoreNotReady:
    """Redis lost the store while this transaction holds its lock: it cannot load it now."""
    return StoreNotReady(f"stock of {store_id} is being reloaded; retry shortly")


@dataclass
class _Batch:
    deltas: dict[str, list[int]] = field(default_factory=dict)  # sku -> [da, dr]
    ledger: list[tuple[str, str, int, int, str, datetime]] = field(default_factory=list)
    rows: dict[tuple[str, str], tuple[int, str, datetime, datetime]] = field(default_factory=dict)
    expiry: dict[str, datetime] = field(default_factory=dict)
    ended: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    latest: datetime = NEVER  # server clock of the last entry

    def move(self, sku: str, da: int, dr: int, movement: Movement, ref: str, at: datetime) -> None:
        d = self.deltas.setdefault(sku, [0, 0])
        d[0] += da
        d[1] += dr
        self.ledger.append((sku, movement.value, da, dr, ref, at))

    def add(self, entry: dict[str, str]) -> None:
        if "k" not in entry:
            return  # an entry deleted meanwhile
        holder, at = entry["h"], _time(entry["t"])
        self.latest = max(self.latest, at)
        lines = [part.split(":") for part in entry.get("l", "").split(";") if part]
        if entry["k"] == "R":
            expires = _time(entry["x"])
            for sku, old, new in lines:
                delta = int(new) - int(old)
                movement = Movement.RESERVE if delta > 0 else Movement.RELEASE
                self.move(sku, -delta, delta, movement, holder, at)
                status = ReservationStatus.SOFT if int(new) > 0 else ReservationStatus.RELEASED
                self.rows[(holder, sku)] = (int(new), status.value, at, expires)
            self.expiry[holder] = expires
        else:
            outcome = entry["o"]
            for sku, qty in lines:
                q = int(qty)
                self.move(
                    sku, 0 if outcome == "COMMITTED" else q, -q, _MOVEMENT[outcome], holder, at
                )
            self.ended[holder] = (outcome, at)


def _time(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


# the batch's statements go to psycopg in one pipeline (one round trip), not through
# SQLAlchemy: %(name)s parameters, arrays as literals (_array)
_STOCK = """
    WITH v AS (
      SELECT * FROM unnest(CAST(%(skus)s AS text[]), CAST(%(da)s AS int[]),
        CAST(%(dr)s AS int[])) AS v(sku, da, dr)),
    locked AS (
      SELECT i.sku_id FROM store_inventory i JOIN v ON v.sku = i.sku_id
      WHERE i.store_id = %(s)s ORDER BY i.sku_id FOR UPDATE OF i)
    UPDATE store_inventory s SET available_qty = s.available_qty + v.da,
      reserved_qty = s.reserved_qty + v.dr, last_updated = %(now)s
    FROM v JOIN locked l ON l.sku_id = v.sku
    WHERE s.store_id = %(s)s AND s.sku_id = v.sku
    RETURNING s.sku_id, s.available_qty, s.reorder_level, v.da"""
_ROWS = """
    INSERT INTO inventory_reservations (reservation_id, store_id, order_id, sku_id,
      quantity, status, created_at, updated_at, expires_at)
    SELECT gen_random_uuid(), %(s)s, h, sku, q, st, at, at, x
    FROM unnest(CAST(%(h)s AS text[]), CAST(%(skus)s AS text[]), CAST(%(q)s AS int[]),
      CAST(%(st)s AS text[]), CAST(%(at)s AS timestamptz[]), CAST(%(x)s AS timestamptz[]))
      AS t(h, sku, q, st, at, x)
    ON CONFLICT (store_id, order_id, sku_id) DO UPDATE SET quantity = EXCLUDED.quantity,
      status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
      expires_at = EXCLUDED.expires_at"""
# the hold's other lines (rows the batch wrote already carry its latest expiry)
_EXPIRY = """
    UPDATE inventory_reservations r SET expires_at = v.x
    FROM unnest(CAST(%(h)s AS text[]), CAST(%(x)s AS timestamptz[])) AS v(h, x)
    WHERE r.store_id = %(s)s AND r.order_id = v.h AND r.status IN ('SOFT', 'HARD')
      AND r.expires_at IS DISTINCT FROM v.x"""
_ENDED = """
    UPDATE inventory_reservations r SET status = v.o, updated_at = v.at
    FROM unnest(CAST(%(h)s AS text[]), CAST(%(o)s AS text[]), CAST(%(at)s AS timestamptz[]))
      AS v(h, o, at)
    WHERE r.store_id = %(s)s AND r.order_id = v.h AND r.status IN ('SOFT', 'HARD')"""
_LEDGER = """COPY stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
    d_damaged, d_in_transit, reference, created_at) FROM STDIN"""
OFFSETS = streams.Offsets("inventory_journal_offsets", "store_id")


def _array(values: Iterable[object]) -> str:
    """An array literal for ``CAST(%(x)s AS type[])``: psycopg dumps a list element by
    element in Python (half the writer's CPU on small batches), a string in one go."""
    quoted = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + quoted + "}"


async def _write(session: AsyncSession, store_id: str, batch: _Batch) -> None:
    """The batch in the session's transaction: its statements in one pipeline, then the
    ledger by COPY (a pipeline cannot carry a COPY)."""
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection), "the engine's driver is psycopg (kit.db)"
    skus = sorted(batch.deltas)
    rows = [
        # a held line takes its holder's latest expiry (as _EXPIRY would set it)
        (h, sku, q, st, at, batch.expiry.get(h, x) if q else x)
        for (h, sku), (q, st, at, x) in batch.rows.items()
    ]
    A = _array
    async with driver.pipeline(), driver.cursor() as stock, driver.cursor() as cursor:
        if skus:
            await stock.execute(
                _STOCK,
                {"s": store_id, "now": batch.latest, "skus": A(skus),
                 "da": A(batch.deltas[k][0] for k in skus),
                 "dr": A(batch.deltas[k][1] for k in skus)},
            )  # fmt: skip
        if rows:
            cols = list(zip(*rows, strict=True))
            await cursor.execute(
                _ROWS,
                {"s": store_id, "h": A(cols[0]), "skus": A(cols[1]), "q": A(cols[2]),
                 "st": A(cols[3]), "at": A(cols[4]), "x": A(cols[5])},
            )  # fmt: skip
        if batch.expiry:
            holders = list(batch.expiry)
            await cursor.execute(
                _EXPIRY, {"s": store_id, "h": A(holders), "x": A(batch.expiry[h] for h in holders)}
            )
        if batch.ended:
            holders = list(batch.ended)
            await cursor.execute(
                _ENDED,
                {"s": store_id, "h": A(holders), "o": A(batch.ended[h][0] for h in holders),
                 "at": A(batch.ended[h][1] for h in holders)},
            )  # fmt: skip
        crossed = await stock.fetchall() if skus else []  # the pipeline's one sync
    if batch.ledger:
        async with driver.cursor() as cursor, cursor.copy(_LEDGER) as copy:
            for sku, mv, da, dr, ref, at in batch.ledger:
                await copy.write_row((store_id, sku, mv, da, dr, 0, 0, ref, at))
    for sku, available, reorder_level, da in crossed:
        await flag_low_stock(session, store_id, sku, available, reorder_level, da, batch.latest)


async def apply_pending(
    session: AsyncSession,
    redis: aioredis.Redis,
    store_id: str,
    *,
    limit: int = BATCH,
    upto: str = "",
) -> int:
    """Apply the store's journal past PostgreSQL's offset, in the caller's transaction
    (which then holds the offset row until it ends). Returns the entries applied.

    With ``upto`` (a checkout that needs its cart's entries in the books) the caller does
    not queue behind another transaction that holds the offset row: it waits for that
    one's commit to cover ``upto`` (reading the committed offset), and applies only if the
    row is free, so concurrent checkouts of a store are not serialised on it."""
    await _lock_shared(session, store_id)
    if upto:
        found = await _claim(session, store_id, upto)
        if found is None:
            return 0  # already in the books (another writer applied it)
        applied = found
    else:
        applied = await OFFSETS.lock(session, store_id)
    stream = keys.inventory_journal(store_id)
    total = 0
    while True:
        raw = await streams.read_after(redis, stream, applied, limit)
        if not raw:
            break
        batch = _Batch()
        for _, fields in raw:
            batch.add(fields)
        try:
            async with session.begin_nested():
                await _write(session, store_id, batch)
        except (IntegrityError, psycopg.errors.IntegrityError):
            # Redis admitted what the books refuse: it drifted ahead of PostgreSQL (e.g. an
            # AOF rollback). Keep what can be kept, entry by entry, and reload the store.
            await _write_one_by_one(session, store_id, raw)
            await redis.delete(keys.store_ready(store_id))
        applied = raw[-1][0]
        total += len(raw)
        if len(raw) < limit:
            break
    if total:
        await OFFSETS.advance(session, store_id, applied)
        APPLIED.labels(store_id).inc(total)
        # tell the scripts how far the books are (a hint) and trim what they hold
        streams.trim_after_commit(
            session, redis, stream, applied, hint=keys.journal_applied(store_id)
        )
    return total


async def _claim(session: AsyncSession, store_id: str, upto: str) -> str | None:
    """The offset row locked by us (its applied id), or None once the books hold ``upto``."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        committed, mine = await OFFSETS.unless_covered(session, store_id, upto)
        if committed is None:
            return await OFFSETS.lock(session, store_id)
        if streams.after_or_at(committed, upto):
            return None
        if mine is not None:
            return mine
        if time.monotonic() > deadline:
            raise not_ready(store_id)
        await asyncio.sleep(0.005)  # another transaction is applying: wait for its commit


async def _write_one_by_one(session: AsyncSession, store_id: str, raw: list[streams.Entry]) -> None:
    for entry_id, fields in raw:
        batch = _Batch()
        batch.add(fields)
        try:
            async with session.begin_nested():
                await _write(session, store_id, batch)
        except (IntegrityError, psycopg.errors.IntegrityError):
            DROPPED.labels(store_id).inc()
            log.warning(
                "journal entry refused by the books",
                extra={"store_id": store_id, "entry": entry_id},
            )


async def drain(db: AsyncEngine, redis: aioredis.Redis, store_id: str) -> int:
    """Apply the whole journal of one store now (tests, the reconciler, shutdown)."""
    return await streams.drain(
        db, lambda session: apply_pending(session, redis, store_id), batch=BATCH
    )


async def write_stores(db: AsyncEngine, redis: aioredis.Redis, store_ids: list[str]) -> int:
    """The writer's run: apply every store whose journal has entries."""
    return await streams.drain_waiting(
        redis,
        store_ids,
        stream_of=keys.inventory_journal,
        drain_one=lambda store_id: drain(db, redis, store_id),
    )


async def flag_low_stock(
    session: AsyncSession,
    store_id: str,
    sku_id: str,
    available: int,
    reorder_level: int,
    d_available: int,
    now: datetime,
) -> None:
    """An ``inventory.low_stock`` event when this change took ``available`` down across the
    reorder level."""
    if d_available < 0 and available <= reorder_level < available - d_available:
        await emit(
            session,
            topic="inventory.low_stock",
            store_id=store_id,
            aggregate_id=sku_id,
            payload={"sku_id": sku_id, "available": available, "reorder_level": reorder_level},
            now=now,
        )
