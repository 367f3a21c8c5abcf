"""Inventory: Redis decides (atomic Lua), PostgreSQL records, never oversell.

SOFT holds (carts) are journaled by the scripts and reach PostgreSQL through the batch
writer (``journal.py``): the request writes nothing to the books. HARD holds, commits and
physical movements run Redis first, then write ``store_inventory``,
``inventory_reservations`` and ``stock_ledger`` in the caller's transaction, which holds
the store's lock (shared) from before the script to its end, so a rebuild waits for it.
The inverse of the Redis change is registered as the transaction's rollback hook, so a
failed write puts Redis back (unless the store was reloaded meanwhile); a crash in
between is repaired by the reconciler (PostgreSQL is the source of truth).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Literal, TypeVar

import redis.asyncio as aioredis
from sqlalchemy import TextClause, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory import engine, journal
from server.inventory.engine import Reserved, RestoreLine, Settled
from server.inventory.errors import (
    HoldNotActive,
    InsufficientStock,
    StaleVersion,
    StoreNotReady,
    UnknownSku,
)
from server.inventory.models import StoreInventory
from server.inventory.reconcile import being_repaired
from server.kit import db, uow
from server.kit.errors import DomainError, Unprocessable
from shared.enums import Movement, ReservationStatus

MAX_LINE_QTY = 50  # per SKU in one cart: beyond this it is a wholesale order, not q-commerce
T = TypeVar("T")


def _ts(moment: datetime) -> float:
    return moment.timestamp()


async def _gated(
    session: AsyncSession, redis: aioredis.Redis, store_id: str, call: Callable[[], Awaitable[T]]
) -> T:
    """Run a script; if Redis lost the store's stock, load it from PostgreSQL first."""
    from server.inventory.reconcile import load_store

    try:
        return await call()
    except StoreNotReady:
        if store_id in session.info.get("qc_inventory_locks", ()):
            raise journal.not_ready(store_id) from None  # a load would wait for us
        engine = session.bind
        assert isinstance(engine, AsyncEngine), "sessions are bound to the engine (kit.db)"
        await load_store(engine, redis, store_id)
        return await call()


async def _synchronous(
    session: AsyncSession, redis: aioredis.Redis, store_id: str, call: Callable[[], Awaitable[T]]
) -> T:
    """Run a script whose change this transaction writes to the books: under the store's
    shared lock, taken (after loading the store if Redis lost it) before the script."""
    await journal.lock_store(session, redis, store_id)
    try:
        return await call()
    except StoreNotReady:
        raise journal.not_ready(store_id) from None


def validate_lines(lines: dict[str, int], *, allow_zero: bool = True) -> None:
    if not lines:
        raise Unprocessable("at least one line is needed", code="no_lines")
    bad = {
        sku: q
        for sku, q in lines.items()
        if not isinstance(q, int) or q < (0 if allow_zero else 1) or q > MAX_LINE_QTY
    }
    if bad:
        raise Unprocessable(
            f"quantities must be whole numbers from {0 if allow_zero else 1} to {MAX_LINE_QTY}",
            code="invalid_quantity",
            lines=[{"sku_id": s, "quantity": q} for s, q in bad.items()],
        )


_BUCKETS_SQL = """
    WITH ledger AS (
      INSERT INTO stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
        d_damaged, d_in_transit, reference, actor_id, reason, created_at)
      SELECT :store, :sku, :movement, :da, :dr, :dd, :dt, :ref, :actor, :reason, :now
      WHERE :moves OR :note
    )
    UPDATE store_inventory SET
      available_qty = available_qty + :da, reserved_qty = reserved_qty + :dr,
      damaged_qty = damaged_qty + :dd, in_transit_qty = in_transit_qty + :dt,
      last_updated = :now, version = version + :bump
    WHERE store_id = :store AND sku_id = :sku AND :moves
      AND (CAST(:version AS bigint) IS NULL OR version = :version)
    RETURNING available_qty, reorder_level"""

_PLAIN = text(_BUCKETS_SQL)

# A hold's lines in one statement whatever their number: the hold's reservation rows
# (``holds``), then the stock rows locked in SKU order, moved by the lines ``v`` (sku,
# deltas, movement), and their ledger rows.
_HOLD_ROWS = text("""
    WITH v AS (
      SELECT * FROM unnest(CAST(:skus AS text[]), CAST(:da AS int[]), CAST(:dr AS int[]),
        CAST(:mv AS text[])) AS v(sku, da, dr, mv)),
    holds AS (
      INSERT INTO inventory_reservations (reservation_id, store_id, order_id, sku_id,
        quantity, status, created_at, updated_at, expires_at)
      SELECT gen_random_uuid(), :store, :ref, q.sku, q.qty, q.st, :now, :now, :expires
      FROM unnest(CAST(:skus AS text[]), CAST(:qty AS int[]), CAST(:st AS text[]))
        AS q(sku, qty, st)
      ON CONFLICT (store_id, order_id, sku_id) DO UPDATE SET quantity = EXCLUDED.quantity,
        status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
        expires_at = EXCLUDED.expires_at),
    locked AS (
      SELECT i.sku_id FROM store_inventory i JOIN v ON v.sku = i.sku_id
      WHERE i.store_id = :store AND (v.da <> 0 OR v.dr <> 0)
      ORDER BY i.sku_id FOR UPDATE OF i),
    ledger AS (
      INSERT INTO stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
        d_damaged, d_in_transit, reference, actor_id, reason, created_at)
      SELECT :store, v.sku, v.mv, v.da, v.dr, 0, 0, :ref, :actor, :reason, :now
      FROM v WHERE v.da <> 0 OR v.dr <> 0)
    UPDATE store_inventory s SET available_qty = s.available_qty + v.da,
      reserved_qty = s.reserved_qty + v.dr, last_updated = :now
    FROM v JOIN locked l ON l.sku_id = v.sku
    WHERE s.store_id = :store AND s.sku_id = v.sku
    RETURNING s.sku_id, s.available_qty, s.reorder_level, v.da""")
# A hold's end moves the stock rows by the lines the books held (its rows), not by the
# lines Redis answered: a hold only Redis had (a checkout whose transaction died after
# moving its cart's hold) ends there without touching the books, which still hold the
# cart's lines, and the reconciler repairs that drift. Moved by Redis's lines, the stock
# rows fell short of the holds the books kept, and the order later paid for those lines
# could not be committed (CI, stop 33).
_HOLD_ENDED = text("""
    WITH holds AS (
      UPDATE inventory_reservations SET status = :outcome, updated_at = :now
      WHERE store_id = :store AND order_id = :ref AND status IN ('SOFT', 'HARD')
      RETURNING sku_id AS sku, -quantity AS dr,
        CASE WHEN CAST(:outcome AS text) = 'COMMITTED' THEN 0 ELSE quantity END AS da),
    locked AS (
      SELECT i.sku_id FROM store_inventory i JOIN holds h ON h.sku = i.sku_id
      WHERE i.store_id = :store AND h.dr <> 0
      ORDER BY i.sku_id FOR UPDATE OF i),
    ledger AS (
      INSERT INTO stock_ledger (store_id, sku_id, movement, d_available, d_reserved,
        d_damaged, d_in_transit, reference, actor_id, reason, created_at)
      SELECT :store, h.sku, :movement, h.da, h.dr, 0, 0, :ref, :actor, :reason, :now
      FROM holds h WHERE h.dr <> 0)
    UPDATE store_inventory s SET available_qty = s.available_qty + h.da,
      reserved_qty = s.reserved_qty + h.dr, last_updated = :now
    FROM holds h JOIN locked l ON l.sku_id = h.sku
    WHERE s.store_id = :store AND s.sku_id = h.sku
    RETURNING s.sku_id, s.available_qty, s.reorder_level, h.da""")
# a hard hold's rows move to the new holder (checkout: the cart's to the order) and all
# take the hold's expiry, as Redis extends the whole hold on every touch
_HOLD_MOVED = text("""
    UPDATE inventory_reservations SET order_id = :target, expires_at = :expires
    WHERE store_id = :store AND order_id IN (:holder, :target) AND status IN ('SOFT', 'HARD')""")


async def _write_bucket_change(
    session: AsyncSession,
    *,
    store_id: str,
    sku_id: str,
    movement: Movement,
    now: datetime,
    d_available: int = 0,
    d_reserved: int = 0,
    d_damaged: int = 0,
    d_in_transit: int = 0,
    reference: str | None = None,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    bump_version: bool = False,
    expected_version: int | None = None,
) -> None:
    """Apply deltas to the stock row and append the ledger entry in one statement, so a
    hot row is locked for one round trip only; flag a low-stock crossing."""
    moves = any((d_available, d_reserved, d_damaged, d_in_transit))
    params = {
        "da": d_available,
        "dr": d_reserved,
        "dd": d_damaged,
        "dt": d_in_transit,
        "now": now,
        "bump": 1 if bump_version else 0,
        "store": store_id,
        "sku": sku_id,
        "version": expected_version,
        "movement": movement.value,
        "ref": reference,
        "actor": actor_id,
        "reason": reason,
        "moves": moves,
        # a short pick moves nothing the books still hold, but the discrepancy is recorded
        "note": movement == Movement.SHORT_PICK,
    }
    try:
        row = (await session.execute(_PLAIN, params)).first()
    except IntegrityError as exc:
        if "ck_store_inventory_non_negative" not in str(exc.orig):
            raise
        # the books refuse what Redis admitted (it had drifted ahead): a refusal, not a 500
        raise InsufficientStock(
            [{"sku_id": sku_id, "requested_more": max(-d_available, -d_reserved, 0)}]
        ) from None
    if not moves:
        return
    if row is None and expected_version is not None:
        raise StaleVersion(f"{sku_id} changed while counting; count again")
    if row is None:
        raise UnknownSku(f"{sku_id} is not stocked at {store_id}")
    available, reorder_level = row
    await journal.flag_low_stock(
        session, store_id, sku_id, available, reorder_level, d_available, now
    )


async def _write_hold_lines(
    session: AsyncSession,
    statement: TextClause,
    *,
    store_id: str,
    reference: str,
    moves: list[tuple[str, int, int, Movement]],
    now: datetime,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    **params: object,
) -> None:
    """A hold's lines (sku, d_available, d_reserved, movement) and its reservation rows
    in one statement (``_HOLD_ROWS``, ``_HOLD_ENDED``)."""
    try:
        found = await db.execute(
            session,
            statement,
            {
                "store": store_id,
                "ref": reference,
                "now": now,
                "actor": actor_id,
                "reason": reason,
                "skus": [m[0] for m in moves],
                "da": [m[1] for m in moves],
                "dr": [m[2] for m in moves],
                "mv": [m[3].value for m in moves],
                **params,
            },
        )
        rows = await found.fetchall()
    except IntegrityError as exc:
        if "ck_store_inventory_non_negative" not in str(exc.orig):
            raise
        # the books refuse what Redis admitted (it had drifted ahead): a refusal, not a 500
        raise InsufficientStock(
            [
                {"sku_id": s, "requested_more": max(-da, -dr, 0)}
                for s, da, dr, _ in moves
                if da or dr
            ]
        ) from None
    moved = {s for s, da, dr, _ in moves if da or dr}
    missing = moved - {row[0] for row in rows}
    if missing and statement is _HOLD_ROWS:  # an ended line the books never held moves none
        raise UnknownSku(f"{min(missing)} is not stocked at {store_id}")
    for sku, available, reorder_level, da in rows:
        await journal.flag_low_stock(session, store_id, sku, available, reorder_level, da, now)


def _finish_inflight(
    session: AsyncSession, redis: aioredis.Redis, store_id: str, count: int = 1
) -> None:
    """The change in flight ends with the transaction: registered before its compensation,
    so a rollback (hooks newest first) restores Redis before the count drops, and the
    reconciler never sees the count at zero with Redis still ahead of the books."""

    async def done() -> None:
        for _ in range(count):
            await engine.done_inflight(redis, store_id=store_id)

    uow.after_either(session, done)


async def reserve_lines(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    holder: str,
    lines: dict[str, int],
    now: datetime,
    hold_s: int,
    mode: Literal["SOFT", "HARD"] = "SOFT",
    new_holder: str | None = None,
    actor_id: uuid.UUID | None = None,
    over: tuple[str, ...] = (),
) -> Reserved:
    """Hold ``lines`` (sku -> wanted qty) for a cart or order: all or none.

    SOFT is the cart; HARD is checkout (and may move the hold to the order id: ``lines``
    must then be the hold's as they are, else ``HoldChanged``). ``over``: the ended states
    a change may start the hold over from (``engine.reserve``).
    """
    validate_lines(lines)
    expires = now + timedelta(seconds=hold_s)
    target = new_holder or holder

    def call() -> Awaitable[Reserved]:
        return engine.reserve(
            redis,
            store_id=store_id,
            holder=holder,
            lines=lines,
            mode=mode,
            expires_at=_ts(expires),
            now=_ts(now),
            new_holder=new_holder,
            over=over,
        )

    if mode == "SOFT" and target == holder:
        # journaled in the script's own step (shared with the store's other SOFT calls of
        # this loop turn); the batch writer records it
        soft = await _gated(session, redis, store_id, call)
        if soft.changed:
            uow.on_rollback(session, _soft_undo(redis, store_id, holder, soft, expires, now))
        return soft
    try:
        result = await _synchronous(session, redis, store_id, call)
    except HoldNotActive as refused:
        if refused.extra.get("state") != "MOVED_AWAY":
            raise
        # an earlier checkout moved this hold and died before its commit: the books still
        # hold it where it was, and the reconciler puts it back (asked now)
        raise await being_repaired(redis, store_id, what="these items") from None

    async def compensate() -> None:
        await engine.restore(
            redis,
            store_id=store_id,
            holder=holder,
            drop_holder=target,
            state=result.previous_state,
            expires_at=result.previous_expires_at,
            epoch=result.epoch,
            lines=[
                RestoreLine(c.sku_id, held_qty=c.old_qty, d_available=c.delta, d_reserved=-c.delta)
                for c in result.lines
            ],
        )

    if result.changed:
        _finish_inflight(session, redis, store_id)
    uow.on_rollback(session, compensate)
    if result.pending:
        # the cart's soft holds must be in the books before they become the order's
        await journal.apply_pending(session, redis, store_id, upto=result.pending)
    # the hold's rows (the cart's, moved to the order) take its expiry, then its lines
    await db.execute(
        session,
        _HOLD_MOVED,
        {"target": target, "expires": expires, "store": store_id, "holder": holder},
    )
    status = ReservationStatus.SOFT if mode == "SOFT" else ReservationStatus.HARD
    await _write_hold_lines(
        session,
        _HOLD_ROWS,
        store_id=store_id,
        reference=target,
        moves=[
            (c.sku_id, -c.delta, c.delta, Movement.RESERVE if c.delta > 0 else Movement.RELEASE)
            for c in result.lines
        ],
        now=now,
        actor_id=actor_id,
        expires=expires,
        qty=[c.new_qty for c in result.lines],
        st=[(status if c.new_qty > 0 else ReservationStatus.RELEASED).value for c in result.lines],
    )
    await db.flush(session)
    return result


async def leave_store(redis: aioredis.Redis, *, store_id: str, holder: str) -> None:
    """The holder (a cart) is leaving the store: a change meant for it there is refused
    from now (``engine.leave``); what it holds there is ``settle_hold``'s to end."""
    await engine.leave(redis, store_id=store_id, holder=holder)


def _soft_undo(
    redis: aioredis.Redis,
    store_id: str,
    holder: str,
    done: Reserved,
    expires: datetime,
    now: datetime,
) -> Callable[[], Awaitable[None]]:
    """The caller's transaction failed: set the lines back (journaled like any change),
    each only while it holds what ``done`` set: a change of the line that landed in
    between (no lock orders them) stands."""

    async def undo() -> None:
        with suppress(DomainError):  # the hold moved on meanwhile: it is no longer ours
            await engine.reserve(
                redis,
                store_id=store_id,
                holder=holder,
                lines={c.sku_id: c.old_qty for c in done.lines},
                mode="SOFT",
                expires_at=done.previous_expires_at or _ts(expires),
                now=_ts(now),
                if_held={c.sku_id: c.new_qty for c in done.lines},
            )

    return undo


_SETTLE_MOVEMENT = {
    "COMMITTED": Movement.COMMIT,
    "RELEASED": Movement.RELEASE,
    "EXPIRED": Movement.EXPIRE,
}


async def settle_hold(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    holder: str,
    outcome: engine.Outcome,
    now: datetime,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    hard_skus: list[str] | None = None,
) -> Settled:
    """Commit (paid), release (failed/cancelled) or expire (timed out) a whole hold.

    Ending a hold that already ended is a no-op, so retries and races are harmless.
    ``hard_skus``: the SKUs of the HARD hold the caller made (one Redis round trip less).
    """

    async def before_hard() -> None:
        await journal.lock_store(session, redis, store_id)

    result = await _gated(
        session,
        redis,
        store_id,
        lambda: engine.settle(
            redis,
            store_id=store_id,
            holder=holder,
            outcome=outcome,
            now=_ts(now),
            before_hard=before_hard,
            hard_skus=hard_skus,
        ),
    )
    if result.status != "OK" or result.journaled:
        return result
    committed = outcome == "COMMITTED"

    async def compensate() -> None:
        await engine.restore(
            redis,
            store_id=store_id,
            holder=holder,
            state=result.previous_state,
            expires_at=result.previous_expires_at,
            epoch=result.epoch,
            lines=[
                RestoreLine(sku, held_qty=q, d_available=0 if committed else -q, d_reserved=q)
                for sku, q in result.lines.items()
            ],
        )

    _finish_inflight(session, redis, store_id)
    uow.on_rollback(session, compensate)
    movement = _SETTLE_MOVEMENT[outcome]
    await _write_hold_lines(
        session,
        _HOLD_ENDED,
        store_id=store_id,
        reference=holder,
        moves=[
            (sku, 0 if committed else qty, -qty, movement)
            for sku, qty in sorted(result.lines.items())
        ],
        now=now,
        actor_id=actor_id,
        reason=reason,
        outcome=outcome,
        movement=movement.value,
    )
    await db.flush(session)
    return result


async def move_stock(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    sku_id: str,
    movement: Movement,
    now: datetime,
    d_available: int = 0,
    d_damaged: int = 0,
    d_in_transit: int = 0,
    reference: str | None = None,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    expected_version: int | None = None,
) -> StoreInventory:
    """A physical movement (receipt, damage, count, dispatch): Redis gate, then the books."""
    if expected_version is not None:
        current = await session.get(StoreInventory, (store_id, sku_id))
        if current is None:
            raise UnknownSku(f"{sku_id} is not stocked at {store_id}")
        if current.version != expected_version:
            raise StaleVersion(
                f"{sku_id} is at version {current.version}, not {expected_version}; count again",
                version=current.version,
            )
    adjusted = await _synchronous(
        session,
        redis,
        store_id,
        lambda: engine.adjust(
            redis,
            store_id=store_id,
            sku_id=sku_id,
            d_available=d_available,
            d_damaged=d_damaged,
            d_in_transit=d_in_transit,
        ),
    )

    async def compensate() -> None:
        await engine.restore(
            redis,
            store_id=store_id,
            epoch=adjusted.epoch,
            lines=[
                RestoreLine(
                    sku_id,
                    d_available=-d_available,
                    d_damaged=-d_damaged,
                    d_in_transit=-d_in_transit,
                )
            ],
        )

    _finish_inflight(session, redis, store_id)
    uow.on_rollback(session, compensate)
    await _write_bucket_change(
        session,
        store_id=store_id,
        sku_id=sku_id,
        movement=movement,
        now=now,
        d_available=d_available,
        d_damaged=d_damaged,
        d_in_transit=d_in_transit,
        reference=reference,
        actor_id=actor_id,
        reason=reason,
        bump_version=True,
        expected_version=expected_version,
    )
    row = await session.get(StoreInventory, (store_id, sku_id), populate_existing=True)
    assert row is not None
    return row
