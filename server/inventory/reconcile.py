"""Keep Redis equal to PostgreSQL: load a store's stock before it takes reservations, and
find and repair drift. PostgreSQL is the truth; the drift repaired is a metric and a log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import astuple, dataclass

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.typing import EncodableT
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory import engine, journal
from server.inventory.errors import StoreNotFound, StoreNotReady
from server.kit import keys, scripts

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

LOCK_TTL_MS = 30_000
FILL_BATCH = 1000  # commands per round trip when a store is written into Redis


@dataclass(frozen=True)
class Drift:
    kind: str  # "stock" or "hold"
    key: str  # sku id or holder id
    postgres: object
    redis: object

    def signature(self) -> tuple[object, ...]:
        """What Redis has beyond PostgreSQL: a change in flight between the two writes
        gives a different offset at the next look, a real drift the same one."""
        if isinstance(self.postgres, engine.Buckets) and isinstance(self.redis, engine.Buckets):
            pg, rd = astuple(self.postgres), astuple(self.redis)
            return (self.kind, self.key, tuple(r - p for p, r in zip(pg, rd, strict=True)))
        if isinstance(self.postgres, dict) and isinstance(self.redis, dict):
            skus = sorted(set(self.postgres) | set(self.redis))
            offset = tuple((k, self.redis.get(k, 0) - self.postgres.get(k, 0)) for k in skus)
            return (self.kind, self.key, offset)
        return (self.kind, self.key, repr(self.postgres), repr(self.redis))


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
            text("""
        SELECT order_id, CASE WHEN bool_or(status = 'COMMITTED') THEN 'COMMITTED'
                              WHEN bool_or(status = 'EXPIRED') THEN 'EXPIRED'
                              ELSE 'RELEASED' END
        FROM inventory_reservations
        WHERE store_id = :s AND updated_at > now() - interval '1 day'
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


async def _write_store(db: AsyncEngine, redis: aioredis.Redis, store_id: str) -> None:
    """Rebuild one store's Redis copy from the books, with the store's lock held
    exclusively: every PostgreSQL write of its Redis changes in flight (synchronous paths,
    the journal writer) finishes first, and the journal's unapplied tail is applied before
    the books are read. The scripts refuse the store meanwhile (no ready marker), so
    nothing new is journaled or admitted until the copy is whole."""
    async with db.connect() as conn:
        await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        try:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:c, hashtext(:s))"),
                {"c": journal.LOCK_CLASS, "s": store_id},
            )
        except DBAPIError as exc:
            raise StoreNotReady(f"stock of {store_id} is busy; retry shortly") from exc
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
        if why != "missing":
            # the store may have become ready since the caller paused it (a request's own
            # load): the scripts must refuse it until the copy is whole, or the fill
            # overwrites what they admit meanwhile (journaled, it reaches PostgreSQL only)
            await redis.delete(keys.store_ready(store_id))
        if why != "missing" or not await redis.exists(keys.store_ready(store_id)):
            await _write_store(db, redis, store_id)
            STORE_LOADS.labels(store_id, why).inc()
            log.info("inventory loaded into redis", extra={"store_id": store_id, "why": why})
    finally:
        if await redis.get(keys.rebuild_lock(store_id)) in (token, token.encode()):
            await redis.delete(keys.rebuild_lock(store_id))


async def find_drift(db: AsyncEngine, redis: aioredis.Redis, store_id: str) -> list[Drift]:
    """Redis against the books, once the journal is applied."""
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


async def _quiesce(redis: aioredis.Redis, store_id: str, wait_s: float) -> str | None:
    """Stop new stock changes on a store and wait for those in flight to be written: the
    store's epoch, or None if they did not all finish (or the store was not ready)."""
    epoch = await redis.getdel(keys.store_ready(store_id))
    deadline = time.monotonic() + wait_s
    while int(await redis.get(keys.inflight(store_id)) or 0) > 0:
        if time.monotonic() > deadline:
            # a crashed request never finishes; its Redis effect is what we overwrite
            log.warning("in-flight stock changes did not finish", extra={"store_id": store_id})
            return None
        await asyncio.sleep(0.02)
    return None if epoch is None else scripts.text(epoch)


async def _resume(redis: aioredis.Redis, store_id: str, epoch: str) -> None:
    """The paused store ready again in its own epoch, under the rebuild lock (a loader at
    work, one a refused request started, makes it ready itself, in a new epoch)."""
    token = uuid.uuid4().hex
    if await redis.set(keys.rebuild_lock(store_id), token, nx=True, px=LOCK_TTL_MS):
        try:
            await redis.set(keys.store_ready(store_id), epoch, nx=True)
        finally:
            if await redis.get(keys.rebuild_lock(store_id)) in (token, token.encode()):
                await redis.delete(keys.rebuild_lock(store_id))


async def reconcile_store(
    db: AsyncEngine,
    redis: aioredis.Redis,
    store_id: str,
    *,
    confirm_after_s: float = 0.5,
    quiesce_s: float = 5.0,
) -> list[Drift]:
    """Load a store that Redis lost; repair drift that persists across two looks.

    A change between its Redis and PostgreSQL writes looks like drift for a moment, so a
    difference must be seen twice before the store is paused; once the changes in flight
    are written, a difference still there is reloaded from PostgreSQL. None left (under a
    city's peak two looks can each catch a change of the same size in flight): the store
    resumes in its epoch without a reload (nothing changed it while paused: the scripts
    refuse a store that is not ready, and none was in flight).
    """
    if not await redis.exists(keys.store_ready(store_id)):
        await load_store(db, redis, store_id, why="missing")
        return []
    first = await find_drift(db, redis, store_id)
    if not first:
        return []
    await asyncio.sleep(confirm_after_s)
    second = {d.signature() for d in await find_drift(db, redis, store_id)}
    persistent = [d for d in first if d.signature() in second]
    if not persistent:
        return []
    epoch = await _quiesce(redis, store_id, quiesce_s)
    confirmed = await find_drift(db, redis, store_id)
    if not confirmed and epoch is not None:
        await _resume(redis, store_id, epoch)
        log.info("inventory drift was changes in flight", extra={"store_id": store_id})
        return []
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
