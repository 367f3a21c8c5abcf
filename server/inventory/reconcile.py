"""Keep Redis equal to PostgreSQL: load a store's stock before it takes reservations, and
find and repair drift. PostgreSQL is the truth; the drift repaired is a metric and a log.

Finding drift never stops a store. A quick look (no lock) compares the two sides; a change
between its Redis and PostgreSQL writes looks like drift there, so what it finds is only
suspected. The suspects are then looked at once more, consistently: with the store's lock
held exclusively in PostgreSQL (no synchronous write is open; they queue behind it for that
moment, none is refused) one script reads the changes in flight, the journal's last id and
the suspected buckets and holds atomically, the books take the journal exactly that far
in the same transaction, and are read there. A difference left is drift: the store is
reloaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.typing import EncodableT
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory import engine, journal
from server.inventory.errors import StoreNotFound, StoreNotReady
from server.kit import keys, scripts, uow
from server.kit.errors import InProgress

log = logging.getLogger(__name__)

DRIFT_REPAIRED = Counter(
    "qc_inventory_drift_repaired_total",
    "Stock rows and holds whose Redis copy disagreed with PostgreSQL",
    ["store_id", "kind"],
)
STORE_LOADS = Counter(
    "qc_inventory_store_loads_total",
    "Times a store's stock was (re)loaded into Redis",
    ["store_id", "why"],
)
LOOKS = Counter(
    "qc_inventory_reconcile_looks_total",
    "Consistent looks at a store whose quick look differed: clean (changes in flight), "
    "drift (reloaded), busy (its lock not had in time: the next interval looks again)",
    ["store_id", "outcome"],
)

LOCK_TTL_MS = 30_000
# ended holds a rebuild writes back as tombstones: those updated this recently by the
# database's clock (``retention.py`` never deletes one of them)
ENDED_WINDOW = "interval '1 day'"
FILL_BATCH = 1000  # commands per round trip when a store is written into Redis


@dataclass(frozen=True)
class Drift:
    kind: str  # "stock" or "hold"
    key: str  # sku id or holder id
    postgres: object
    redis: object


Snapshot = tuple[
    dict[str, engine.Buckets], dict[str, tuple[str, float, dict[str, int]]], dict[str, str]
]


async def _snapshot(db: AsyncEngine, store_id: str) -> Snapshot:
    """PostgreSQL's stock rows, active holds and recently ended holds of one store, read in
    one snapshot. Ended holds become tombstones again so that ending one twice stays a
    no-op after Redis lost its data."""
    async with db.connect() as conn:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        snapshot = await _read_books(conn, store_id)
        await conn.rollback()
    return snapshot


async def _read_books(conn: AsyncConnection, store_id: str) -> Snapshot:
    exists = (
        await conn.execute(text("SELECT 1 FROM dark_stores WHERE store_id = :s"), {"s": store_id})
    ).first()
    if exists is None:
        raise StoreNotFound(f"no store {store_id}")
    stock = {
        r[0]: engine.Buckets(*r[1:])
        for r in await conn.execute(
            text(
                "SELECT sku_id, available_qty, reserved_qty, damaged_qty, in_transit_qty "
                "FROM store_inventory WHERE store_id = :s"
            ),
            {"s": store_id},
        )
    }
    holds: dict[str, tuple[str, float, dict[str, int]]] = {}
    for holder, sku, qty, status, expires in await conn.execute(
        text(
            "SELECT order_id, sku_id, quantity, status, expires_at "
            "FROM inventory_reservations WHERE store_id = :s "
            "AND status IN ('SOFT', 'HARD') AND quantity > 0"
        ),
        {"s": store_id},
    ):
        held = holds.setdefault(holder, (status, expires.timestamp(), {}))
        held[2][sku] = qty
        if expires.timestamp() > held[1]:  # the hold lasts as long as its latest line
            holds[holder] = (held[0], expires.timestamp(), held[2])
    ended = {
        r[0]: r[1]
        for r in await conn.execute(
            text(f"""
        SELECT order_id, CASE WHEN bool_or(status = 'COMMITTED') THEN 'COMMITTED'
                              WHEN bool_or(status = 'EXPIRED') THEN 'EXPIRED'
                              ELSE 'RELEASED' END
        FROM inventory_reservations
        WHERE store_id = :s AND updated_at > now() - {ENDED_WINDOW}
        GROUP BY order_id
        HAVING bool_and(status NOT IN ('SOFT', 'HARD'))
           AND bool_or(status IN ('COMMITTED', 'EXPIRED')
                       OR (status = 'RELEASED' AND quantity > 0))"""),
            {"s": store_id},
        )
    }
    return stock, holds, ended


async def _live_holds(redis: aioredis.Redis, store_id: str) -> dict[str, dict[str, str]]:
    """Every live hold of the store, read in pipelined batches (one round trip per 500)."""
    prefix = keys.hold(store_id, "")
    found: dict[str, dict[str, str]] = {}
    names: list[str] = []

    async def read() -> None:
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        for name, raw in zip(names, await pipe.execute(), strict=True):
            held = {scripts.text(k): scripts.text(v) for k, v in raw.items()}
            if held.get("_state") in ("SOFT", "HARD"):
                found[name[len(prefix) :]] = held
        names.clear()

    async for key in redis.scan_iter(
        match=prefix.replace("{", "\\{").replace("}", "\\}") + "*", count=1000
    ):
        names.append(key.decode() if isinstance(key, bytes) else key)
        if len(names) >= 500:
            await read()
    if names:
        await read()
    return found


async def _write_store(
    db: AsyncEngine, redis: aioredis.Redis, store_id: str, *, drop_ready: bool
) -> None:
    """Rebuild one store's Redis copy from the books, with the store's lock held
    exclusively: every PostgreSQL write of its Redis changes in flight (synchronous paths,
    the journal writer) finishes first, and the journal's unapplied tail is applied before
    the books are read. The scripts refuse the store meanwhile (no ready marker), so
    nothing new is journaled or admitted until the copy is whole.

    ``drop_ready`` (a rebuild of a ready store): the marker is dropped once the lock is
    held, not before: a transaction holding the lock shared, which the rebuild waits for,
    is not refused meanwhile, and everything journaled until the marker goes is in the
    stream the tail is read from after it went.

    It connects outside the pool: the requests that found the store missing hold their
    pooled connections while they wait for this load, and a burst of them holds the whole
    pool (they all waited out their 15 s, 503)."""
    loader = create_async_engine(db.url, poolclass=NullPool)
    try:
        await _write_store_on(loader, redis, store_id, drop_ready=drop_ready)
    finally:
        await loader.dispose()


async def _write_store_on(
    db: AsyncEngine, redis: aioredis.Redis, store_id: str, *, drop_ready: bool
) -> None:
    async with db.connect() as conn:
        await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        try:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:c, hashtext(:s))"),
                {"c": journal.LOCK_CLASS, "s": store_id},
            )
        except DBAPIError as exc:
            raise StoreNotReady(f"stock of {store_id} is busy; retry shortly") from exc
        if drop_ready:
            await redis.delete(keys.store_ready(store_id))
        session = AsyncSession(bind=conn, expire_on_commit=False)
        await journal.apply_pending(session, redis, store_id)
        await session.flush()
        applied = str(
            (
                await conn.execute(
                    text("SELECT applied_id FROM inventory_journal_offsets WHERE store_id = :s"),
                    {"s": store_id},
                )
            ).scalar_one_or_none()
            or "0-0"
        )
        stock, holds, ended = await _read_books(conn, store_id)
        await _fill(redis, store_id, stock, holds, ended, applied)
        session.info.clear()  # its after-commit hint is written by _fill already
        await session.close()
        await conn.commit()


async def _fill(
    redis: aioredis.Redis,
    store_id: str,
    stock: dict[str, engine.Buckets],
    holds: dict[str, tuple[str, float, dict[str, int]]],
    ended: dict[str, str],
    applied: str,
) -> None:
    """Write the books into Redis in plain pipelined batches, the ready marker last.

    Not one MULTI: the store has no ready marker while it fills (the scripts refuse it),
    so nothing needs the writes atomic, and a cluster client queues each command of a
    MULTI through a thread of its own (a city of 12 x 5,000 SKUs took minutes). Every key
    is in the store's hash slot, so each batch is one round trip on a cluster too."""
    stale = await _live_holds(redis, store_id)
    pipe = redis.pipeline(transaction=False)

    async def sent_if_full() -> None:
        if len(pipe) >= FILL_BATCH:
            await pipe.execute()  # raises on the first failed command: no ready marker

    for sku, b in stock.items():
        pipe.hset(
            keys.inventory(store_id, sku),
            mapping={
                "available": b.available,
                "reserved": b.reserved,
                "damaged": b.damaged,
                "in_transit": b.in_transit,
            },
        )
        await sent_if_full()
    for holder in stale:
        pipe.delete(keys.hold(store_id, holder))
        await sent_if_full()
    pipe.delete(keys.hold_expiry(store_id))
    for holder, (status, expires, lines) in holds.items():
        pipe.delete(keys.hold(store_id, holder))
        fields: dict[EncodableT, EncodableT] = {sku: qty for sku, qty in lines.items()}
        fields |= {"_state": status, "_exp": expires}
        pipe.hset(keys.hold(store_id, holder), mapping=fields)
        pipe.zadd(keys.hold_expiry(store_id), {holder: expires})
        await sent_if_full()
    for holder, outcome in ended.items():
        pipe.delete(keys.hold(store_id, holder))
        pipe.hset(keys.hold(store_id, holder), "_state", outcome)
        pipe.expire(keys.hold(store_id, holder), engine.TOMBSTONE_TTL_S)
        await sent_if_full()
    pipe.set(keys.inflight(store_id), 0)
    ms, seq = applied.split("-")
    pipe.xtrim(keys.inventory_journal(store_id), minid=f"{ms}-{int(seq) + 1}", approximate=False)
    pipe.set(keys.journal_applied(store_id), applied)
    await pipe.execute()
    await redis.set(keys.store_ready(store_id), uuid.uuid4().hex)  # a new epoch (restore.lua)


async def load_store(
    db: AsyncEngine,
    redis: aioredis.Redis,
    store_id: str,
    *,
    why: str = "missing",
    wait_s: float = 15.0,
) -> None:
    """Load a store's stock and holds into Redis unless it is loaded; one loader at a time."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    while True:
        if why == "missing" and await redis.exists(keys.store_ready(store_id)):
            return
        if await redis.set(keys.rebuild_lock(store_id), token, nx=True, px=LOCK_TTL_MS):
            break
        if time.monotonic() > deadline:
            raise StoreNotReady(f"stock of {store_id} is still loading; retry shortly")
        await asyncio.sleep(0.05)  # another process is loading it: poll its ready marker
    try:
        if why != "missing" or not await redis.exists(keys.store_ready(store_id)):
            # a rebuild of a ready store drops its marker once it holds the store's lock:
            # the scripts must refuse it until the copy is whole, or the fill overwrites
            # what they admit meanwhile (journaled, it would reach PostgreSQL only)
            await _write_store(db, redis, store_id, drop_ready=why != "missing")
            STORE_LOADS.labels(store_id, why).inc()
            log.info("inventory loaded into redis", extra={"store_id": store_id, "why": why})
    finally:
        if await redis.get(keys.rebuild_lock(store_id)) in (token, token.encode()):
            await redis.delete(keys.rebuild_lock(store_id))


async def find_drift(db: AsyncEngine, redis: aioredis.Redis, store_id: str) -> list[Drift]:
    """Redis against the books, once the journal is applied: the quick look, no lock held
    (a change between its two writes shows as a difference; ``reconcile_store`` looks at
    what it finds once more, consistently)."""
    await journal.drain(db, redis, store_id)
    stock, holds, _ = await _snapshot(db, store_id)
    drift: list[Drift] = []
    cached = await engine.read_buckets(redis, store_id=store_id, sku_ids=sorted(stock))
    for sku, truth in stock.items():
        if cached[sku] != truth:
            drift.append(Drift("stock", sku, truth, cached[sku]))
    live = await _live_holds(redis, store_id)
    for holder in sorted(set(holds) | set(live)):
        want = holds[holder][2] if holder in holds else {}
        have = {k: int(v) for k, v in live.get(holder, {}).items() if not k.startswith("_")}
        if want != have:
            drift.append(Drift("hold", holder, want, have))
    return drift


@dataclass(frozen=True)
class _Seen:
    """The consistent look's Redis side: one atomic read (``lua/look.lua``)."""

    inflight: int
    last: str  # the journal's last id then ('0-0': empty)
    stock: dict[str, engine.Buckets | None]
    holds: dict[str, dict[str, int]]  # holder -> its lines if SOFT or HARD, else {}


async def _read_suspects(
    redis: aioredis.Redis, store_id: str, skus: list[str], holders: list[str]
) -> _Seen:
    raw = await scripts.run(
        redis,
        "inventory/look",
        keys=[
            keys.inflight(store_id),
            keys.inventory_journal(store_id),
            *(keys.inventory(store_id, sku) for sku in skus),
            *(keys.hold(store_id, holder) for holder in holders),
        ],
        args=[len(skus)],
    )
    stock = {
        sku: None if values[0] is None else engine.Buckets(*(int(v or 0) for v in values))
        for sku, values in zip(skus, raw[2 : 2 + len(skus)], strict=True)
    }
    holds: dict[str, dict[str, int]] = {}
    for holder, flat in zip(holders, raw[2 + len(skus) :], strict=True):
        fields = {scripts.text(flat[i]): scripts.text(flat[i + 1]) for i in range(0, len(flat), 2)}
        live = fields.get("_state") in ("SOFT", "HARD")
        holds[holder] = {k: int(v) for k, v in fields.items() if live and not k.startswith("_")}
    return _Seen(int(raw[0]), scripts.text(raw[1]), stock, holds)


async def _books_of(
    session: AsyncSession, store_id: str, skus: list[str], holders: list[str]
) -> tuple[dict[str, engine.Buckets], dict[str, dict[str, int]]]:
    if not skus and not holders:
        return {}, {}
    stock = {
        r[0]: engine.Buckets(*r[1:])
        for r in await session.execute(
            text(
                "SELECT sku_id, available_qty, reserved_qty, damaged_qty, in_transit_qty "
                "FROM store_inventory WHERE store_id = :s AND sku_id = ANY(:k)"
            ),
            {"s": store_id, "k": skus},
        )
    }
    holds: dict[str, dict[str, int]] = {}
    for holder, sku, qty in await session.execute(
        text(
            "SELECT order_id, sku_id, quantity FROM inventory_reservations "
            "WHERE store_id = :s AND order_id = ANY(:h) "
            "AND status IN ('SOFT', 'HARD') AND quantity > 0"
        ),
        {"s": store_id, "h": holders},
    ):
        holds.setdefault(holder, {})[sku] = qty
    return stock, holds


async def _consistent_look(
    db: AsyncEngine,
    redis: aioredis.Redis,
    store_id: str,
    suspects: list[Drift],
    *,
    lock_wait_s: float,
    quiesce_s: float,
) -> list[Drift] | None:
    """The suspects once more, both sides as of one moment: the drift among them, or None
    if the store's lock was not had within ``lock_wait_s`` (the next interval looks again).

    Holding the lock exclusively, no synchronous write is open: each that changed Redis
    has committed (or rolled back) and only its after-commit step, the in-flight counter's
    decrement, may be pending; that is waited for up to ``quiesce_s``. A counter still up
    then was left by a request that died between its two writes (what it did in Redis is
    drift) or is a rollback's compensation still on its way (rare; the reload repairs it
    too). Soft changes are journaled in the step that makes them: the books take the
    journal up to the id read with the buckets, so they stand where Redis stood."""
    skus = sorted({d.key for d in suspects if d.kind == "stock"})
    holders = sorted({d.key for d in suspects if d.kind == "hold"})
    async with AsyncSession(db, expire_on_commit=False) as session:
        try:
            await session.execute(text(f"SET LOCAL lock_timeout = '{int(lock_wait_s * 1000)}ms'"))
            try:
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:c, hashtext(:s))"),
                    {"c": journal.LOCK_CLASS, "s": store_id},
                )
            except DBAPIError:
                await uow.rollback(session)
                return None
            await session.execute(text("SET LOCAL lock_timeout = '10s'"))
            deadline = time.monotonic() + quiesce_s
            seen = await _read_suspects(redis, store_id, skus, holders)
            while seen.inflight > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)  # a committed write's decrement, just after it
                seen = await _read_suspects(redis, store_id, skus, holders)
            if seen.inflight > 0:
                log.warning(
                    "in-flight stock changes did not finish",
                    extra={"store_id": store_id, "inflight": seen.inflight},
                )
            await journal.apply_pending(session, redis, store_id, through=seen.last)
            await session.flush()
            stock, holds = await _books_of(session, store_id, skus, holders)
        except BaseException:
            await uow.rollback(session)
            raise
        await uow.commit(session)  # the journal applied (its trim after the commit)
    drift = [
        Drift("stock", sku, stock[sku], seen.stock[sku])
        for sku in skus
        if sku in stock and seen.stock[sku] != stock[sku]
    ]
    drift += [
        Drift("hold", h, holds.get(h, {}), seen.holds[h])
        for h in holders
        if holds.get(h, {}) != seen.holds[h]
    ]
    return drift


# consistent looks in a row that did not get a store's lock in time (this process): each
# waits twice as long as the one before, up to MAX_LOCK_WAIT_S, so a store whose writes
# overlap without pause (a city's peak) is still looked at and its drift repaired (a hold
# a killed replica's checkout moved: its customer's retry waits for that repair)
MAX_LOCK_WAIT_S = 4.0
_busy_looks: dict[str, int] = {}


def lock_wait(store_id: str, base_s: float) -> float:
    """How long the store's next consistent look waits for its lock."""
    return min(base_s * 2 ** _busy_looks.get(store_id, 0), max(base_s, MAX_LOCK_WAIT_S))


async def reconcile_store(
    db: AsyncEngine,
    redis: aioredis.Redis,
    store_id: str,
    *,
    lock_wait_s: float = 0.5,
    quiesce_s: float = 0.25,
) -> list[Drift]:
    """Load a store that Redis lost; repair drift that a consistent look confirms.

    The quick look (``find_drift``) finds suspects; only those are looked at again, with
    both sides as of one moment (``_consistent_look``): differences that were changes in
    flight are gone there, a real drift is not and the store is reloaded. The store is
    never paused to look: while the consistent look waits for the store's lock (at most
    ``lock_wait_s``) and holds it, synchronous writes queue for it, none is refused; if
    it is not had in time, this interval gives up and the next one looks again.
    """
    if not await redis.exists(keys.store_ready(store_id)):
        await load_store(db, redis, store_id, why="missing")
        return []
    suspects = await find_drift(db, redis, store_id)
    if not suspects:
        return []
    confirmed = await _consistent_look(
        db,
        redis,
        store_id,
        suspects,
        lock_wait_s=lock_wait(store_id, lock_wait_s),
        quiesce_s=quiesce_s,
    )
    if confirmed is None:
        _busy_looks[store_id] = _busy_looks.get(store_id, 0) + 1
        LOOKS.labels(store_id, "busy").inc()
        log.info("inventory store busy; drift looked at next time", extra={"store_id": store_id})
        return []
    _busy_looks.pop(store_id, None)
    if not confirmed:
        LOOKS.labels(store_id, "clean").inc()
        return []
    LOOKS.labels(store_id, "drift").inc()
    await load_store(db, redis, store_id, why="drift")
    for d in confirmed:
        DRIFT_REPAIRED.labels(store_id, d.kind).inc()
    log.warning(
        "inventory drift repaired",
        extra={
            "store_id": store_id,
            "repaired": len(confirmed),
            "items": [f"{d.kind}:{d.key}" for d in confirmed[:20]],
        },
    )
    return confirmed


async def store_ids(db: AsyncEngine) -> list[str]:
    async with db.connect() as conn:
        return [
            r[0]
            for r in await conn.execute(text("SELECT store_id FROM dark_stores ORDER BY store_id"))
        ]


async def being_repaired(
    redis: aioredis.Redis, store_id: str, *, what: str, under_way: bool = False
) -> InProgress:
    """A request met a dead checkout's moved hold (``what`` it was buying): the reconciler
    is asked to look at the store within a second (``repairs_asked``), not at its next full
    pass, and the refusal to raise is returned (retry shortly, with the same request).
    ``under_way``: the checkout may as well still be running (a cart's line change takes
    no lock against it)."""
    await redis.sadd(keys.inventory_repairs(), store_id)
    if under_way:
        why = f"a checkout of {what} is under way, or stopped midway and what it held is"
    else:
        why = f"an earlier checkout of {what} stopped midway and what it held is"
    return InProgress(
        why + " being put back (in a few seconds): retry with the same request",
        store_id=store_id,
    )


async def repairs_asked(redis: aioredis.Redis, most: int = 100) -> list[str]:
    """The stores asked for since the last call (taken: each is looked at once)."""
    taken = await redis.spop(keys.inventory_repairs(), most)
    return sorted(s.decode() if isinstance(s, bytes) else str(s) for s in taken or [])
