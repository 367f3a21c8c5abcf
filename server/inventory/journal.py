"""Soft holds reach PostgreSQL through a journal, not inside the customer's request.

The reserve and settle scripts append every SOFT movement to the store's stream
(``invlog:{S}``) in the same atomic step that decides it. A writer (a leased loop, and any
request that needs the books of a hold now: a checkout) applies the entries after the
store's offset in one transaction: ``journal_tail.lua`` hands the entries over as one JSON
text, and PostgreSQL parses it itself in a pipeline of statements (one round trip): the
offset row locked, one ``UPDATE`` of ``store_inventory`` with the summed deltas per SKU
(rows locked in SKU order) with the reservation upsert and the ledger rows, the expiry and
end updates, and the offset moved; each statement skips the entries the offset already
holds, so each entry reaches the books exactly once. HARD holds, commits and physical
movements stay synchronous (written with the order).

Every PostgreSQL write of a store's Redis changes (this writer, and the synchronous paths)
holds the store's advisory lock in shared mode; a rebuild takes it exclusively, so it waits
for the work in flight and sees it, and applies the journal's tail before it reads the books.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
import redis.asyncio as aioredis
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import emit
from server.inventory.errors import StoreNotReady
from server.kit import db, fencing, keys, scripts, streams, uow

log = logging.getLogger(__name__)

LOCK_CLASS = 7417  # pg_advisory_*lock(LOCK_CLASS, hashtext(store_id)): a store's books
BATCH = 1000
CLAIM_WAIT_S = 10.0  # a checkout waits at most this long for another writer's batch
_LOCK = f"SELECT pg_advisory_xact_lock_shared({LOCK_CLASS}, hashtext(%(s)s))"

APPLIED = Counter(
    "qc_inventory_journal_applied_total", "Journal entries written to PostgreSQL", ["store_id"]
)
DROPPED = Counter(
    "qc_inventory_journal_dropped_total",
    "Journal entries PostgreSQL refused (Redis had drifted ahead); the store is reloaded",
    ["store_id"],
)


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
    if _mark_shared(session, store_id):
        await (await db.driver(session)).execute(_LOCK, {"s": store_id})


def _mark_shared(session: AsyncSession, store_id: str) -> bool:
    """Note that this transaction holds the store's shared lock: True if it did not yet
    (the caller takes it now, with ``_LOCK``)."""
    locked: set[str] = session.info.setdefault("qc_inventory_locks", set())
    if store_id in locked:
        return False
    locked.add(store_id)

    async def released() -> None:  # the transaction ended, and the lock with it
        locked.discard(store_id)

    uow.after_either(session, released)
    return True


def not_ready(store_id: str) -> StoreNotReady:
    """Redis lost the store while this transaction holds its lock: it cannot load it now."""
    return StoreNotReady(f"stock of {store_id} is being reloaded; retry shortly")


@dataclass(frozen=True)
class _Tail:
    """Journal entries read after ``after``, as the JSON text ``journal_tail.lua`` built."""

    after: str
    read: int  # entries read (0: nothing after ``after``)
    last: str  # the last id read
    entries: str


async def _tail(
    redis: aioredis.Redis, store_id: str, after: str, limit: int, through: str = ""
) -> _Tail:
    after, read, last, entries = await scripts.run(
        redis,
        "inventory/journal_tail",
        keys=[keys.inventory_journal(store_id), keys.journal_applied(store_id)],
        args=[after, limit, through],
    )
    return _Tail(scripts.text(after), int(read), scripts.text(last), scripts.text(entries))


# The batch reaches PostgreSQL as the JSON text of its entries and is parsed there: each
# statement starts with these CTEs. ``e``: the entries past the store's offset (none if
# the offset is behind ``after``: the hint ran ahead of the books, the careful path reads
# the offset); ``mv``: one row per line, the movement with its deltas.
_ENTRIES = """
    WITH o AS (
      SELECT split_part(applied_id, '-', 1)::bigint AS ms,
        split_part(applied_id, '-', 2)::bigint AS seq
      FROM inventory_journal_offsets WHERE store_id = %(s)s),
    e AS (
      SELECT j.ord, j.x->>1 AS k, j.x->>2 AS h, to_timestamp((j.x->>3)::float8) AS at,
        j.x->>4 AS xo, j.x->>5 AS l, j.x->>6 AS n
      FROM o, jsonb_array_elements(CAST(%(e)s AS jsonb)) WITH ORDINALITY AS j(x, ord)
      WHERE (o.ms, o.seq) >= (%(after_ms)s, %(after_seq)s)
        AND (split_part(j.x->>0, '-', 1)::bigint, split_part(j.x->>0, '-', 2)::bigint)
          > (o.ms, o.seq)),
    mv AS (
      SELECT e.ord, u.n, e.k, e.h, e.at, e.xo, split_part(u.p, ':', 1) AS sku,
        CASE WHEN e.k = 'R' THEN split_part(u.p, ':', 3)::int END AS q,
        CASE WHEN e.k = 'R' THEN split_part(u.p, ':', 3)::int - split_part(u.p, ':', 2)::int
          ELSE -split_part(u.p, ':', 2)::int END AS dr
      FROM e, unnest(string_to_array(e.l, ';')) WITH ORDINALITY AS u(p, n)),
    held AS (  -- each holder's latest reserve: the hold's expiry; new: its first was a new
      -- hold's (the books hold no other line of it)
      SELECT h, to_timestamp((array_agg(xo ORDER BY ord DESC))[1]::float8) AS x,
        (array_agg(n ORDER BY ord))[1] IS NOT DISTINCT FROM '1' AS new
      FROM e WHERE k = 'R' GROUP BY h)"""
_OFFSET_LOCK = """SELECT 1 FROM inventory_journal_offsets WHERE store_id = %(s)s FOR UPDATE"""
# the SOFT and HARD lines of each holder of ``v``, found holder by holder (LATERAL with
# OFFSET 0: a primary-key lookup each, the status tested outside)
_LINES_OF = """
      SELECT r.sku_id, v.* FROM {v} v, LATERAL (
        SELECT sku_id, expires_at, status FROM inventory_reservations
        WHERE store_id = %(s)s AND order_id = v.h OFFSET 0) r
      WHERE r.status IN ('SOFT', 'HARD')"""
# the stock rows (summed per SKU, locked in SKU order), each (holder, SKU)'s latest line in
# one upsert (a held line takes its hold's latest expiry), the hold's other lines moved to
# that expiry, and a ledger row per movement; answers the SKUs whose change crossed their
# reorder level downwards
_BOOKS = (
    _ENTRIES
    + """,
    moves AS (
      SELECT mv.*, CASE WHEN k = 'S' AND xo = 'COMMITTED' THEN 0 ELSE -dr END AS da,
        CASE WHEN k = 'R' THEN CASE WHEN dr > 0 THEN 'RESERVE' ELSE 'RELEASE' END
          WHEN xo = 'COMMITTED' THEN 'COMMIT' WHEN xo = 'RELEASED' THEN 'RELEASE'
          ELSE 'EXPIRE' END AS movement
      FROM mv),
    sums AS (SELECT sku, sum(da)::int AS da, sum(dr)::int AS dr FROM moves GROUP BY sku),
    locked AS (  -- in SKU order, each row by its key (not a scan of the store's)
      SELECT i.sku_id, v.da, v.dr FROM (SELECT * FROM sums ORDER BY sku) v, LATERAL (
        SELECT sku_id FROM store_inventory WHERE store_id = %(s)s AND sku_id = v.sku
        FOR UPDATE) i),
    stock AS (
      UPDATE store_inventory s SET available_qty = s.available_qty + l.da,
        reserved_qty = s.reserved_qty + l.dr, last_updated = (SELECT max(at) FROM e)
      FROM locked l
      WHERE s.store_id = %(s)s AND s.sku_id = ANY(ARRAY(SELECT sku_id FROM locked))
        AND s.sku_id = l.sku_id
      RETURNING s.sku_id, s.available_qty, s.reorder_level, l.da),
    line AS (
      SELECT DISTINCT ON (h, sku) h, sku, q, at, to_timestamp(xo::float8) AS x FROM mv
      WHERE k = 'R' ORDER BY h, sku, ord DESC),
    rows AS (
      INSERT INTO inventory_reservations (store_id, order_id, sku_id, quantity, status,
        created_at, updated_at, expires_at)
      SELECT %(s)s, l.h, l.sku, l.q,
        CASE WHEN l.q > 0 THEN 'SOFT' ELSE 'RELEASED' END, l.at, l.at,
        CASE WHEN l.q > 0 THEN held.x ELSE l.x END
      FROM line l JOIN held USING (h)
      ON CONFLICT (store_id, order_id, sku_id) DO UPDATE SET quantity = EXCLUDED.quantity,
        status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
        expires_at = EXCLUDED.expires_at),
    other AS ("""
    + _LINES_OF.format(v="(SELECT * FROM held WHERE NOT new)")
    + """ AND r.expires_at IS DISTINCT FROM v.x
        AND NOT EXISTS (SELECT 1 FROM line WHERE line.h = v.h AND line.sku = r.sku_id)),
    expiry AS (
      UPDATE inventory_reservations r SET expires_at = other.x FROM other
      WHERE r.store_id = %(s)s AND r.order_id = other.h AND r.sku_id = other.sku_id),
    ledger AS (
      INSERT INTO stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
        d_damaged, d_in_transit, reference, created_at)
      SELECT %(s)s, sku, movement, da, dr, 0, 0, h, at FROM moves ORDER BY ord, n)
    SELECT *, (SELECT max(at) FROM e) FROM stock
    WHERE da < 0 AND available_qty <= reorder_level AND reorder_level < available_qty - da"""
)
# after the books (a hold held and ended in one batch ends too): the ended holds' lines,
# but a line a later reserve of the batch held again (a cart back at a store it left:
# its hold starts over the tombstone), and the offset moved to ``last``; answers the
# entries applied
_ENDED = (
    _ENTRIES
    + """,
    ended AS (
      SELECT DISTINCT ON (h) h, xo AS o, at, ord FROM e WHERE k = 'S' ORDER BY h, ord DESC),
    hit AS ("""
    + _LINES_OF.format(v="ended")
    + """ AND NOT EXISTS (SELECT 1 FROM mv
        WHERE mv.k = 'R' AND mv.h = v.h AND mv.sku = r.sku_id AND mv.ord > v.ord)),
    status AS (
      UPDATE inventory_reservations r SET status = hit.o, updated_at = hit.at FROM hit
      WHERE r.store_id = %(s)s AND r.order_id = hit.h AND r.sku_id = hit.sku_id),
    c AS (SELECT count(*) AS n FROM e)
    UPDATE inventory_journal_offsets SET applied_id = %(last)s, applied_at = now()
    FROM c WHERE store_id = %(s)s AND c.n > 0
    RETURNING c.n"""
)
OFFSETS = streams.Offsets("inventory_journal_offsets", "store_id")


async def _apply(session: AsyncSession, store_id: str, tail: _Tail) -> int:
    """The entries of ``tail`` past the store's offset, in the session's transaction, and
    the offset moved to ``tail.last``: one pipeline (one round trip), the store's shared
    lock and the offset row's lock first. Returns the entries applied."""
    driver = await db.driver(session)
    ms, seq = tail.after.split("-")
    params = {
        "s": store_id, "e": tail.entries, "after_ms": int(ms), "after_seq": int(seq),
        "last": tail.last,
    }  # fmt: skip
    lock = _mark_shared(session, store_id)
    async with driver.pipeline(), driver.cursor() as books, driver.cursor() as cursor:
        if lock:
            await cursor.execute(_LOCK, {"s": store_id})
        await cursor.execute(_OFFSET_LOCK, {"s": store_id})
        # prepared at once, not after five runs: parsing and planning either is ~1 ms
        await books.execute(_BOOKS, params, prepare=True)
        await cursor.execute(_ENDED, params, prepare=True)
        applied = await cursor.fetchone()  # the pipeline's one sync
        crossed = await books.fetchall()
    for sku, available, reorder_level, da, at in crossed:
        await flag_low_stock(session, store_id, sku, available, reorder_level, da, at)
    return int(applied[0]) if applied else 0


def _applied(
    session: AsyncSession, redis: aioredis.Redis, store_id: str, last: str, n: int
) -> None:
    APPLIED.labels(store_id).inc(n)
    # tell the scripts how far the books are (a hint) and trim what they hold
    streams.trim_after_commit(
        session, redis, keys.inventory_journal(store_id), last, hint=keys.journal_applied(store_id)
    )


async def apply_pending(
    session: AsyncSession,
    redis: aioredis.Redis,
    store_id: str,
    *,
    limit: int = BATCH,
    upto: str = "",
    through: str = "",
) -> int:
    """Apply the store's journal past PostgreSQL's offset, in the caller's transaction
    (which then holds the offset row until it ends). Returns the entries applied.

    With ``through`` only the entries up to that id (the reconciler's consistent look:
    what its Redis read had seen, not what was journaled since).

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
    total = 0
    while True:
        tail = await _tail(redis, store_id, applied, limit, through)
        if not tail.read:
            break
        try:
            async with session.begin_nested():
                total += await _apply(session, store_id, tail)
        except (IntegrityError, psycopg.errors.IntegrityError):
            # Redis admitted what the books refuse: it drifted ahead of PostgreSQL (e.g. an
            # AOF rollback). Keep what can be kept, entry by entry, and reload the store.
            total += await _apply_one_by_one(session, store_id, tail)
            await redis.delete(keys.store_ready(store_id))
        applied = tail.last
        if tail.read < limit:
            break
    if total:
        _applied(session, redis, store_id, applied, total)
    return total


async def write_store(db: AsyncEngine, redis: aioredis.Redis, store_id: str) -> int:
    """The writer's run for one store: each batch after the applied-id hint in one
    transaction of three round trips (the entries from Redis, the pipeline, the commit),
    fenced when a leased loop runs it. If the offset is not where the hint says or the
    books refuse the batch, the careful path (``drain``) takes over."""
    total = 0
    while True:
        tail = await _tail(redis, store_id, "", BATCH)
        if not tail.read:
            # the stream had entries (``write_stores`` looked): if none is past the hint,
            # the hint may be ahead of the books, and the careful path reads the offset
            return total or await drain(db, redis, store_id)
        async with AsyncSession(db, expire_on_commit=False) as session:
            try:
                n = await _apply(session, store_id, tail)
                if n:
                    await fencing.check(session)
                    _applied(session, redis, store_id, tail.last, n)
            except (IntegrityError, psycopg.errors.IntegrityError):
                n = 0
            except BaseException:
                await uow.rollback(session)
                raise
            await (uow.commit(session) if n else uow.rollback(session))
        if not n:
            return total + await drain(db, redis, store_id)
        total += n
        if tail.read < BATCH:
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


async def _apply_one_by_one(session: AsyncSession, store_id: str, tail: _Tail) -> int:
    """Each entry of ``tail`` in a savepoint of its own, those the books refuse dropped,
    the offset then past them all. Returns the entries applied or dropped."""
    total = 0
    for entry in json.loads(tail.entries):
        one = _Tail(tail.after, 1, entry[0], json.dumps([entry]))
        try:
            async with session.begin_nested():
                total += await _apply(session, store_id, one)
        except (IntegrityError, psycopg.errors.IntegrityError):
            DROPPED.labels(store_id).inc()
            total += 1
            log.warning(
                "journal entry refused by the books",
                extra={"store_id": store_id, "entry": entry[0]},
            )
    await OFFSETS.advance(session, store_id, tail.last)
    return total


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
        drain_one=lambda store_id: write_store(db, redis, store_id),
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
